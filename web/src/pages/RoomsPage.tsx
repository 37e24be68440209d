import { useCallback, useEffect, useState, type FormEvent } from 'react';
import { Link } from 'react-router-dom';
import { api, type Room } from '../api';

export function roomLink(name: string) {
  return `${window.location.origin}/r/${encodeURIComponent(name)}`;
}

export function RoomsPage() {
  const [rooms, setRooms] = useState<Room[] | null>(null);
  const [error, setError] = useState('');
  const reload = useCallback(() => {
    api.rooms().then(setRooms, (e: Error) => setError(e.message));
  }, []);
  useEffect(reload, [reload]);

  return (
    <section className="page" aria-labelledby="rooms-title">
      <h1 id="rooms-title">Rooms</h1>
      {error && <p role="alert" className="error">{error}</p>}
      {rooms === null ? <p>Loading…</p> : rooms.length === 0 ? <p>No rooms yet: create one below.</p> : (
        <ul className="rooms">
          {rooms.map((r) => (
            <li key={r.name} className="card">
              <div>
                <h2><Link to={`/r/${encodeURIComponent(r.name)}`}>{r.name}</Link></h2>
                <p className="muted">
                  {r.isPublic ? 'Public' : 'Private'}{r.allowGuests ? ', guests welcome' : ''} ·{' '}
                  {r.participants ?? 0} of {r.maxParticipants} in the meeting
                </p>
              </div>
              <div className="actions">
                <CopyLink name={r.name} />
                <Link className="button primary" to={`/r/${encodeURIComponent(r.name)}`}
                  aria-label={`Join ${r.name}`}>Join</Link>
              </div>
            </li>
          ))}
        </ul>
      )}
      <CreateRoom onCreated={reload} />
    </section>
  );
}

function CopyLink({ name }: { name: string }) {
  const [copied, setCopied] = useState(false);
  const link = roomLink(name);
  return (
    <button type="button" aria-label={copied ? `Link copied for ${name}` : `Copy link to ${name}`} title={link}
      onClick={() => navigator.clipboard?.writeText(link).then(() => setCopied(true), () => window.prompt('Room link', link))}>
      {copied ? 'Link copied' : 'Copy link'}
    </button>
  );
}

function CreateRoom({ onCreated }: { onCreated: () => void }) {
  const [error, setError] = useState('');
  const [created, setCreated] = useState('');
  async function submit(e: FormEvent<HTMLFormElement>) {
    e.preventDefault();
    const form = e.currentTarget;
    const f = new FormData(form);
    const max = String(f.get('max') ?? '').trim();
    setError('');
    try {
      const room = await api.createRoom({
        name: String(f.get('name')).trim(),
        isPublic: f.get('public') === 'on',
        maxParticipants: max ? Number(max) : undefined,
        settings: {
          allowVideo: f.get('video') === 'on',
          allowAudio: f.get('audio') === 'on',
          allowScreenShare: f.get('screen') === 'on',
          allowGuests: f.get('guests') === 'on',
          moderators: String(f.get('moderators') ?? '').split(/[\s,]+/).filter(Boolean),
        },
      });
      setCreated(room.name);
      form.reset();
      onCreated();
    } catch (err) {
      setError((err as Error).message);
    }
  }
  return (
    <form onSubmit={submit} className="form card create" aria-labelledby="create-title">
      <h2 id="create-title">Create a room</h2>
      <label>Room name
        <input name="name" required pattern="[A-Za-z0-9_\-][A-Za-z0-9_.\-]*" maxLength={128}
          aria-describedby="name-help" />
      </label>
      <small id="name-help" className="muted">Letters, digits, “-”, “_” and “.”; it becomes the room's link.</small>
      <label>Maximum participants<input name="max" type="number" min={1} max={100000} placeholder="server default" /></label>
      <fieldset>
        <legend>Who and what</legend>
        <label className="check"><input type="checkbox" name="public" defaultChecked /> Public (any signed-in user may join)</label>
        <label className="check"><input type="checkbox" name="guests" /> Guests may join with just a name (public rooms)</label>
        <label className="check"><input type="checkbox" name="video" defaultChecked /> Cameras</label>
        <label className="check"><input type="checkbox" name="audio" defaultChecked /> Microphones</label>
        <label className="check"><input type="checkbox" name="screen" defaultChecked /> Screen sharing</label>
      </fieldset>
      <label>Moderators (emails, comma-separated)<input name="moderators" type="text" autoComplete="off" /></label>
      {error && <p role="alert" className="error">{error}</p>}
      {created && <p role="status">Room “{created}” created: <Link to={`/r/${encodeURIComponent(created)}`}>open it</Link></p>}
      <button type="submit" className="primary">Create room</button>
    </form>
  );
}
