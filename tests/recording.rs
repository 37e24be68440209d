//! Recording through bedrud's API, with every part real: bedrud in external mode pointed at a
//! livekit-server with a `redis:` block, the LiveKit Egress worker (built by
//! scripts/install-egress.sh) on the same Redis, and a real Python participant publishing a
//! 440 Hz tone. The worker runs on the same host, so the local `.incoming/` path bedrud asks
//! for is one it can write (a worker on another host would need S3). LiveKit's webhooks reach
//! bedrud through a relay the test controls, so that a lost `egress_ended` can be staged.
//! Runs in a private network namespace (scripts/netns-run.sh): egress' WebRTC stack, like the
//! participant's, gathers no candidates on loopback. The S3 test does the same with
//! `recording.s3` pointed at a versitygw (tests/common/s3.rs): egress uploads, bedrud streams.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::audio::{assert_tone, streams};
use common::egress::{wait_status, write_worker_config};
use common::*;
use livekit_api::services::egress::EgressClient;
use livekit_protocol as proto;
use serde_json::{json, Value};

/// How long each recording runs once bedrud reports it active.
const RECORD_FOR: Duration = Duration::from_secs(5);

/// Forwards LiveKit's webhooks to bedrud, or swallows egress events (answering 200, so LiveKit
/// does not retry) while `drop_egress` is set: a webhook lost on the way.
struct Relay {
    port: u16,
    drop_egress: Arc<AtomicBool>,
    dropped: Arc<AtomicUsize>,
}

impl Relay {
    fn start(target: String) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let drop_egress = Arc::new(AtomicBool::new(false));
        let dropped = Arc::new(AtomicUsize::new(0));
        let (d, n) = (drop_egress.clone(), dropped.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (target, d, n) = (target.clone(), d.clone(), n.clone());
                std::thread::spawn(move || relay_one(conn, &target, &d, &n));
            }
        });
        Relay {
            port,
            drop_egress,
            dropped,
        }
    }
}

fn relay_one(conn: std::net::TcpStream, target: &str, drop: &AtomicBool, dropped: &AtomicUsize) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let (mut len, mut auth) = (0usize, None);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            match k.to_ascii_lowercase().as_str() {
                "content-length" => len = v.trim().parse().unwrap_or(0),
                "authorization" => auth = Some(v.trim().to_string()),
                _ => {}
            }
        }
    }
    let mut body = vec![0; len];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let event: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let is_egress = event["event"]
        .as_str()
        .is_some_and(|e| e.starts_with("egress_"));
    let status = if is_egress && drop.load(Ordering::SeqCst) {
        dropped.fetch_add(1, Ordering::SeqCst);
        200
    } else {
        call_with("POST", target, &[("Authorization", auth)], Some(body)).0
    };
    let mut conn = conn;
    let _ = write!(
        conn,
        "HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
}

const TONE_ROOM: &str = "tone";

struct Stack {
    redis: Option<Proc>,
    _livekit: LiveKitProcess,
    egress: Proc,
    egress_log: PathBuf,
    relay: Relay,
    bedrud: Bedrud,
    sandbox: Sandbox,
}

impl Stack {
    fn start() -> Stack {
        Stack::start_with("")
    }

    /// What every test here records: alice signs up and creates room `TONE_ROOM`, where a real
    /// participant publishes the 440 Hz tone. Returns alice's token and the participant.
    fn tone_room(&self) -> (String, Participant) {
        let (alice, _, _) = self.bedrud.register("alice@bedrud.test");
        let (st, r) = self.bedrud.call(
            "POST",
            "/api/room/create",
            Some(&alice),
            Some(json!({"name": TONE_ROOM})),
        );
        assert_eq!(st, 201, "{r}");
        let ws = format!("ws://127.0.0.1:{}", self.sandbox.ports.livekit);
        let participant = Participant::join(&ws, &livekit_token("tone", TONE_ROOM), &[]);
        participant.wait_event("published", |e| e["source"] == "microphone");
        (alice, participant)
    }

    /// The stack with `recording` holding these extra lines (indented under `recording:`).
    fn start_with(recording: &str) -> Stack {
        let sandbox = Sandbox::new();
        let dir = sandbox.path().to_path_buf();
        let password = "test-redis-password-0123456789";
        let (redis, redis_port) = redis(&dir, Some(password));
        let ports = sandbox.ports;
        let relay = Relay::start(format!(
            "http://127.0.0.1:{}/api/livekit/webhook",
            ports.api
        ));
        let lk_config = dir.join("livekit.yaml");
        std::fs::write(
            &lk_config,
            livekit_yaml(&ports, "APItest")
                + &format!(
                    "redis:\n  address: 127.0.0.1:{redis_port}\n  password: {password}\n\
                     webhook:\n  api_key: APItest\n  urls:\n    - http://127.0.0.1:{}/\n",
                    relay.port
                ),
        )
        .unwrap();
        let livekit = LiveKitProcess::start(&lk_config);

        let (egress, egress_log) = start_worker(&dir, ports.livekit, redis_port, password);

        // One day of retention: the test ages a recording to see it go.
        sandbox.write_config(&format!(
            "server:\n  bindAddress: 127.0.0.1\n  port: {api}\n  dataDir: {data}\n\
             livekit:\n  embedded: false\n  host: ws://127.0.0.1:{lk}\n  internalHost: http://127.0.0.1:{lk}\n\
             \x20 apiKey: APItest\n  apiSecret: {SECRET}\n\
             rooms:\n  reconcileInterval: 2s\n\
             recording:\n  enabled: true\n  retainDays: 1\n{recording}",
            api = ports.api,
            data = dir.join("data").display(),
            lk = ports.livekit,
        ));
        let mut bedrud = sandbox.start(&[]);
        bedrud.wait_ready();
        let mut stack = Stack {
            redis: Some(redis),
            _livekit: livekit,
            egress,
            egress_log,
            relay,
            bedrud,
            sandbox,
        };
        stack.wait_worker();
        stack
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.egress_log).unwrap_or_default()
    }

    /// Waits until the worker logs "service ready" (subscribed to LiveKit's requests on Redis)
    /// for the `n`th time (a restarted worker appends to the same log).
    fn wait_worker_n(&mut self, n: usize) {
        let start = Instant::now();
        while self.log().matches("service ready").count() < n {
            if let Ok(Some(st)) = self.egress.0.try_wait() {
                panic!("egress exited ({st}):\n{}", self.log());
            }
            assert!(
                start.elapsed() < PATIENCE,
                "egress not ready after {PATIENCE:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn wait_worker(&mut self) {
        self.wait_worker_n(1)
    }

    fn recordings_dir(&self) -> PathBuf {
        self.sandbox.path().join("data/recordings")
    }

    /// Polls the recording until `done` accepts it; returns it.
    fn wait_recording(
        &self,
        token: &str,
        id: &str,
        what: &str,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let start = Instant::now();
        loop {
            let (st, r) =
                self.bedrud
                    .call("GET", &format!("/api/recordings/{id}"), Some(token), None);
            assert_eq!(st, 200, "{r}");
            if done(&r) {
                return r;
            }
            assert!(
                start.elapsed() < PATIENCE,
                "recording {id} not {what} after {PATIENCE:?}: {r}\nbedrud:\n{}\negress:\n{}",
                self.bedrud.logs(),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Starts an audio-only recording of `TONE_ROOM` as `token` and waits until it is active;
    /// returns its id and the start's answer.
    fn start_audio(&self, token: &str) -> (String, Value) {
        let path = format!("/api/room/{TONE_ROOM}/recording/start");
        let audio = json!({"audioOnly": true});
        let (st, rec) = self.bedrud.call("POST", &path, Some(token), Some(audio));
        assert_eq!(st, 201, "{rec}\n{}", self.log());
        let id = rec["id"].as_str().unwrap().to_string();
        self.wait_recording(token, &id, "active", |r| r["status"] == "active");
        (id, rec)
    }

    /// Ages recording `id` by two days in the database, past `recording.retainDays: 1`, and
    /// waits for retention to delete it at the next reconciliation pass.
    fn expire(&self, token: &str, id: &str) {
        age_recording(&self.sandbox.path().join("data/bedrud.db"), id);
        let start = Instant::now();
        let path = format!("/api/recordings/{id}");
        while self.bedrud.call("GET", &path, Some(token), None).0 != 404 {
            assert!(
                start.elapsed() < PATIENCE,
                "retention kept {id}:\n{}",
                self.bedrud.logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// Starts the egress worker for LiveKit on `lk_port` and Redis on `redis_port`; its log is
/// appended to `<dir>/egress.log`.
fn start_worker(dir: &Path, lk_port: u16, redis_port: u16, password: &str) -> (Proc, PathBuf) {
    let egress_config = write_worker_config(dir, lk_port, redis_port, password, "info");
    let egress_log = dir.join("egress.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&egress_log)
        .unwrap();
    let bin = egress_bin();
    // The worker starts each recording as a new process of `egress` found through $PATH.
    let path = format!("{}:/usr/bin:/bin", bin.parent().unwrap().display());
    let child = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "--", "sh", "-c"])
        .arg(PRIVATE_EGRESS_TMP)
        .arg(&bin)
        .arg(&egress_config)
        .env_clear()
        .env("PATH", path)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("cannot start egress");
    (Proc(child), egress_log)
}

fn secs(ms: &Value) -> f64 {
    ms.as_i64().unwrap_or(0) as f64 / 1000.0
}

#[test]
fn recordings_through_the_api_hold_the_tone_and_recover_from_lost_webhooks() {
    require_private_network("recording");
    let stack = Stack::start();
    let b = &stack.bedrud;
    let (alice, participant) = stack.tone_room();
    let (bob, _, _) = b.register("bob@bedrud.test");
    let room = TONE_ROOM;

    let start_path = format!("/api/room/{room}/recording/start");
    let stop_path = format!("/api/room/{room}/recording/stop");
    // Only moderators record; bad bodies and unknown rooms are refused before egress is asked.
    let audio = json!({"audioOnly": true});
    let (st, r) = b.call("POST", &start_path, Some(&bob), Some(audio.clone()));
    assert_eq!(st, 403, "{r}");
    let (st, r) = b.call(
        "POST",
        &start_path,
        Some(&alice),
        Some(json!({"audioOnly": "yes"})),
    );
    assert_eq!(st, 400, "{r}");
    let (st, r) = b.call(
        "POST",
        &start_path,
        Some(&alice),
        Some(json!({"layout": "../x"})),
    );
    assert_eq!(st, 400, "{r}");
    let (st, r) = b.call(
        "POST",
        "/api/room/nosuch/recording/start",
        Some(&alice),
        Some(audio.clone()),
    );
    assert_eq!(st, 404, "{r}");

    // Start → active (egress_started/updated webhooks) → stop → complete.
    let asked = Instant::now();
    let (st, rec) = b.call("POST", &start_path, Some(&alice), Some(audio.clone()));
    assert_eq!(st, 201, "{rec}\n{}", stack.log());
    let id = rec["id"].as_str().unwrap().to_string();
    assert!(
        rec["egressId"]
            .as_str()
            .is_some_and(|e| e.starts_with("EG_")),
        "{rec}"
    );
    let (st, r) = b.call("POST", &start_path, Some(&alice), Some(audio.clone()));
    assert_eq!(st, 409, "one recording per room: {r}");
    stack.wait_recording(&alice, &id, "active", |r| r["status"] == "active");
    let to_active = asked.elapsed();
    std::thread::sleep(RECORD_FOR);
    let stopping = Instant::now();
    let (st, r) = b.call("POST", &stop_path, Some(&alice), None);
    assert_eq!(st, 200, "{r}");
    let (st, again) = b.call("POST", &stop_path, Some(&alice), None);
    assert_eq!(st, 200, "stopping twice is harmless: {again}");
    assert_eq!(again["id"], id.as_str());
    let done = stack.wait_recording(&alice, &id, "finished", |r| {
        r["status"] == "complete" || r["status"] == "failed"
    });
    let to_file = stopping.elapsed();
    assert_eq!(done["status"], "complete", "{done}\n{}", stack.log());
    assert!(
        done["startedBy"].is_string() && done["durationMs"].as_i64() > Some(0),
        "{done}"
    );
    eprintln!(
        "figures: start request → active {:.2} s, stop request → file available {:.2} s",
        to_active.as_secs_f64(),
        to_file.as_secs_f64()
    );

    // The file is in the recordings folder (moved out of .incoming/), private, and downloads
    // whole, with Range answered 206 and the right bytes.
    let stored = stack.recordings_dir().join(format!("{id}.mp4"));
    assert!(stored.is_file(), "{}", stored.display());
    assert!(!stack
        .recordings_dir()
        .join(".incoming")
        .join(format!("{id}.mp4"))
        .exists());
    let url = b.url(&format!("/api/recordings/{id}/download"));
    let (st, headers, whole) = get_bytes(&url, &alice, None);
    assert_eq!(st, 200);
    assert_eq!(whole.len() as i64, done["size"].as_i64().unwrap());
    assert_eq!(whole, std::fs::read(&stored).unwrap());
    let disposition = headers["content-disposition"].to_str().unwrap();
    assert!(
        disposition.starts_with("attachment; filename=\"tone-"),
        "{disposition}"
    );
    let (st, _, part) = get_bytes(&url, &alice, Some("bytes=100-199"));
    assert_eq!(st, 206);
    assert_eq!(part, whole[100..200]);
    let (st, _, _) = get_bytes(&url, &bob, None);
    assert_eq!(st, 403);
    let (st, _, _) = get_bytes(&b.url("/api/recordings/nosuch/download"), &alice, None);
    assert_eq!(st, 404);
    let file = stack.sandbox.path().join("downloaded.mp4");
    std::fs::write(&file, &whole).unwrap();
    assert_eq!(streams(&file), ["audio:opus"]);
    assert_tone(&file, secs(&done["durationMs"]), RECORD_FOR);

    assert_eq!(b.room_recordings(&alice, room)[0]["id"], id.as_str());
    let (st, r) = b.call(
        "GET",
        &format!("/api/room/{room}/recordings"),
        Some(&bob),
        None,
    );
    assert_eq!(st, 403, "{r}");

    // A lost egress_ended (and every other egress webhook): reconciliation, comparing with
    // ListEgress, still completes the recording.
    stack.relay.drop_egress.store(true, Ordering::SeqCst);
    let (id2, _) = stack.start_audio(&alice);
    std::thread::sleep(Duration::from_secs(2));
    let (st, r) = b.call("POST", &stop_path, Some(&alice), None);
    assert_eq!(st, 200, "{r}");
    let done2 = stack.wait_recording(&alice, &id2, "finished", |r| {
        r["status"] == "complete" || r["status"] == "failed"
    });
    assert_eq!(done2["status"], "complete", "{done2}");
    assert!(
        stack.relay.dropped.load(Ordering::SeqCst) > 0,
        "the relay dropped no egress webhook, so nothing was lost"
    );
    assert!(
        b.logs().contains("reconciliation corrected"),
        "{}",
        b.logs()
    );
    stack.relay.drop_egress.store(false, Ordering::SeqCst);

    // Retention (recording.retainDays: 1): the first recording, aged by two days in the
    // database, is deleted with its file at the next reconciliation pass; the second stays.
    stack.expire(&alice, &id);
    assert!(!stored.exists(), "the file went with the row");
    let (st, _) = b.call("GET", &format!("/api/recordings/{id2}"), Some(&alice), None);
    assert_eq!(st, 200);

    // Delete: the file and the row.
    let (st, r) = b.call(
        "DELETE",
        &format!("/api/recordings/{id2}"),
        Some(&bob),
        None,
    );
    assert_eq!(st, 403, "{r}");
    let (st, r) = b.call(
        "DELETE",
        &format!("/api/recordings/{id2}"),
        Some(&alice),
        None,
    );
    assert_eq!(st, 200, "{r}");
    assert!(!stack.recordings_dir().join(format!("{id2}.mp4")).exists());
    let (st, _) = b.call("GET", &format!("/api/recordings/{id2}"), Some(&alice), None);
    assert_eq!(st, 404);
    drop(participant);
}

/// Moves a recording's creation two days back, straight in bedrud's SQLite database.
fn age_recording(db: &Path, id: &str) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        use sqlx::Connection;
        sqlx::any::install_default_drivers();
        let mut conn = sqlx::AnyConnection::connect(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
        let n = sqlx::query("UPDATE recordings SET created_at = created_at - $1 WHERE id = $2")
            .bind(2 * 86_400_000i64)
            .bind(id)
            .execute(&mut conn)
            .await
            .unwrap()
            .rows_affected();
        assert_eq!(n, 1);
    });
}

#[test]
fn a_dead_worker_fails_the_recording_and_redis_down_is_a_503_with_the_cause() {
    require_private_network("recording");
    let mut stack = Stack::start();
    let (alice, participant) = stack.tone_room();
    let room = TONE_ROOM;
    let start_path = format!("/api/room/{room}/recording/start");
    let audio = json!({"audioOnly": true});

    // The worker (and the recording handler it started) killed mid-recording.
    let (st, rec) = stack
        .bedrud
        .call("POST", &start_path, Some(&alice), Some(audio.clone()));
    assert_eq!(st, 201, "{rec}");
    let id = rec["id"].as_str().unwrap().to_string();
    stack.wait_recording(&alice, &id, "active", |r| r["status"] == "active");
    procs::kill_tree(stack.egress.0.id());
    let _ = stack.egress.0.wait();
    let failed = stack.wait_recording(&alice, &id, "finished", |r| {
        r["status"] == "complete" || r["status"] == "failed"
    });
    assert_eq!(failed["status"], "failed", "{failed}");
    assert!(
        failed["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{failed}"
    );
    eprintln!("worker killed: {}", failed["error"]);

    // The test restarts the worker (in embedded mode bedrud's supervisor would); recording
    // works again.
    let redis_port = {
        let text = std::fs::read_to_string(stack.sandbox.path().join("egress.yaml")).unwrap();
        let line = text
            .lines()
            .find(|l| l.contains("address: 127.0.0.1:"))
            .unwrap();
        line.rsplit(':')
            .next()
            .unwrap()
            .trim()
            .parse::<u16>()
            .unwrap()
    };
    let (egress, _) = start_worker(
        stack.sandbox.path(),
        stack.sandbox.ports.livekit,
        redis_port,
        "test-redis-password-0123456789",
    );
    stack.egress = egress;
    stack.wait_worker_n(2);
    let (st, rec) = stack
        .bedrud
        .call("POST", &start_path, Some(&alice), Some(audio.clone()));
    assert_eq!(st, 201, "{rec}\n{}", stack.log());
    let id = rec["id"].as_str().unwrap().to_string();
    stack.wait_recording(&alice, &id, "active", |r| r["status"] == "active");
    let (st, r) = stack.bedrud.call(
        "POST",
        &format!("/api/room/{room}/recording/stop"),
        Some(&alice),
        None,
    );
    assert_eq!(st, 200, "{r}");
    stack.wait_recording(&alice, &id, "finished", |r| r["status"] == "complete");

    // Redis down: the start answers 503 with the cause and the fix, not a raw Twirp error.
    drop(stack.redis.take());
    std::thread::sleep(Duration::from_millis(500));
    let (st, r) = stack
        .bedrud
        .call("POST", &start_path, Some(&alice), Some(audio));
    assert_eq!(st, 503, "{r}");
    let msg = r["error"].as_str().unwrap();
    assert!(msg.contains("fix:") && !msg.contains("twirp"), "{msg}");
    eprintln!("redis down: {msg}");
    let list = stack.bedrud.room_recordings(&alice, room);
    assert_eq!(
        list.len(),
        2,
        "a refused start leaves no recording behind: {list:?}"
    );
    drop(participant);
}

/// `bedrud doctor --json` on the stack's config: the finding of `check`.
fn doctor_finding(stack: &Stack, check: &str) -> Value {
    stack
        .sandbox
        .doctor()
        .into_iter()
        .find(|f| f["check"] == check)
        .unwrap_or_else(|| panic!("doctor has no {check}"))
}

#[test]
fn recordings_in_s3_are_uploaded_by_egress_and_streamed_by_bedrud() {
    require_private_network("recording");
    let s3_dir = tempfile::tempdir().unwrap();
    let mut s3 = s3::Versity::start(s3_dir.path());
    let bucket = "meetings";
    s3.create_bucket(bucket);
    let mut stack = Stack::start_with(&s3.config(bucket, s3::SECRET_KEY));
    let finding = doctor_finding(&stack, "recording: S3 storage");
    assert_eq!(finding["level"], "OK", "{finding}");

    let b = &stack.bedrud;
    let (alice, participant) = stack.tone_room();
    let room = TONE_ROOM;
    let start_path = format!("/api/room/{room}/recording/start");
    let stop_path = format!("/api/room/{room}/recording/stop");
    let audio = json!({"audioOnly": true});

    // Egress uploads the recording under recording.s3.prefix (default "recordings/").
    let asked = Instant::now();
    let (id, _) = stack.start_audio(&alice);
    let to_active = asked.elapsed();
    std::thread::sleep(RECORD_FOR);
    let stopping = Instant::now();
    let (st, r) = b.call("POST", &stop_path, Some(&alice), None);
    assert_eq!(st, 200, "{r}");
    let done = stack.wait_recording(&alice, &id, "finished", |r| {
        r["status"] == "complete" || r["status"] == "failed"
    });
    eprintln!(
        "figures (S3): start request → active {:.2} s, stop request → uploaded and checked {:.2} s",
        to_active.as_secs_f64(),
        stopping.elapsed().as_secs_f64()
    );
    assert_eq!(
        done["status"],
        "complete",
        "{done}\negress:\n{}\nbedrud:\n{}",
        stack.log(),
        b.logs()
    );
    let object = s3.object(bucket, &format!("recordings/{id}.mp4"));
    let stored = std::fs::read(&object)
        .unwrap_or_else(|e| panic!("{}: {e}\negress:\n{}", object.display(), stack.log()));
    assert_eq!(stored.len() as i64, done["size"].as_i64().unwrap());
    assert!(
        !stack.recordings_dir().join(format!("{id}.mp4")).exists(),
        "nothing is kept locally"
    );

    // Downloaded through bedrud: the whole object, and a range of it.
    let url = b.url(&format!("/api/recordings/{id}/download"));
    let (st, headers, whole) = get_bytes(&url, &alice, None);
    assert_eq!(st, 200);
    assert_eq!(whole, stored);
    assert_eq!(headers["content-type"], "audio/mp4");
    let file = stack.sandbox.path().join("downloaded.mp4");
    std::fs::write(&file, &whole).unwrap();
    assert_eq!(streams(&file), ["audio:opus"]);
    assert_tone(&file, secs(&done["durationMs"]), RECORD_FOR);
    let (st, headers, part) = get_bytes(&url, &alice, Some("bytes=0-99"));
    assert_eq!(st, 206);
    assert_eq!(part, whole[..100]);
    assert_eq!(
        headers["content-range"].to_str().unwrap(),
        format!("bytes 0-99/{}", whole.len())
    );
    let (st, headers, _) = get_bytes(&url, &alice, Some(&format!("bytes={}-", whole.len())));
    assert_eq!(st, 416);
    assert_eq!(
        headers["content-range"].to_str().unwrap(),
        format!("bytes */{}", whole.len())
    );
    let (bob, _, _) = b.register("bob@bedrud.test");
    let (st, _, _) = get_bytes(&url, &bob, None);
    assert_eq!(st, 403);

    // DELETE removes the object and the row.
    let (st, r) = b.call(
        "DELETE",
        &format!("/api/recordings/{id}"),
        Some(&alice),
        None,
    );
    assert_eq!(st, 200, "{r}");
    assert!(!object.exists(), "{} is still there", object.display());
    let left: Vec<_> = std::fs::read_dir(object.parent().unwrap())
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left in the bucket: {left:?}");
    let (st, _) = b.call("GET", &format!("/api/recordings/{id}"), Some(&alice), None);
    assert_eq!(st, 404);

    // Retention (recording.retainDays: 1) deletes an S3 recording's object too.
    let (old, _) = stack.start_audio(&alice);
    std::thread::sleep(Duration::from_secs(2));
    let (st, r) = b.call("POST", &stop_path, Some(&alice), None);
    assert_eq!(st, 200, "{r}");
    stack.wait_recording(&alice, &old, "complete", |r| r["status"] == "complete");
    let old_object = s3.object(bucket, &format!("recordings/{old}.mp4"));
    assert!(old_object.is_file(), "{}", old_object.display());
    stack.expire(&alice, &old);
    assert!(
        !old_object.exists(),
        "retention left {}",
        old_object.display()
    );

    // The key pair went to egress inside the requests: neither bedrud nor egress logs it.
    assert!(
        !b.logs().contains(s3::SECRET_KEY),
        "the S3 secret is in bedrud's log"
    );
    assert!(
        !stack.log().contains(s3::SECRET_KEY),
        "the S3 secret is in egress' log"
    );

    // S3 down when bedrud learns that egress finished: an end it acknowledged is not lost. The
    // recording stays `ending`, each reconciliation pass checks again, and once S3 is back it
    // completes. bedrud is paused (SIGSTOP) from the stop request until the upload is done and
    // S3 is down, so that it can only learn of the end while S3 is unreachable.
    let (id, rec) = stack.start_audio(&alice);
    let egress_id = rec["egressId"].as_str().unwrap().to_string();
    std::thread::sleep(Duration::from_secs(2));
    let (st, r) = b.call("POST", &stop_path, Some(&alice), None);
    assert_eq!(st, 200, "{r}");
    let paused = nix::unistd::Pid::from_raw(b.pid() as i32);
    nix::sys::signal::kill(paused, nix::sys::signal::Signal::SIGSTOP).unwrap();
    let lk = format!("http://127.0.0.1:{}", stack.sandbox.ports.livekit);
    let client = EgressClient::with_api_key(&lk, "APItest", SECRET);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(wait_status(
        &client,
        &egress_id,
        "complete",
        |s| s == proto::EgressStatus::EgressComplete,
        || stack.log(),
    ));
    let object = s3.object(bucket, &format!("recordings/{id}.mp4"));
    let uploaded = std::fs::read(&object).unwrap();
    s3.stop();
    nix::sys::signal::kill(paused, nix::sys::signal::Signal::SIGCONT).unwrap();
    let deferred = "the finished recording cannot be checked yet";
    let start = Instant::now();
    // Two passes that found S3 down: the first may be the webhook LiveKit sent meanwhile.
    while b.logs().matches(deferred).count() < 2 {
        assert!(
            start.elapsed() < PATIENCE,
            "bedrud did not retry checking {id}:\n{}",
            b.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (st, waiting) = b.call("GET", &format!("/api/recordings/{id}"), Some(&alice), None);
    assert_eq!(st, 200);
    assert_eq!(waiting["status"], "ending", "{waiting}");
    let line = b
        .logs()
        .lines()
        .find(|l| l.contains(deferred))
        .unwrap()
        .to_string();
    eprintln!("S3 down after the upload: {line}");
    assert!(line.contains("recording.s3.endpoint"), "{line}");
    s3.restart();
    let done = stack.wait_recording(&alice, &id, "complete once S3 is back", |r| {
        r["status"] != "ending"
    });
    assert_eq!(done["status"], "complete", "{done}\n{}", b.logs());
    assert_eq!(done["size"].as_i64(), Some(uploaded.len() as i64));
    let url = b.url(&format!("/api/recordings/{id}/download"));
    let (st, _, downloaded) = get_bytes(&url, &alice, None);
    assert_eq!(st, 200);
    assert_eq!(downloaded, uploaded);
    let (st, r) = b.call(
        "DELETE",
        &format!("/api/recordings/{id}"),
        Some(&alice),
        None,
    );
    assert_eq!(st, 200, "{r}");

    // The bucket gone while recording: egress cannot upload, and the recording ends failed
    // with the reason (what egress says about it).
    let (id, _) = stack.start_audio(&alice);
    std::fs::remove_dir_all(s3.root.join(bucket)).unwrap();
    let (st, r) = b.call("POST", &stop_path, Some(&alice), None);
    assert_eq!(st, 200, "{r}");
    let failed = stack.wait_recording(&alice, &id, "finished", |r| {
        r["status"] == "complete" || r["status"] == "failed"
    });
    assert_eq!(failed["status"], "failed", "{failed}");
    let why = failed["error"].as_str().unwrap_or_default().to_string();
    eprintln!("bucket removed while recording: {why}");
    assert!(
        why.contains("S3 upload failed") && why.contains("fix: check that recording.s3.bucket"),
        "{why}"
    );
    // With no bucket, a start answers 503 naming it, before anything is recorded.
    let (st, r) = b.call("POST", &start_path, Some(&alice), Some(audio.clone()));
    assert_eq!(st, 503, "{r}");
    let msg = r["error"].as_str().unwrap();
    assert!(
        msg.contains("bucket meetings does not exist") && msg.contains("recording.s3.bucket"),
        "{msg}"
    );
    s3.create_bucket(bucket);

    // A wrong secret key (bedrud restarted with it: recording.s3 needs a restart): the start
    // answers 503 naming the key to fix, without recording anything or echoing the secret,
    // and doctor says the same.
    let wrong = "wrong-s3-secret-9876543210";
    stack.bedrud.terminate();
    let config = std::fs::read_to_string(stack.sandbox.config_path()).unwrap();
    stack
        .sandbox
        .write_config(&config.replace(s3::SECRET_KEY, wrong));
    stack.bedrud = stack.sandbox.start(&[]);
    stack.bedrud.wait_ready();
    let b = &stack.bedrud;
    let (st, r) = b.call(
        "POST",
        "/api/auth/login",
        None,
        Some(json!({"email": "alice@bedrud.test", "password": "correct horse battery"})),
    );
    assert_eq!(st, 200, "{r}");
    let alice = r["accessToken"].as_str().unwrap().to_string();
    let (st, r) = b.call("POST", &start_path, Some(&alice), Some(audio));
    assert_eq!(st, 503, "{r}");
    let msg = r["error"].as_str().unwrap();
    assert!(
        msg.contains("recording.s3.secretKey") && !msg.contains(wrong),
        "{msg}"
    );
    eprintln!("wrong secret: {msg}");
    let list = b.room_recordings(&alice, room);
    assert_eq!(list.len(), 1, "only the failed recording: {list:?}");
    assert!(!b.logs().contains(wrong), "the secret is in bedrud's log");
    let finding = doctor_finding(&stack, "recording: S3 storage");
    assert_eq!(finding["level"], "FAIL", "{finding}");
    assert!(
        finding["fix"]
            .as_str()
            .is_some_and(|f| f.contains("recording.s3.secretKey")),
        "{finding}"
    );
    assert!(!finding.to_string().contains(wrong), "{finding}");

    // S3 unreachable (versitygw stopped): 503 naming the endpoint to check.
    drop(s3);
    let (st, r) = b.call(
        "POST",
        &start_path,
        Some(&alice),
        Some(json!({"audioOnly": true})),
    );
    assert_eq!(st, 503, "{r}");
    let msg = r["error"].as_str().unwrap();
    assert!(msg.contains("recording.s3.endpoint"), "{msg}");
    eprintln!("S3 down: {msg}");
    drop(participant);
}
