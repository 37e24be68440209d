import { useState, type FormEvent } from 'react';
import { Link, useParams } from 'react-router-dom';
import { LiveKitRoom, PreJoin, VideoConference, type LocalUserChoices } from '@livekit/components-react';
import { DisconnectReason, type RoomOptions } from 'livekit-client';
import { api, type JoinAnswer } from '../api';
import { useUser } from '../session';
import { roomLink } from './RoomsPage';
import { PeoplePanel } from './PeoplePanel';
import { RecordingControls, RecordingIndicator } from './RecordingPanel';
import { useLabelLiveKitButtons } from '../a11y';

type Stage =
  | { kind: 'prejoin'; error?: string }
  | { kind: 'in'; join: JoinAnswer; choices: LocalUserChoices }
  | { kind: 'left'; why: string; removed: boolean };

/** Why the meeting ended for this person, in words. */
function describe(reason?: DisconnectReason): { why: string; removed: boolean } {
  switch (reason) {
    case DisconnectReason.PARTICIPANT_REMOVED:
      return { why: 'A moderator removed you from this meeting.', removed: true };
    case DisconnectReason.ROOM_DELETED:
      return { why: 'The meeting was ended for everyone.', removed: false };
    case DisconnectReason.DUPLICATE_IDENTITY:
      return { why: 'You joined this meeting from another window or device.', removed: false };
    case DisconnectReason.CLIENT_INITIATED:
      return { why: 'You left the meeting.', removed: false };
    default:
      return { why: 'The connection to the meeting was lost.', removed: false };
  }
}

export function MeetingPage() {
  const room = useParams().room ?? '';
  const user = useUser();
  const [stage, setStage] = useState<Stage>({ kind: 'prejoin' });
  const secure = window.isSecureContext;
  useLabelLiveKitButtons();

  async function join(choices: LocalUserChoices) {
    try {
      const answer = user ? await api.join(room) : await api.guestJoin(room, choices.username);
      setStage({ kind: 'in', join: answer, choices });
    } catch (e) {
      setStage({ kind: 'prejoin', error: (e as Error).message });
    }
  }

  if (stage.kind === 'in') {
    const { join: j, choices } = stage;
    const options: RoomOptions = {
      adaptiveStream: true,
      dynacast: true,
      videoCaptureDefaults: { deviceId: choices.videoDeviceId || undefined },
      audioCaptureDefaults: { deviceId: choices.audioDeviceId || undefined },
    };
    return (
      <LiveKitRoom
        className="meeting"
        data-lk-theme="default"
        serverUrl={j.livekitHost}
        token={j.token}
        connect
        options={options}
        video={secure && choices.videoEnabled}
        audio={secure && choices.audioEnabled}
        onDisconnected={(reason) => setStage({ kind: 'left', ...describe(reason) })}
        onError={(e) => console.error('meeting error', e)}
      >
        <h1 className="visually-hidden">Meeting {room}</h1>
        <div className="conference"><VideoConference /></div>
        <div className="side">
          <RecordingIndicator />
          <PeoplePanel room={room} me={j} />
          {j.role === 'moderator' && <RecordingControls room={room} />}
        </div>
      </LiveKitRoom>
    );
  }

  if (stage.kind === 'left') {
    return (
      <section className="page narrow" aria-labelledby="left-title">
        <h1 id="left-title">{stage.removed ? 'You were removed' : 'You left the meeting'}</h1>
        <p role="alert">{stage.why}</p>
        <div className="actions">
          <button type="button" onClick={() => setStage({ kind: 'prejoin' })}>Join again</button>
          {user && <Link className="button" to="/rooms">Back to rooms</Link>}
        </div>
      </section>
    );
  }

  return (
    <section className="page" aria-labelledby="prejoin-title">
      <h1 id="prejoin-title">Join “{room}”</h1>
      <p className="muted">
        Share this meeting: <a href={roomLink(room)}>{roomLink(room)}</a>
        {!user && <> · You join as a guest. <Link to="/signin" state={{ next: `/r/${room}` }}>Sign in</Link> instead</>}
      </p>
      {stage.error && <p role="alert" className="error">{stage.error}</p>}
      {secure ? (
        <div className="prejoin" data-lk-theme="default">
          <PreJoin
            defaults={{ username: user?.name ?? '', videoEnabled: true, audioEnabled: true }}
            userLabel={user ? 'Your name (your account name is shown to others)' : 'Your name (as a guest)'}
            joinLabel="Join meeting"
            persistUserChoices={false}
            onSubmit={join}
          />
        </div>
      ) : (
        <InsecureJoin defaultName={user?.name ?? ''} onJoin={join} />
      )}
    </section>
  );
}

/** Browsers give camera and microphone only to secure pages (HTTPS, or localhost). */
function InsecureJoin({ defaultName, onJoin }: { defaultName: string; onJoin: (c: LocalUserChoices) => void }) {
  function submit(e: FormEvent<HTMLFormElement>) {
    e.preventDefault();
    const username = String(new FormData(e.currentTarget).get('name'));
    onJoin({ username, videoEnabled: false, audioEnabled: false, videoDeviceId: '', audioDeviceId: '' });
  }
  return (
    <div className="card">
      <p role="alert" className="error">
        Your camera and microphone are unavailable here: this page is not secure
        ({window.location.protocol}//{window.location.host}). Browsers allow them only on HTTPS pages
        (or on localhost). Ask the administrator to enable TLS in bedrud
        (<code>server.enableTLS: true</code> with <code>server.certFile</code> and <code>server.keyFile</code>),
        then open this page with https://.
      </p>
      <form onSubmit={submit} className="form">
        <label>Your name<input name="name" defaultValue={defaultName} required maxLength={64} /></label>
        <button type="submit" className="primary">Join without camera and microphone</button>
      </form>
    </div>
  );
}
