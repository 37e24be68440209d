import { useCallback, useEffect, useState } from 'react';
import { useParticipants, useRoomContext } from '@livekit/components-react';
import { Track, type Participant } from 'livekit-client';
import { api, type JoinAnswer } from '../api';

const SOURCES = ['camera', 'microphone', 'screen_share', 'screen_share_audio'] as const;

/** Who is in the meeting, their microphone and camera, and (for moderators) what to do. */
export function PeoplePanel({ room, me }: { room: string; me: JoinAnswer }) {
  const participants = useParticipants();
  const lkRoom = useRoomContext();
  const moderator = me.role === 'moderator';
  const [notice, setNotice] = useState('');
  const [banned, setBanned] = useState<{ identity: string; name: string }[]>([]);
  const loadBans = useCallback(() => {
    if (!moderator) return;
    api.bans(room).then(
      (bans) => setBanned(bans.map((b) => ({ identity: b.identity, name: b.name ?? `guest ${b.identity}` }))),
      (e: Error) => setNotice(`Could not list bans: ${e.message}`),
    );
  }, [moderator, room]);
  useEffect(loadBans, [loadBans]);

  async function act(what: string, f: () => Promise<unknown>) {
    try { await f(); setNotice(what); } catch (e) { setNotice(`${what} failed: ${(e as Error).message}`); }
  }

  return (
    <aside className="people" aria-labelledby="people-title">
      <h2 id="people-title">People ({participants.length})</h2>
      <p role="status" className="muted">{notice}</p>
      <ul>
        {participants.map((p) => (
          <Person key={p.identity} p={p} self={p.identity === me.identity} moderator={moderator}
            onMute={() => act(`Muted ${p.name || p.identity}`, () => api.mute(room, p.identity))}
            onKick={(ban) => act(`${ban ? 'Removed and banned' : 'Removed'} ${p.name || p.identity}`, async () => {
              await api.kick(room, p.identity, ban);
              if (ban) loadBans();
            })}
            onPermissions={(perm) => act(`Permissions of ${p.name || p.identity} changed`,
              () => api.permissions(room, p.identity, perm))}
          />
        ))}
      </ul>
      {moderator && banned.length > 0 && (
        <>
          <h3>Banned</h3>
          <ul>
            {banned.map((b) => (
              <li key={b.identity} className="person">
                <span>{b.name}</span>
                <button type="button" aria-label={`Lift ban on ${b.name}`}
                  onClick={() => act(`Ban on ${b.name} lifted`, async () => {
                    await api.unban(room, b.identity);
                    loadBans();
                  })}>Lift ban</button>
              </li>
            ))}
          </ul>
        </>
      )}
      {moderator && (
        <button type="button" className="danger" onClick={() => {
          if (window.confirm('End the meeting for everyone?')) void act('Meeting ended', () => api.close(room));
        }}>End meeting for all</button>
      )}
      <button type="button" onClick={() => lkRoom.disconnect()}>Leave</button>
    </aside>
  );
}

function Person({ p, self, moderator, onMute, onKick, onPermissions }: {
  p: Participant; self: boolean; moderator: boolean;
  onMute: () => void; onKick: (ban: boolean) => void;
  onPermissions: (perm: { canPublish: boolean; canSubscribe: boolean; canPublishData: boolean; canPublishSources: string[] }) => void;
}) {
  const name = p.name || p.identity;
  const mic = p.getTrackPublication(Track.Source.Microphone);
  const cam = p.getTrackPublication(Track.Source.Camera);
  const micState = !mic ? 'no microphone' : mic.isMuted ? 'microphone muted' : 'microphone on';
  const camState = !cam ? 'no camera' : cam.isMuted ? 'camera off' : 'camera on';
  const perms = p.permissions;
  return (
    <li className="person" data-identity={p.identity}>
      <span className="name">{name}{self ? ' (you)' : ''}</span>
      <span className="state" data-testid="mic-state">{micState}</span>
      <span className="state">{camState}</span>
      {moderator && !self && (
        <div className="mod-actions">
          <button type="button" aria-label={`Mute ${name}`} disabled={!mic || mic.isMuted} onClick={onMute}>Mute</button>
          <button type="button" aria-label={`Remove ${name}`} onClick={() => onKick(false)}>Remove</button>
          <button type="button" className="danger" aria-label={`Remove and ban ${name}`} onClick={() => onKick(true)}>Remove and ban</button>
          <details>
            <summary>Permissions</summary>
            <form className="form" onSubmit={(e) => {
              e.preventDefault();
              const f = new FormData(e.currentTarget);
              onPermissions({
                canPublish: f.get('publish') === 'on',
                canSubscribe: f.get('subscribe') === 'on',
                canPublishData: f.get('data') === 'on',
                canPublishSources: SOURCES.filter((s) => f.get(s) === 'on'),
              });
            }}>
              <label className="check"><input type="checkbox" name="publish" defaultChecked={perms?.canPublish ?? true} /> Publish</label>
              <label className="check"><input type="checkbox" name="subscribe" defaultChecked={perms?.canSubscribe ?? true} /> Subscribe</label>
              <label className="check"><input type="checkbox" name="data" defaultChecked={perms?.canPublishData ?? true} /> Chat and data</label>
              {SOURCES.map((s) => (
                <label key={s} className="check">
                  <input type="checkbox" name={s} defaultChecked /> {s.replace(/_/g, ' ')}
                </label>
              ))}
              <button type="submit">Apply</button>
            </form>
          </details>
        </div>
      )}
    </li>
  );
}
