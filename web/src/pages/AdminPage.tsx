import { useCallback, useEffect, useState } from 'react';
import { api, type LiveKitStatus, type LiveParticipant, type User } from '../api';
import { useUser } from '../session';

export function AdminPage() {
  const me = useUser();
  const [status, setStatus] = useState<LiveKitStatus | null>(null);
  const [people, setPeople] = useState<Record<string, LiveParticipant[]>>({});
  const [users, setUsers] = useState<User[]>([]);
  const [error, setError] = useState('');

  const reload = useCallback(async () => {
    try {
      const s = await api.livekitStatus();
      setStatus(s);
      const entries = await Promise.all(s.activeRooms.map(async (r) =>
        [r.name, await api.participants(r.name).catch(() => [])] as const));
      setPeople(Object.fromEntries(entries));
      setUsers(await api.users());
      setError('');
    } catch (e) {
      setError((e as Error).message);
    }
  }, []);
  useEffect(() => {
    // The first load and a refresh every 10 s, so live rooms stay current.
    const first = setTimeout(reload, 0);
    const t = setInterval(reload, 10_000);
    return () => { clearTimeout(first); clearInterval(t); };
  }, [reload]);

  if (me?.role !== 'admin') {
    return <p className="page" role="alert">The admin page is for administrators. Sign out and in again if you were just made one.</p>;
  }
  return (
    <section className="page" aria-labelledby="admin-title">
      <h1 id="admin-title">Administration</h1>
      {error && <p role="alert" className="error">{error}</p>}
      <h2>LiveKit</h2>
      {status && (
        <dl className="facts card">
          <dt>Mode</dt><dd>{status.mode}</dd>
          <dt>State</dt><dd>{status.connected ? 'connected' : 'not connected'} ({status.state})</dd>
          <dt>Version</dt><dd data-testid="livekit-version">{status.version ?? 'unknown'}</dd>
          <dt>Node IP</dt><dd>{status.nodeIp ?? '—'}</dd>
          <dt>Client URL</dt><dd><code>{status.url}</code></dd>
          <dt>Restarts</dt><dd>{status.restarts}</dd>
          <dt>Last error</dt><dd>{status.lastError ?? 'none'}</dd>
          {status.warnings.length > 0 && <><dt>Warnings</dt><dd><ul>{status.warnings.map((w) => <li key={w}>{w}</li>)}</ul></dd></>}
        </dl>
      )}
      <h2>Live rooms</h2>
      {status && status.activeRooms.length === 0 && <p>No meeting is running.</p>}
      <ul>
        {status?.activeRooms.map((r) => (
          <li key={r.name}>
            <strong>{r.name}</strong>: {r.participants} in the meeting
            {people[r.name]?.length ? ` (${people[r.name].map((p) => p.name || p.identity).join(', ')})` : ''}
          </li>
        ))}
      </ul>
      <h2>Accounts</h2>
      <table className="users">
        <caption className="visually-hidden">Accounts and their roles</caption>
        <thead><tr><th scope="col">Name</th><th scope="col">Email</th><th scope="col">Role</th><th scope="col">Action</th></tr></thead>
        <tbody>
          {users.map((u) => (
            <tr key={u.id}>
              <td>{u.name}</td><td>{u.email}</td><td>{u.role}</td>
              <td>
                <button type="button" aria-label={`${u.role === 'admin' ? 'Remove admin role from' : 'Make admin:'} ${u.email}`}
                  onClick={() => api.setAdmin(u.id, u.role !== 'admin').then(reload, (e: Error) => setError(e.message))}>
                  {u.role === 'admin' ? 'Remove admin' : 'Make admin'}
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
