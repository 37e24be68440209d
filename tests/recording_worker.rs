//! Embedded recording out of the box: bedrud with `recording.enabled: true` and nothing else
//! about recording runs its own Redis and the egress worker (found on `$PATH`, as the packaged
//! one is found at /usr/lib/bedrud/egress), and a recording asked of its embedded LiveKit
//! through `livekit-api`'s `EgressClient` holds a real participant's 440 Hz tone. The worker,
//! killed, comes back; bedrud, killed, leaves no process and no stale file behind. A room
//! composite with video records through the PulseAudio daemon bedrud runs for the worker. Runs in a
//! private network namespace (scripts/netns-run.sh): egress' WebRTC stack gathers no candidates
//! on loopback.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::audio;
use common::*;
use livekit_api::access_token::{AccessToken, VideoGrants};
use livekit_api::services::egress::{
    encoding, EgressClient, EgressListFilter, EgressListOptions, EgressOutput, RoomCompositeOptions,
};
use livekit_api::services::room::{CreateRoomOptions, RoomClient};
use livekit_protocol as proto;
use nix::sys::signal::Signal;
use serde_json::Value;

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

/// Every process whose command line or environment names `needle`.
fn processes_with(file: &str, needle: &str) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| alive(*pid))
        .filter(|pid| {
            let text = std::fs::read(format!("/proc/{pid}/{file}")).unwrap_or_default();
            String::from_utf8_lossy(&text).contains(needle)
        })
        .collect()
}

fn redis_password(data: &Path) -> String {
    let text = std::fs::read_to_string(data.join("recording-redis.yaml")).unwrap();
    let doc: Value = yaml_serde::from_str(&text).unwrap();
    doc["password"].as_str().unwrap().to_string()
}

async fn wait_status(
    client: &EgressClient,
    id: &str,
    done: impl Fn(proto::EgressStatus) -> bool,
) -> proto::EgressInfo {
    let start = Instant::now();
    loop {
        let opts = EgressListOptions {
            filter: EgressListFilter::Egress(id.to_string()),
            active: false,
            page_token: None,
        };
        let items = client.list_egress(opts).await.unwrap();
        if let Some(info) = items.into_iter().next() {
            if done(info.status()) {
                return info;
            }
            assert!(start.elapsed() < PATIENCE, "egress {id}: {info:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
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
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bedrud"))
        .args(["doctor", "--json", "--config"])
        .arg(setup.sb.config_path())
        .env_clear()
        .env("PATH", &setup.path_env)
        .env("TMPDIR", setup.sb.tmp())
        .output()
        .unwrap();
    let findings: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "doctor --json: {e}: {}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
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
    let token = AccessToken::with_api_key("APItest", SECRET)
        .with_identity("alice")
        .with_grants(VideoGrants {
            room_join: true,
            room: room.into(),
            ..Default::default()
        })
        .to_jwt()
        .unwrap();
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
        wait_status(&client, &id, |s| {
            assert!(s < proto::EgressStatus::EgressEnding, "ended early: {s:?}");
            s == proto::EgressStatus::EgressActive
        })
        .await;
        tokio::time::sleep(RECORD_FOR).await;
        client.stop_egress(&id).await.unwrap();
        let info = wait_status(&client, &id, |s| s >= proto::EgressStatus::EgressComplete).await;
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
        wait_status(&client, &s.egress_id, |s| {
            s == proto::EgressStatus::EgressActive
        })
        .await
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

#[test]
fn embedded_mode_records_a_room_composite_with_video_through_its_pulseaudio() {
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
    let mut b = setup.start();
    wait_recording_ready(&mut b, None);
    let status = b.wait_for("PulseAudio to be ready", |b| {
        let r = recording(b);
        (r["pulse"]["state"] == "ready").then_some(r)
    });
    assert_eq!(status["pulse"]["managed"], true, "{status}");
    let pulse = status["pulse"]["pid"].as_u64().expect("no PulseAudio pid") as u32;
    let dir = data.join("egress-pulse");
    let socket = dir.join("native");
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

    let rt = tokio::runtime::Runtime::new().unwrap();
    let room = "picture";
    rt.block_on(async {
        RoomClient::with_api_key(&setup.livekit_url(), "APItest", SECRET)
            .create_room(room, CreateRoomOptions::default())
            .await
            .unwrap();
    });
    let token = AccessToken::with_api_key("APItest", SECRET)
        .with_identity("alice")
        .with_grants(VideoGrants {
            room_join: true,
            room: room.into(),
            ..Default::default()
        })
        .to_jwt()
        .unwrap();
    let ws = format!("ws://127.0.0.1:{}", setup.sb.ports.livekit);
    let alice = Participant::join(&ws, &token, &["--try-camera", "--camera-colour", "00c800"]);
    alice.wait_event("published", |e| e["source"] == "microphone");
    alice.wait_event("published", |e| e["source"] == "camera");

    let incoming = data.join("recordings/.incoming");
    let client = setup.egress();
    // 720p30 H.264 with Opus (the MP4 default AAC needs `faac`, which Debian lacks).
    let options = RoomCompositeOptions {
        layout: "grid".into(),
        encoding: encoding::H264_720P_30,
        ..Default::default()
    };
    let (file, secs) = rt.block_on(async {
        let started = client
            .start_room_composite_egress(room, vec![mp4(&incoming, "video.mp4")], options)
            .await
            .unwrap();
        let id = started.egress_id;
        let active = wait_status(&client, &id, |s| s >= proto::EgressStatus::EgressActive).await;
        assert_eq!(
            active.status(),
            proto::EgressStatus::EgressActive,
            "{:?}\nbedrud's log:\n{}",
            active.error,
            b.logs()
        );
        tokio::time::sleep(RECORD_FOR).await;
        client.stop_egress(&id).await.unwrap();
        let info = wait_status(&client, &id, |s| s >= proto::EgressStatus::EgressComplete).await;
        assert_eq!(
            info.status(),
            proto::EgressStatus::EgressComplete,
            "{:?}",
            info.error
        );
        let f = info.file_results.first().expect("no file result").clone();
        (PathBuf::from(f.location), f.duration as f64 / 1e9)
    });
    let mut kinds = audio::streams(&file);
    kinds.sort();
    assert_eq!(kinds, ["audio:opus", "video:h264"], "{}", file.display());
    // The sound went through Chromium and bedrud's PulseAudio: one second may drop out.
    audio::assert_tone_missing_at_most(&file, secs, RECORD_FOR, 1);
    drop(alice);

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
