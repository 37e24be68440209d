//! bedrud under systemd: the sd_notify protocol seen from the service manager's side (the test
//! owns the `$NOTIFY_SOCKET` datagram socket), and the unit file checked by `systemd-analyze`.

mod common;

use std::os::unix::net::UnixDatagram;
use std::sync::{Arc, Mutex};

use common::*;

/// Collects every datagram bedrud sends to the notify socket.
struct NotifySocket {
    messages: Arc<Mutex<Vec<String>>>,
    path: std::path::PathBuf,
}

impl NotifySocket {
    fn bind(dir: &std::path::Path) -> NotifySocket {
        let path = dir.join("notify.sock");
        let sock = UnixDatagram::bind(&path).unwrap();
        let messages = Arc::new(Mutex::new(Vec::new()));
        let sink = messages.clone();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 4096];
            while let Ok(n) = sock.recv(&mut buf) {
                sink.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        });
        NotifySocket { messages, path }
    }

    fn all(&self) -> Vec<String> {
        self.messages.lock().unwrap().clone()
    }

    fn count(&self, line: &str) -> usize {
        self.all()
            .iter()
            .filter(|m| m.lines().any(|l| l == line))
            .count()
    }
}

#[test]
fn ready_only_after_livekit_answers_then_watchdog_then_stopping() {
    let sb = Sandbox::new();
    sb.write_config(&sb.embedded_config(LIVEKIT, ""));
    let notify = NotifySocket::bind(sb.path());
    let envs = [
        ("NOTIFY_SOCKET", notify.path.to_str().unwrap()),
        ("WATCHDOG_USEC", "400000"),
    ];
    let mut b = sb.start(&envs);

    b.wait_for("READY=1", |_| (notify.count("READY=1") > 0).then_some(()));
    let msgs = notify.all();
    let ready_at = msgs
        .iter()
        .position(|m| m.lines().any(|l| l == "READY=1"))
        .unwrap();
    // Everything said before READY=1 described a LiveKit that was not ready yet…
    for m in &msgs[..ready_at] {
        assert!(
            !m.contains(": ready;"),
            "status claimed ready before READY=1: {m}"
        );
    }
    // …and READY=1 came with a status saying LiveKit is ready, which it is.
    assert!(
        msgs[ready_at].contains("STATUS=LiveKit 1.13.5 (embedded"),
        "{}",
        msgs[ready_at]
    );
    assert!(
        msgs[ready_at].contains(": ready; restarts: 0"),
        "{}",
        msgs[ready_at]
    );
    assert_eq!(
        get_status(&format!("http://127.0.0.1:{}/", sb.ports.livekit)),
        Some(200)
    );
    assert_eq!(b.ready().map(|r| r.0), Some(200));

    // LiveKit must not inherit the notify socket (it would confuse systemd).
    let lk = b.livekit_pid();
    let environ = String::from_utf8_lossy(&std::fs::read(format!("/proc/{lk}/environ")).unwrap())
        .into_owned();
    assert!(
        !environ.contains("NOTIFY_SOCKET") && !environ.contains("WATCHDOG"),
        "{environ}"
    );

    b.wait_for("two watchdog pings", |_| {
        (notify.count("WATCHDOG=1") >= 2).then_some(())
    });
    assert_eq!(notify.count("READY=1"), 1, "READY=1 is sent once");

    assert!(b.terminate().success());
    let msgs = notify.all();
    let stopping = msgs
        .iter()
        .position(|m| m.lines().any(|l| l == "STOPPING=1"));
    assert!(stopping.is_some(), "no STOPPING=1 in {msgs:?}");
}

#[test]
fn no_ready_while_livekit_keeps_failing() {
    let sb = Sandbox::new();
    let bad = sb.path().join("bad-livekit.yaml");
    std::fs::write(
        &bad,
        format!(
            "port: {}\nkeys:\n  APItest: {SECRET}\nno_such_key: 1\n",
            sb.ports.livekit
        ),
    )
    .unwrap();
    sb.write_config(&sb.embedded_config(LIVEKIT, &format!("  configPath: {}\n", bad.display())));
    let notify = NotifySocket::bind(sb.path());
    let mut b = sb.start(&[("NOTIFY_SOCKET", notify.path.to_str().unwrap())]);

    b.wait_for("three failed starts", |b| match b.ready() {
        Some((503, body)) if body["livekit"]["restarts"].as_u64() >= Some(3) => Some(()),
        _ => None,
    });
    // Let the notifier catch up with the latest status before reading what it sent.
    b.wait_for("a STATUS line about the restarts", |_| {
        notify
            .all()
            .iter()
            .any(|m| m.contains("LiveKit is restarting"))
            .then_some(())
    });
    assert_eq!(notify.count("READY=1"), 0, "{:?}", notify.all());
    let status = notify
        .all()
        .into_iter()
        .rev()
        .find(|m| m.contains("STATUS="))
        .unwrap();
    assert!(
        status.contains("no_such_key"),
        "the STATUS line should carry LiveKit's error: {status}"
    );
    assert!(b.terminate().success());
}

#[test]
fn the_unit_file_passes_systemd_analyze_verify() {
    let analyze = which("systemd-analyze").expect(
        "systemd-analyze is not installed: apt-get install systemd (scripts/test.sh installs it)",
    );
    let unit = std::fs::read_to_string(repo_root().join("systemd/bedrud.service")).unwrap();
    for needed in [
        "Type=notify",
        "WatchdogSec=",
        "KillMode=mixed",
        "TimeoutStopSec=45s",
        "PrivateTmp=yes",
        "ProtectSystem=strict",
    ] {
        assert!(unit.contains(needed), "the unit lacks {needed}");
    }
    // verify checks that ExecStart exists, so point it at the binary under test.
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("bedrud.service");
    std::fs::write(
        &copy,
        unit.replace("/usr/bin/bedrud", env!("CARGO_BIN_EXE_bedrud")),
    )
    .unwrap();
    // The man page is not installed on a development host; tests/packages.rs verifies the
    // installed unit, man page included.
    let out = std::process::Command::new(analyze)
        .args(["verify", "--man=no"])
        .arg(&copy)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "systemd-analyze verify failed:\n{text}"
    );
    assert!(
        !text.contains("bedrud.service:"),
        "verify reported problems:\n{text}"
    );
}

#[test]
fn timeout_stop_is_longer_than_the_default_grace_period() {
    // bedrud's own stop sequence (grace + forced stop + HTTP drain) must finish before systemd
    // resorts to SIGKILL for the whole cgroup.
    let unit = std::fs::read_to_string(repo_root().join("systemd/bedrud.service")).unwrap();
    let secs = |key: &str| -> u64 {
        let v = unit.lines().find_map(|l| l.strip_prefix(key)).unwrap();
        v.trim_end_matches('s').parse().unwrap()
    };
    let example = std::fs::read_to_string(repo_root().join("config/config.example.yaml")).unwrap();
    let grace: u64 = example
        .lines()
        .find_map(|l| l.trim().strip_prefix("stopGracePeriod: "))
        .map(|v| v.trim_matches('"').trim_end_matches('s').parse().unwrap())
        .unwrap();
    assert!(
        secs("TimeoutStopSec=") > grace + 5 + 5,
        "TimeoutStopSec too short for a {grace}s grace"
    );
}
