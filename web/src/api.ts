// The one typed client of bedrud's API. Sessions live in localStorage; the access token is
// renewed silently (refresh rotation) shortly before it expires, and once more on a 401.

export type Role = 'admin' | 'user';
export interface User { id: string; email: string; name: string; role: Role }
interface Session { accessToken: string; refreshToken: string; user: User }

export interface Room {
  name: string; ownerId: string; isPublic: boolean; maxParticipants: number;
  allowVideo: boolean; allowAudio: boolean; allowScreenShare: boolean; allowGuests: boolean;
  moderators: string[]; participants?: number;
}
export interface JoinAnswer {
  token: string; livekitHost: string; roomName: string; identity: string; name: string;
  role: 'moderator' | 'participant' | 'guest';
}
export interface LiveParticipant { identity: string; name?: string; [k: string]: unknown }
export interface LiveKitStatus {
  mode: string; connected: boolean; state: string; version?: string; nodeIp?: string;
  url: string; restarts: number; lastError?: string; warnings: string[];
  activeRooms: { name: string; participants: number }[];
}
export interface Permissions {
  canPublish?: boolean; canSubscribe?: boolean; canPublishData?: boolean;
  canPublishSources?: string[];
}

export type RecordingStatus = 'starting' | 'active' | 'ending' | 'complete' | 'failed';
export interface Recording {
  id: string; egressId?: string | null; room: string; startedBy: string; layout: string; audioOnly: boolean;
  status: RecordingStatus; error?: string | null; size?: number | null; durationMs?: number | null;
  startedAt?: number | null; endedAt?: number | null; createdAt: number;
}

export class ApiError extends Error {
  constructor(public status: number, message: string) { super(message); }
}

const KEY = 'bedrud.session';
let session: Session | null = load();
const listeners = new Set<() => void>();

function load(): Session | null {
  try { return JSON.parse(localStorage.getItem(KEY) ?? 'null'); } catch { return null; }
}
function save(s: Session | null) {
  session = s;
  if (s) localStorage.setItem(KEY, JSON.stringify(s)); else localStorage.removeItem(KEY);
  listeners.forEach((l) => l());
}
// Another tab signed in or out.
window.addEventListener('storage', (e) => { if (e.key === KEY) { session = load(); listeners.forEach((l) => l()); } });

export function subscribe(l: () => void) { listeners.add(l); return () => { listeners.delete(l); }; }
export function currentUser(): User | null { return session?.user ?? null; }

/** Seconds until the access token expires (from its `exp` claim). */
function secondsLeft(token: string): number {
  try {
    const claims = JSON.parse(atob(token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/')));
    return claims.exp - Date.now() / 1000;
  } catch { return 0; }
}

let refreshing: Promise<void> | null = null;
function refresh(): Promise<void> {
  // One refresh at a time: a refresh token works once, a second use revokes the sign-in.
  refreshing ??= (async () => {
    const s = session;
    if (!s) throw new ApiError(401, 'not signed in');
    const r = await fetch('/api/auth/refresh', {
      method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ refreshToken: s.refreshToken }),
    });
    const body = await r.json().catch(() => ({}));
    if (!r.ok) { save(null); throw new ApiError(r.status, body.error ?? 'please sign in again'); }
    save(body as Session);
  })().finally(() => { refreshing = null; });
  return refreshing;
}

async function request<T>(method: string, path: string, body?: unknown, retried = false): Promise<T> {
  if (session && secondsLeft(session.accessToken) < 30) await refresh();
  const headers: Record<string, string> = {};
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (session) headers.Authorization = `Bearer ${session.accessToken}`;
  const r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const answer = await r.json().catch(() => ({ error: `${r.status} ${r.statusText}` }));
  if (r.status === 401 && session && !retried && !path.startsWith('/api/auth/')) {
    await refresh();
    return request(method, path, body, true);
  }
  if (!r.ok) throw new ApiError(r.status, answer.error ?? `${r.status} ${r.statusText}`);
  return answer as T;
}

/** A file the API serves to the signed-in user only: fetched with the bearer token, as a Blob. */
async function download(path: string, retried = false): Promise<{ blob: Blob; name: string }> {
  if (session && secondsLeft(session.accessToken) < 30) await refresh();
  const headers: Record<string, string> = {};
  if (session) headers.Authorization = `Bearer ${session.accessToken}`;
  const r = await fetch(path, { headers });
  if (r.status === 401 && session && !retried) {
    await refresh();
    return download(path, true);
  }
  if (!r.ok) {
    const answer = await r.json().catch(() => ({ error: `${r.status} ${r.statusText}` }));
    throw new ApiError(r.status, answer.error ?? `${r.status} ${r.statusText}`);
  }
  const name = /filename="([^"]+)"/.exec(r.headers.get('Content-Disposition') ?? '')?.[1] ?? 'recording.mp4';
  return { blob: await r.blob(), name };
}

export const api = {
  async register(name: string, email: string, password: string) {
    save(await request<Session>('POST', '/api/auth/register', { name, email, password }));
  },
  async login(email: string, password: string) {
    save(await request<Session>('POST', '/api/auth/login', { email, password }));
  },
  async logout() {
    const s = session;
    save(null);
    if (s) await fetch('/api/auth/logout', {
      method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ refreshToken: s.refreshToken }),
    }).catch(() => undefined);
  },
  rooms: () => request<{ rooms: Room[] }>('GET', '/api/room/list').then((r) => r.rooms),
  createRoom: (room: {
    name: string; isPublic: boolean; maxParticipants?: number;
    settings: { allowVideo: boolean; allowAudio: boolean; allowScreenShare: boolean; allowGuests: boolean; moderators: string[] };
  }) => request<{ room: Room }>('POST', '/api/room/create', room).then((r) => r.room),
  join: (roomName: string) => request<JoinAnswer>('POST', '/api/room/join', { roomName }),
  guestJoin: (roomName: string, guestName: string) =>
    request<JoinAnswer>('POST', '/api/room/guest-join', { roomName, guestName }),
  participants: (room: string) =>
    request<{ participants: LiveParticipant[] }>('GET', `/api/room/${encodeURIComponent(room)}/participants`)
      .then((r) => r.participants),
  close: (room: string) => request('POST', `/api/room/${encodeURIComponent(room)}/close`),
  kick: (room: string, identity: string, ban: boolean) =>
    request('POST', `/api/room/${encodeURIComponent(room)}/kick/${encodeURIComponent(identity)}?ban=${ban}`),
  mute: (room: string, identity: string) =>
    request('POST', `/api/room/${encodeURIComponent(room)}/mute/${encodeURIComponent(identity)}`),
  permissions: (room: string, identity: string, p: Permissions) =>
    request('PUT', `/api/room/${encodeURIComponent(room)}/participants/${encodeURIComponent(identity)}/permissions`, p),
  bans: (room: string) =>
    request<{ bans: { identity: string; name: string | null; bannedAt: number }[] }>('GET', `/api/room/${encodeURIComponent(room)}/bans`)
      .then((r) => r.bans),
  unban: (room: string, identity: string) =>
    request('DELETE', `/api/room/${encodeURIComponent(room)}/bans/${encodeURIComponent(identity)}`),
  startRecording: (room: string, audioOnly: boolean) =>
    request<Recording>('POST', `/api/room/${encodeURIComponent(room)}/recording/start`, { audioOnly }),
  stopRecording: (room: string) =>
    request<Recording>('POST', `/api/room/${encodeURIComponent(room)}/recording/stop`),
  recordings: (room: string) =>
    request<{ recordings: Recording[] }>('GET', `/api/room/${encodeURIComponent(room)}/recordings`)
      .then((r) => r.recordings),
  deleteRecording: (id: string) => request('DELETE', `/api/recordings/${encodeURIComponent(id)}`),
  downloadRecording: (id: string) => download(`/api/recordings/${encodeURIComponent(id)}/download`),
  livekitStatus: () => request<LiveKitStatus>('GET', '/api/admin/livekit'),
  users: () => request<{ users: User[] }>('GET', '/api/admin/users').then((r) => r.users),
  setAdmin: (id: string, admin: boolean) =>
    request<{ user: User }>('PUT', `/api/admin/users/${encodeURIComponent(id)}/admin`, { admin }),
};
