// Recording in the meeting: an indicator everyone sees, and for the room's moderators the
// Record / Stop button and the room's recordings (download, delete).
import { useCallback, useEffect, useState } from 'react';
import { useIsRecording, useParticipants } from '@livekit/components-react';
import { api, type Recording } from '../api';
import { useUser } from '../session';

/** A recording is under way (the egress worker is on it) until it is complete or failed. */
const inProgress = (r: Recording) => r.status === 'starting' || r.status === 'active' || r.status === 'ending';

/**
 * "Recording" for everyone in the room. Participants cannot call the moderators' API, so this
 * is LiveKit's own signal: the egress worker joins as a hidden recorder and LiveKit marks the
 * room as being recorded (`room.isRecording`, `RoomEvent.RecordingStatusChanged`).
 */
export function RecordingIndicator() {
  const recording = useIsRecording();
  // The live region is always there, so screen readers announce when the text appears and goes.
  return (
    <p className="recording-indicator" role="status" aria-live="polite" data-recording={recording}>
      {recording && <><span aria-hidden="true" className="dot" />This meeting is being recorded</>}
    </p>
  );
}

function duration(ms?: number | null): string {
  if (ms == null) return '—';
  const s = Math.round(ms / 1000);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

function size(bytes?: number | null): string {
  if (bytes == null) return '—';
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} kB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

/** The moderators' part: Record / Stop and the room's recordings. */
export function RecordingControls({ room }: { room: string }) {
  const user = useUser();
  const participants = useParticipants();
  const isRecording = useIsRecording();
  const [recordings, setRecordings] = useState<Recording[]>([]);
  // Video needs the egress worker's Chrome, PulseAudio and Xvfb, which embedded mode does not
  // run yet: audio only is the default, and video is a deliberate choice.
  const [audioOnly, setAudioOnly] = useState(true);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState('');
  const [notice, setNotice] = useState('');

  const load = useCallback(() => {
    api.recordings(room).then(setRecordings, (e: Error) => setError(`Could not list the recordings: ${e.message}`));
  }, [room]);
  // Again whenever LiveKit says recording began or ended.
  useEffect(load, [load, isRecording]);
  const current = recordings.find(inProgress);
  // While one is in progress its state changes on the server (webhooks): look again every 2 s.
  useEffect(() => {
    if (!current) return;
    const timer = window.setInterval(load, 2000);
    return () => window.clearInterval(timer);
  }, [current, load]);

  async function act(done: string, failed: string, f: () => Promise<unknown>) {
    setBusy(true);
    setError('');
    try {
      await f();
      setNotice(done);
    } catch (e) {
      setError(`${failed}: ${(e as Error).message}`);
    } finally {
      setBusy(false);
      load();
    }
  }

  async function download(r: Recording) {
    // The file is for moderators only, so it is fetched with the bearer token and handed to
    // the browser as a Blob (held in memory: fine for meeting-length audio and video).
    await act('Downloaded.', 'Could not download the recording', async () => {
      const { blob, name } = await api.downloadRecording(r.id);
      const url = URL.createObjectURL(blob);
      const a = document.createElement('a');
      a.href = url;
      a.download = name;
      document.body.append(a);
      a.click();
      a.remove();
      window.setTimeout(() => URL.revokeObjectURL(url), 60_000);
    });
  }

  function who(id: string): string {
    if (id === user?.id) return 'you';
    return participants.find((p) => p.identity === id)?.name || id;
  }

  return (
    <section className="recordings" aria-labelledby="recording-title">
      <h2 id="recording-title">Recording</h2>
      <div className="record-actions">
        {current ? (
          <button type="button" className="danger" disabled={busy || current.status === 'ending'}
            onClick={() => act('Recording stopped.', 'Could not stop the recording', () => api.stopRecording(room))}>
            {current.status === 'ending' ? 'Finishing…' : 'Stop recording'}
          </button>
        ) : (
          <>
            <button type="button" className="primary" disabled={busy}
              onClick={() => act('Recording started.', 'Could not start recording', () => api.startRecording(room, audioOnly))}>
              Record
            </button>
            <label className="check"
              title="Recording with video needs the recording worker's browser, PulseAudio and Xvfb; bedrud's built-in worker records audio only for now.">
              <input type="checkbox" checked={audioOnly} disabled={busy}
                onChange={(e) => setAudioOnly(e.target.checked)} /> Audio only
            </label>
          </>
        )}
      </div>
      {error && <p role="alert" className="error">{error}</p>}
      <p role="status" className="muted">{notice}</p>
      {recordings.length > 0 && (
        <ul>
          {recordings.map((r) => {
            const when = new Date(r.startedAt ?? r.createdAt).toLocaleString();
            return (
              <li key={r.id} className="recording" data-id={r.id} data-status={r.status} data-size={r.size ?? ''}>
                <span className="name">{when}</span>
                <span className="state">
                  {r.status}{r.status === 'failed' && r.error ? `: ${r.error}` : ''} · {r.audioOnly ? 'audio' : 'video'}
                  {' · '}{duration(r.durationMs)} · {size(r.size)} · started by {who(r.startedBy)}
                </span>
                {r.status === 'complete' && (
                  <button type="button" disabled={busy} aria-label={`Download the recording of ${when}`}
                    onClick={() => void download(r)}>Download</button>
                )}
                {!inProgress(r) && (
                  <button type="button" className="danger" disabled={busy} aria-label={`Delete the recording of ${when}`}
                    onClick={() => {
                      if (window.confirm('Delete this recording for good?')) void act('Recording deleted.', 'Could not delete the recording', () => api.deleteRecording(r.id));
                    }}>Delete</button>
                )}
              </li>
            );
          })}
        </ul>
      )}
    </section>
  );
}
