#!/usr/bin/env python3
"""A real LiveKit participant for bedrud's integration tests.

Joins a room with the livekit realtime SDK (native WebRTC), publishes a synthetic
microphone track, and reports what happens to it as JSON lines on stdout:

  connected            identity, sid, room                 after Room.connect() returns
  published            source, sid, kind                   publish_track() succeeded
  publish_failed       source, error                       publish_track() raised
  track_muted          sid, source                         "track_muted" for OUR publication
  track_unmuted        sid, source                         "track_unmuted" for OUR publication
  track_unpublished    sid, source                         "local_track_unpublished"
  permissions_changed  can_publish, can_subscribe,         "participant_permissions_changed"
                       can_publish_data, can_publish_sources, for OUR participant
                       hidden, can_update_metadata
  reconnecting / reconnected                               the SDK's own events
  disconnected         reason (DisconnectReason name)      "disconnected"; then exit 0
  state                identity, connection_state,         answer to the `state` command
                       permissions{...}, tracks[{sid,source,kind,muted}]
  error                error                               connect failed (exit 1) or bad command

Every line also has "t": seconds since the program started.
stdin commands, one per line: `leave`, `publish-camera`, `state`. EOF on stdin is ignored.

The camera (--try-camera, or the `publish-camera` command) is 320x240 at 10 frames a second: a
shade that cycles slowly through blue and red, or, with --camera-colour RRGGBB, a field of that
colour with a white bar 32 pixels wide moving across it, so that a recording of it can be checked
for that colour (tests/egress.rs) and shows motion.

Behaviour of SDK 1.2.1 / livekit-server 1.13.5 worth knowing:
- Room.connect() returns only once the peer connection is up, so "connected" means media
  can flow (LiveKit's participant_joined webhook is sent at that same moment).
- A source the token or permissions forbid is not rejected: the server ignores the
  request and publish_track() fails after the SDK's own 10 s timeout.
- When the server unpublishes our track (can_publish revoked) the SDK raises no event and
  keeps listing the publication, so `state` tracks are the SDK's view, not the server's.
"""

import argparse
import array
import asyncio
import itertools
import json
import logging
import math
import os
import sys
import threading
import time

# The JSON lines get a private copy of stdout; fd 1 itself then points at stderr, so
# anything the native WebRTC library or a stray print() writes can never corrupt them.
_out = os.fdopen(os.dup(1), "w", buffering=1)
os.dup2(2, 1)
sys.stdout = sys.stderr

# The SDK's native signal client honours *_PROXY variables; a test participant must reach
# the loopback server directly, never through a proxy.
for var in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
    os.environ.pop(var, None)

from livekit import rtc  # noqa: E402  (after the fd swap, so its import-time output is safe)

START = time.monotonic()
SAMPLE_RATE = 48000
# Names as used in token grants (VideoGrants.can_publish_sources), not the SDK's enum names.
SOURCE_NAMES = {
    rtc.TrackSource.SOURCE_UNKNOWN: "unknown",
    rtc.TrackSource.SOURCE_CAMERA: "camera",
    rtc.TrackSource.SOURCE_MICROPHONE: "microphone",
    rtc.TrackSource.SOURCE_SCREENSHARE: "screen_share",
    rtc.TrackSource.SOURCE_SCREENSHARE_AUDIO: "screen_share_audio",
}


def emit(event, **fields):
    _out.write(json.dumps({"event": event, "t": round(time.monotonic() - START, 3), **fields}) + "\n")


def permissions(p):
    return {
        "can_publish": p.can_publish,
        "can_subscribe": p.can_subscribe,
        "can_publish_data": p.can_publish_data,
        "can_publish_sources": [SOURCE_NAMES.get(s, str(s)) for s in p.can_publish_sources],
        "hidden": p.hidden,
        "can_update_metadata": p.can_update_metadata,
    }


def kind(pub):
    return "audio" if pub.kind == rtc.TrackKind.KIND_AUDIO else "video"


def track_fields(pub):
    return {"sid": pub.sid, "source": SOURCE_NAMES.get(pub.source, str(pub.source))}


class Participant:
    def __init__(self, camera_colour=None):
        self.camera_colour = camera_colour
        self.room = rtc.Room()
        self.done = asyncio.Event()
        self.tasks = set()  # feeders; kept referenced so they are not garbage-collected
        on = self.room.on

        def me(participant):
            return participant.identity == self.room.local_participant.identity

        # Server-side mutes (MutePublishedTrack) reach us as the room's track_muted event
        # with the local participant; remote participants' mutes are not our business.
        # The SDK fires it twice for one server mute (the mute request, then the echoed
        # track info), so only changes are reported.
        muted = {}

        def mute_changed(participant, pub, now):
            if me(participant) and muted.get(pub.sid, False) != now:
                muted[pub.sid] = now
                emit("track_muted" if now else "track_unmuted", **track_fields(pub))

        on("track_muted", lambda participant, pub: mute_changed(participant, pub, True))
        on("track_unmuted", lambda participant, pub: mute_changed(participant, pub, False))

        @on("local_track_unpublished")
        def _unpublished(pub):
            emit("track_unpublished", **track_fields(pub))

        @on("participant_permissions_changed")
        def _perms(participant, perms):
            if me(participant):
                emit("permissions_changed", **permissions(perms))

        on("reconnecting", lambda: emit("reconnecting"))
        on("reconnected", lambda: emit("reconnected"))

        @on("disconnected")
        def _disconnected(reason):
            emit("disconnected", reason=rtc.DisconnectReason.Name(reason))
            self.done.set()

    def spawn(self, coro):
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def publish(self, source, track, feed):
        name = SOURCE_NAMES[source]
        try:
            pub = await self.room.local_participant.publish_track(
                track, rtc.TrackPublishOptions(source=source)
            )
        except Exception as e:  # PublishTrackError, or a timeout surfacing as another error
            emit("publish_failed", source=name, error=getattr(e, "message", None) or repr(e))
            return
        self.spawn(feed)
        emit("published", source=name, sid=pub.sid, kind=kind(pub))

    async def publish_microphone(self):
        source = rtc.AudioSource(SAMPLE_RATE, 1)
        track = rtc.LocalAudioTrack.create_audio_track("microphone", source)
        await self.publish(rtc.TrackSource.SOURCE_MICROPHONE, track, feed_sine(source))

    async def publish_camera(self):
        source = rtc.VideoSource(320, 240)
        track = rtc.LocalVideoTrack.create_video_track("camera", source)
        await self.publish(rtc.TrackSource.SOURCE_CAMERA, track, feed_video(source, self.camera_colour))

    def state(self):
        lp = self.room.local_participant
        emit(
            "state",
            identity=lp.identity,
            sid=lp.sid,
            connection_state=rtc.ConnectionState.Name(self.room.connection_state),
            permissions=permissions(lp.permissions),
            tracks=[
                {**track_fields(p), "kind": kind(p), "muted": p.muted} for p in lp.track_publications.values()
            ],
        )

    async def command(self, line):
        cmd = line.strip()
        if cmd == "leave":
            await self.room.disconnect()  # emits "disconnected" (CLIENT_INITIATED)
            self.done.set()
        elif cmd == "publish-camera":
            await self.publish_camera()
        elif cmd == "state":
            self.state()
        elif cmd:
            emit("error", error=f"unknown command: {cmd}")


async def feed_sine(source):
    # One second of a 440 Hz tone loops seamlessly (a whole number of cycles); 20 ms per
    # frame. capture_frame() waits while the SDK's queue is full, which paces us at real time.
    tone = array.array("h", (int(8000 * math.sin(2 * math.pi * 440 * i / SAMPLE_RATE)) for i in range(SAMPLE_RATE)))
    n = SAMPLE_RATE // 50
    for i in itertools.cycle(range(50)):
        await source.capture_frame(rtc.AudioFrame(tone[i * n : (i + 1) * n].tobytes(), SAMPLE_RATE, 1, n))


async def feed_video(source, colour=None):
    w, h = 320, 240
    bar = 32
    shade = 0
    for frame in itertools.count():
        if colour is None:
            shade = (shade + 8) % 256
            pixels = bytes([shade, 64, 255 - shade, 255]) * (w * h)
        else:
            # One row, repeated: the colour, the white bar at x, the colour again. The bar
            # crosses the picture in about 3 s; it covers a tenth of it, so the colour dominates.
            x = (frame * 10) % (w - bar)
            px = bytes(colour) + b"\xff"
            row = px * x + b"\xff" * (4 * bar) + px * (w - bar - x)
            pixels = row * h
        source.capture_frame(rtc.VideoFrame(w, h, rtc.VideoBufferType.RGBA, pixels))
        await asyncio.sleep(0.1)


def colour(text):
    try:
        value = bytes.fromhex(text)
    except ValueError:
        value = b""
    if len(value) != 3:
        raise argparse.ArgumentTypeError(f"not an RRGGBB colour: {text!r}")
    return value


def read_stdin(loop, lines):
    # A thread instead of connect_read_pipe: works whether stdin is a pipe, a file or a tty.
    try:
        for line in sys.stdin:
            loop.call_soon_threadsafe(lines.put_nowait, line)
    except RuntimeError:  # the loop closed under us: we are exiting anyway
        pass


async def run_commands(p, lines):
    while True:
        await p.command(await lines.get())


async def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", required=True, help="ws://127.0.0.1:PORT")
    ap.add_argument("--token", required=True)
    ap.add_argument("--publish", choices=["audio", "none"], default="audio")
    ap.add_argument("--no-publish", dest="publish", action="store_const", const="none")
    ap.add_argument("--try-camera", action="store_true", help="also publish a synthetic camera track")
    ap.add_argument("--camera-colour", type=colour, metavar="RRGGBB",
                    help="the camera shows this colour with a moving white bar (default: a cycling shade)")
    ap.add_argument("--connect-timeout", type=float, default=10.0, help="seconds per signal attempt")
    args = ap.parse_args()

    p = Participant(args.camera_colour)
    try:
        options = rtc.RoomOptions(auto_subscribe=False, connect_timeout=args.connect_timeout)
        await p.room.connect(args.url, args.token, options)
    except Exception as e:
        emit("error", error=getattr(e, "message", None) or repr(e))
        return 1
    lp = p.room.local_participant
    emit("connected", identity=lp.identity, sid=lp.sid, room=p.room.name)

    if args.publish == "audio":
        await p.publish_microphone()
    if args.try_camera:
        await p.publish_camera()

    lines = asyncio.Queue()
    threading.Thread(target=read_stdin, args=(asyncio.get_running_loop(), lines), daemon=True).start()
    p.spawn(run_commands(p, lines))
    await p.done.wait()
    return 0


if __name__ == "__main__":
    logging.basicConfig(stream=sys.stderr, level=os.environ.get("PARTICIPANT_LOG", "WARNING").upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    code = asyncio.run(main())
    _out.flush()
    # Skip interpreter teardown: the native library's threads need not wind down first.
    os._exit(code)
