//! Embedded recording out of the box: bedrud with `recording.enabled: true` and nothing else
//! about recording runs its own Redis and the egress worker (found on `$PATH`, as the packaged
//! one is found at /usr/lib/bedrud/egress), and a recording asked of its embedded LiveKit
//! through `livekit-api`'s `EgressClient` holds a real participant's 440 Hz tone. The worker,
//! killed, comes back; bedrud, killed, leaves no process and no stale file behind. A room
//! composite with video, started and stopped through bedrud's API, records through the
//! PulseAudio daemon bedrud runs for the worker (and is refused with a 503 while that daemon is
//! not running). Runs in a private network namespace (scripts/netns-run.sh): egress' WebRTC
//! stack gathers no candidates on loopback.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::audio::{self, assert_length, assert_tone_from, Source};
use common::egress::wait_status;
use common::video::{frame_pixels, share_of, video_stream, CAMERA_RGB};
use common::*;
use livekit_api::services::egress::{EgressClient, EgressOutput, RoomCompositeOptions};
use livekit_api::services::room::{CreateRoomOptions, RoomClient};
use livekit_protocol as proto;
use nix::sys::signal::Signal;
use serde_json::{json, Value};

const RECORD_FOR: Duration = Duration::from_secs(5);

/// One recording test at a time: on a 2-core host a composite with video beside another
/// recording starves both.
static ONE_RECORDING: Mutex<()> = Mutex::new(());

struct Setup {
    sb: Sandbox,
    path_env: String,
}

impl Setup {
    fn new() -> Setup {
        assert!(
            which("redis-server").is_some(),
            "redis-server is not installed: apt-get install redis-server (scripts/setup.sh does)"
        );
        let sb = Sandbox::new();
        sb.write_config(&(sb.embedded_config(LIVEKIT, "") + "recording:\n  enabled: true\n"));
        let path_env = format!("{}:/usr/local/bin:/usr/bin:/bin", egress_dir().display());
        Setup { sb, path_env }
    }

    fn start(&self) -> Bedrud {
        let mut b = self.sb.start(&[("PATH", &self.path_env)]);
        b.wait_ready();
        b
    }

    fn data(&self) -> PathBuf {
        self.sb.path().join("data")
    }

    /// The generated files of one kind in bedrud's `$TMPDIR`.
    fn generated(&self, prefix: &str) -> Vec<PathBuf> {
        std::fs::read_dir(self.sb.tmp())
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
            .collect()
    }

    fn livekit_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.sb.ports.livekit)
    }

    fn egress(&self) -> EgressClient {
        EgressClient::with_api_key(&self.livekit_url(), "APItest", SECRET)
    }
}

/// `GET /api/admin/livekit`'s `recording` part.
fn recording(b: &Bedrud) -> Value {
    let admin = b.admin_token().expect("no admin token");
    let (st, body) = get_json_as(&b.url("/api/admin/livekit"), Some(&admin)).unwrap();
    assert_eq!(st, 200, "{body}");
    body["recording"].clone()
}

/// Waits for the worker (and Redis) to be ready, other than `old_worker`; returns the pids.
fn wait_recording_ready(b: &mut Bedrud, old_worker: Option<u64>) -> (u32, u32, Value) {
    b.wait_for("the egress worker and Redis to be ready", |b| {
        let r = recording(b);
        let worker = r["worker"]["pid"].as_u64()?;
        let redis = r["redis"]["pid"].as_u64()?;
        let ready = r["worker"]["state"] == "ready" && r["redis"]["state"] == "ready";
        (ready && Some(worker) != old_worker).then(|| (worker as u32, redis as u32, r.clone()))
    })
}

fn redis_password(data: &Path) -> String {
    let text = std::fs::read_to_string(data.join("recording-redis.yaml")).unwrap();
    let doc: Value = yaml_serde::from_str(&text).unwrap();
    doc["password"].as_str().unwrap().to_string()
}

fn mp4(dir: &Path, name: &str) -> EgressOutput {
    EgressOutput::File(proto::EncodedFileOutput {
        file_type: proto::EncodedFileType::Mp4 as i32,
        filepath: dir.join(name).display().to_string(),
        ..Default::default()
    })
}

fn audio_only() -> RoomCompositeOptions {
    RoomCompositeOptions {
        audio_only: true,
        ..Default::default()
    }
}

#[test]
fn embedded_mode_runs_redis_and_egress_and_records() {
    require_private_network("recording_worker");
    let _one = ONE_RECORDING.lock().unwrap_or_else(|e| e.into_inner());
    let setup = Setup::new();
    let mut b = setup.start();
    let (worker, redis, status) = wait_recording_ready(&mut b, None);
    assert_eq!(status["redis"]["managed"], true, "{status}");

    // Generated configs and the stored Redis settings are private; no secret in any argv or log.
    let data = setup.data();
    let mut private = vec![data.join("recording-redis.yaml")];
    private.extend(setup.generated("bedrud-redis-"));
    private.extend(setup.generated("bedrud-egress-"));
    assert_eq!(private.len(), 3, "{private:?}");
    for f in &private {
        assert_eq!(mode(f) & 0o777, 0o600, "{}", f.display());
    }
    let password = redis_password(&data);
    assert!(password.len() >= 32);
    for secret in [password.as_str(), SECRET] {
        assert!(
            processes_with("cmdline", secret).is_empty(),
            "a secret is in a process's arguments"
        );
        assert!(!b.logs().contains(secret), "a secret is in bedrud's log");
    }
    // doctor, beside the running bedrud, finds everything in order.
    let bedrud = std::process::Command::new(env!("CARGO_BIN_EXE_bedrud"));
    let (_, findings) = setup.sb.doctor_with(bedrud, &setup.path_env, &[]);
    let level = |check: &str| {
        let f = findings.iter().find(|f| f["check"] == check);
        f.unwrap_or_else(|| panic!("no {check} in {findings:#?}"))["level"].clone()
    };
    for check in [
        "Recording Redis",
        "Egress worker",
        "Recordings folder",
        "Egress temp folder",
    ] {
        assert_eq!(level(check), "OK", "{check}: {findings:#?}");
    }
    assert_ne!(level("GStreamer elements"), "FAIL", "{findings:#?}");
    // The worker's own folder first on its PATH; its handlers will carry the owner mark.
    let environ = std::fs::read(format!("/proc/{worker}/environ")).unwrap();
    let environ = String::from_utf8_lossy(&environ);
    let egress_path = format!("PATH={}:", egress_dir().display());
    assert!(environ.contains(&egress_path), "{environ}");
    assert!(environ.contains("BEDRUD_EGRESS_OWNER="), "{environ}");

    let rt = tokio::runtime::Runtime::new().unwrap();
    let room = "tone";
    rt.block_on(async {
        RoomClient::with_api_key(&setup.livekit_url(), "APItest", SECRET)
            .create_room(room, CreateRoomOptions::default())
            .await
            .unwrap();
    });
    let token = livekit_token("alice", room);
    let ws = format!("ws://127.0.0.1:{}", setup.sb.ports.livekit);
    let alice = Participant::join(&ws, &token, &[]);
    alice.wait_event("published", |e| e["source"] == "microphone");

    // A recording into the folder bedrud prepared for egress' files.
    let incoming = data.join("recordings/.incoming");
    assert!(incoming.is_dir());
    let client = setup.egress();
    let (file, secs) = rt.block_on(async {
        let started = client
            .start_room_composite_egress(room, vec![mp4(&incoming, "room.mp4")], audio_only())
            .await
            .unwrap();
        let id = started.egress_id;
        let active = |s| {
            assert!(s < proto::EgressStatus::EgressEnding, "ended early: {s:?}");
            s == proto::EgressStatus::EgressActive
        };
        wait_status(&client, &id, "active", active, || b.logs()).await;
        tokio::time::sleep(RECORD_FOR).await;
        client.stop_egress(&id).await.unwrap();
        let finished = |s| s >= proto::EgressStatus::EgressComplete;
        let info = wait_status(&client, &id, "finished", finished, || b.logs()).await;
        assert_eq!(
            info.status(),
            proto::EgressStatus::EgressComplete,
            "{:?}",
            info.error
        );
        let f = info.file_results.first().expect("no file result").clone();
        (PathBuf::from(f.location), f.duration as f64 / 1e9)
    });
    assert!(file.starts_with(&incoming), "{}", file.display());
    assert_eq!(audio::streams(&file), ["audio:opus"], "{}", file.display());
    audio::assert_tone(&file, secs, RECORD_FOR);

    // The worker killed: restarted, and LiveKit answers throughout.
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(worker as i32), Signal::SIGKILL).unwrap();
    let (worker, _, status) = wait_recording_ready(&mut b, Some(worker as u64));
    assert!(status["worker"]["restarts"].as_u64() >= Some(1), "{status}");
    assert_eq!(get_status(&format!("{}/", setup.livekit_url())), Some(200));
    assert_eq!(b.ready().map(|r| r.0), Some(200));

    // bedrud killed in the middle of a recording: Redis, LiveKit and the worker die with it;
    // the handler recording for it (in a session of its own) is gone by the next start at the
    // latest, and so are the files the killed bedrud left.
    let owner = format!("BEDRUD_EGRESS_OWNER={}", data.join("egress-tmp").display());
    let started = rt.block_on(async {
        let s = client
            .start_room_composite_egress(room, vec![mp4(&incoming, "cut.mp4")], audio_only())
            .await
            .unwrap();
        let active = |s| s == proto::EgressStatus::EgressActive;
        wait_status(&client, &s.egress_id, "active", active, || b.logs()).await
    });
    let handlers: Vec<u32> = processes_with("environ", &owner)
        .into_iter()
        .filter(|p| *p != worker)
        .collect();
    assert!(!handlers.is_empty(), "no handler for {}", started.egress_id);
    let livekit = b.livekit_pid();
    b.signal(Signal::SIGKILL);
    b.wait_exit();
    for (pid, what) in [
        (worker, "egress"),
        (redis, "redis-server"),
        (livekit, "livekit-server"),
    ] {
        wait_gone(pid, what);
    }
    let survivors: Vec<u32> = handlers.iter().copied().filter(|p| alive(*p)).collect();
    eprintln!("handlers alive right after bedrud was killed: {survivors:?} of {handlers:?}");
    drop(alice);

    let mut b = setup.start();
    let (worker, redis, _) = wait_recording_ready(&mut b, None);
    for pid in &handlers {
        wait_gone(*pid, "a handler of the killed bedrud");
    }
    assert_eq!(setup.generated("bedrud-redis-").len(), 1);
    assert_eq!(setup.generated("bedrud-egress-").len(), 1);
    assert_eq!(setup.generated("bedrud-livekit-").len(), 1);
    assert_eq!(redis_password(&data), password, "the password is kept");

    // A clean stop leaves nothing either.
    let livekit = b.livekit_pid();
    assert!(b.terminate().success(), "{}", b.logs());
    for (pid, what) in [
        (worker, "egress"),
        (redis, "redis-server"),
        (livekit, "livekit-server"),
    ] {
        assert!(!alive(pid), "{what} outlived bedrud's stop");
    }
    assert!(processes_with("environ", &owner).is_empty());
    for prefix in ["bedrud-redis-", "bedrud-egress-", "bedrud-livekit-"] {
        assert!(setup.generated(prefix).is_empty(), "{prefix}* left");
    }
    for secret in [password.as_str(), SECRET] {
        assert!(!b.logs().contains(secret), "a secret is in bedrud's log");
    }
}

#[test]
fn an_existing_redis_is_used_and_one_that_does_not_answer_stops_the_start() {
    require_private_network("recording_worker");
    let setup = Setup::new();
    let base = setup.sb.embedded_config(LIVEKIT, "");

    // Nothing listens there: bedrud refuses to start, naming the key, rather than letting
    // LiveKit and egress fail over and over.
    let dead = free_port(false);
    setup.sb.write_config(&format!(
        "{base}recording:\n  enabled: true\n  redis:\n    address: 127.0.0.1:{dead}\n    password: never-printed-0123\n"
    ));
    let mut b = setup.sb.start(&[("PATH", &setup.path_env)]);
    let status = b.wait_exit();
    assert!(!status.success());
    let log = b.logs();
    assert!(
        log.contains("recording.redis") && log.contains(&format!("127.0.0.1:{dead}")),
        "{log}"
    );
    assert!(!log.contains("never-printed"), "{log}");

    // One that answers: LiveKit and egress use it, bedrud runs no Redis of its own.
    let password = "existing-redis-password-0123";
    let (_redis, port) = redis(setup.sb.path(), Some(password));
    setup.sb.write_config(&format!(
        "{base}recording:\n  enabled: true\n  redis:\n    address: 127.0.0.1:{port}\n    password: {password}\n"
    ));
    let mut b = setup.start();
    let status = b.wait_for("the egress worker to be ready", |b| {
        let r = recording(b);
        (r["worker"]["state"] == "ready").then_some(r)
    });
    assert_eq!(status["redis"]["managed"], false, "{status}");
    assert_eq!(status["redis"]["address"], format!("127.0.0.1:{port}"));
    assert!(setup.generated("bedrud-redis-").is_empty());
    assert!(!setup.data().join("recording-redis.yaml").exists());
    assert!(!b.logs().contains(password));
    assert!(b.terminate().success());
}

/// The PulseAudio processes bedrud runs for the worker of this data folder (their environment
/// names its folder).
fn pulse_processes(data: &Path) -> Vec<u32> {
    let dir = data.join("egress-pulse");
    processes_with("environ", &format!("XDG_RUNTIME_DIR={}", dir.display()))
}

/// `GET /api/recordings/{id}` until `done` accepts it (polled every 20 ms, so the figures it
/// gives are that fine); returns it.
fn wait_recording(
    b: &mut Bedrud,
    token: &str,
    id: &str,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let path = format!("/api/recordings/{id}");
    b.wait_for(&format!("recording {id} to be {what}"), |b| {
        let (st, r) = b.call("GET", &path, Some(token), None);
        assert_eq!(st, 200, "{r}");
        done(&r).then_some(r)
    })
}

fn finished(r: &Value) -> bool {
    r["status"] == "complete" || r["status"] == "failed"
}

/// A room composite with video through bedrud's API in embedded mode, as a moderator records a
/// meeting: refused with a 503 while bedrud's PulseAudio cannot run (audio only still records),
/// then, once it runs, recorded, downloaded through bedrud, and the file shows the camera and
/// holds the tone for as long as the API says.
#[test]
fn embedded_mode_records_a_room_composite_with_video_through_the_api_and_its_pulseaudio() {
    require_private_network("recording_worker");
    for program in ["pulseaudio", "pactl", "chromium", "Xvfb"] {
        assert!(
            which(program).is_some(),
            "{program} is not installed, and the room composite with video needs it: \
             apt-get install pulseaudio pulseaudio-utils chromium xvfb \
             (scripts/install-egress.sh installs them)"
        );
    }
    let _one = ONE_RECORDING.lock().unwrap_or_else(|e| e.into_inner());
    let setup = Setup::new();
    let data = setup.data();
    // PulseAudio cannot run: a folder where its socket goes makes every start fail to bind
    // (it exits, bedrud restarts it, again and again) until the folder is removed. A
    // deterministic stand-in for a PulseAudio that died and is not back yet.
    let dir = data.join("egress-pulse");
    let socket = dir.join("native");
    std::fs::create_dir_all(&socket).unwrap();
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let mut b = setup.start();
    wait_recording_ready(&mut b, None);
    let down = b.wait_for("PulseAudio to have failed to start", |b| {
        let r = recording(b);
        (r["pulse"]["restarts"].as_u64() >= Some(1) && r["pulse"]["state"] != "ready").then_some(r)
    });
    assert_eq!(down["pulse"]["managed"], true, "{down}");

    let (alice, _, _) = b.register("alice@bedrud.test");
    let room = "picture";
    let (st, r) = b.call(
        "POST",
        "/api/room/create",
        Some(&alice),
        Some(json!({"name": room})),
    );
    assert_eq!(st, 201, "{r}");
    // Joined as bedrud's web app would (which creates the LiveKit room), straight to LiveKit.
    let (st, joined) = b.call(
        "POST",
        "/api/room/join",
        Some(&alice),
        Some(json!({"roomName": room})),
    );
    assert_eq!(st, 200, "{joined}");
    let token = joined["token"].as_str().unwrap().to_string();
    let ws = format!("ws://127.0.0.1:{}", setup.sb.ports.livekit);
    let colour = CAMERA_RGB.map(|c| format!("{c:02x}")).concat();
    let participant = Participant::join(&ws, &token, &["--try-camera", "--camera-colour", &colour]);
    participant.wait_event("published", |e| e["source"] == "microphone");
    participant.wait_event("published", |e| e["source"] == "camera");
    let start_path = format!("/api/room/{room}/recording/start");
    let stop_path = format!("/api/room/{room}/recording/stop");
    let video = json!({"audioOnly": false, "layout": "grid"});

    // With video: 503 with the cause and the fix, and nothing recorded or kept.
    let (st, r) = b.call("POST", &start_path, Some(&alice), Some(video.clone()));
    assert_eq!(st, 503, "{r}");
    let msg = r["error"].as_str().unwrap_or_default();
    assert!(msg.contains("PulseAudio") && msg.contains("fix:"), "{msg}");
    eprintln!("video without PulseAudio: {msg}");
    let recordings = |b: &Bedrud| b.room_recordings(&alice, room);
    assert!(
        recordings(&b).is_empty(),
        "a refused start leaves nothing behind"
    );
    // Audio only does not need PulseAudio: it records meanwhile.
    let (st, rec) = b.call(
        "POST",
        &start_path,
        Some(&alice),
        Some(json!({"audioOnly": true})),
    );
    assert_eq!(st, 201, "{rec}");
    let id = rec["id"].as_str().unwrap().to_string();
    wait_recording(&mut b, &alice, &id, "active", |r| r["status"] == "active");
    let (st, r) = b.call("POST", &stop_path, Some(&alice), None);
    assert_eq!(st, 200, "{r}");
    let done = wait_recording(&mut b, &alice, &id, "finished", finished);
    assert_eq!(done["status"], "complete", "{done}");

    // PulseAudio can run again: bedrud's next restart brings it up, and its folder and script
    // are private, the worker reaches it.
    std::fs::remove_dir(&socket).unwrap();
    let status = b.wait_for("PulseAudio to be ready", |b| {
        let r = recording(b);
        (r["pulse"]["state"] == "ready").then_some(r)
    });
    let pulse = status["pulse"]["pid"].as_u64().expect("no PulseAudio pid") as u32;
    assert_eq!(mode(&dir) & 0o777, 0o700, "{}", dir.display());
    assert_eq!(status["pulse"]["address"], socket.display().to_string());
    let scripts = setup.generated("bedrud-pulse-");
    assert_eq!(scripts.len(), 1, "{scripts:?}");
    assert_eq!(mode(&scripts[0]) & 0o777, 0o600);
    assert_eq!(pulse_processes(&data), [pulse]);
    let worker = status["worker"]["pid"].as_u64().unwrap();
    let environ = std::fs::read(format!("/proc/{worker}/environ")).unwrap();
    let pulse_server = format!("PULSE_SERVER=unix:{}", socket.display());
    assert!(
        String::from_utf8_lossy(&environ).contains(&pulse_server),
        "the worker's environment lacks {pulse_server}"
    );

    // Start → active → stop → complete, through the API.
    let asked = Instant::now();
    let (st, rec) = b.call("POST", &start_path, Some(&alice), Some(video));
    assert_eq!(st, 201, "{rec}");
    assert_eq!(
        (rec["audioOnly"].clone(), rec["layout"].clone()),
        (json!(false), json!("grid")),
        "{rec}"
    );
    let id = rec["id"].as_str().unwrap().to_string();
    let active = wait_recording(&mut b, &alice, &id, "active", |r| {
        r["status"] == "active" || finished(r)
    });
    assert_eq!(active["status"], "active", "{active}");
    let to_active = asked.elapsed();
    std::thread::sleep(RECORD_FOR);
    let stopping = Instant::now();
    let (st, r) = b.call("POST", &stop_path, Some(&alice), None);
    assert_eq!(st, 200, "{r}");
    let done = wait_recording(&mut b, &alice, &id, "finished", finished);
    let to_file = stopping.elapsed();
    let web = Source::Web {
        span_secs: asked.elapsed().as_secs_f64(),
    };
    assert_eq!(done["status"], "complete", "{done}\n{}", b.logs());
    eprintln!(
        "figures: video composite through the API: start request → active {:.2} s, stop \
         request → complete (file available) {:.2} s; load average {}",
        to_active.as_secs_f64(),
        to_file.as_secs_f64(),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );

    // Downloaded through bedrud: what the API says of it is what the file holds.
    let url = b.url(&format!("/api/recordings/{id}/download"));
    let (st, headers, bytes) = get_bytes(&url, &alice, None);
    assert_eq!(st, 200);
    assert_eq!(headers["content-type"], "video/mp4");
    assert_eq!(Some(bytes.len() as i64), done["size"].as_i64(), "{done}");
    let file = setup.sb.path().join("downloaded.mp4");
    std::fs::write(&file, &bytes).unwrap();
    let mut kinds = audio::streams(&file);
    kinds.sort();
    assert_eq!(kinds, ["audio:opus", "video:h264"], "{}", file.display());
    let secs = done["durationMs"].as_i64().unwrap_or(0) as f64 / 1000.0;
    let v = video_stream(&file);
    eprintln!("{}: {v:?}, the API says {secs:.2} s", file.display());
    assert_eq!(
        (v.codec.as_str(), v.width, v.height),
        ("h264", 1280, 720),
        "{v:?}"
    );
    assert!(v.frames > 0, "no video frames: {v:?}");
    assert_length(&file, "video", v.secs, secs, web);
    assert!(
        v.secs >= RECORD_FOR.as_secs_f64() - 2.0,
        "only {:.2} s of video",
        v.secs
    );
    // The grid's one tile is the participant's camera: its green fills most of a late frame.
    let green = share_of(&frame_pixels(&file, v.secs - 1.5), CAMERA_RGB);
    assert!(
        green >= 0.5,
        "only {:.0} % of a frame is the camera's green",
        green * 100.0
    );
    // The sound went through Chromium and bedrud's PulseAudio: one second may drop out.
    assert_tone_from(&file, secs, RECORD_FOR, web);
    drop(participant);

    // bedrud killed: its PulseAudio dies with it (and the next start runs exactly one).
    b.signal(Signal::SIGKILL);
    b.wait_exit();
    wait_gone(pulse, "pulseaudio");
    let mut b = setup.start();
    let status = b.wait_for("PulseAudio to be ready again", |b| {
        let r = recording(b);
        (r["pulse"]["state"] == "ready").then_some(r)
    });
    let pulse = status["pulse"]["pid"].as_u64().unwrap() as u32;
    assert_eq!(pulse_processes(&data), [pulse]);
    assert_eq!(setup.generated("bedrud-pulse-").len(), 1);

    // A clean stop: no PulseAudio left, nor its script.
    assert!(b.terminate().success(), "{}", b.logs());
    assert!(!alive(pulse), "pulseaudio outlived bedrud's stop");
    assert!(pulse_processes(&data).is_empty());
    assert!(setup.generated("bedrud-pulse-").is_empty());
}
