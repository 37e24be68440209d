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
        "ExecReload=/bin/sh -c 'kill -HUP $$MAINPID'",
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

/// The lines bedrud sent after the `n`-th message, and their position in the whole list.
fn since(notify: &NotifySocket, n: usize) -> Vec<String> {
    notify.all().into_iter().skip(n).collect()
}

#[test]
fn sighup_reloads_with_the_reload_protocol_refuses_a_bad_config_and_never_exits() {
    let sb = Sandbox::new();
    // Only SIGHUP reloads here (tests/reload.rs covers the file watch).
    let base =
        sb.embedded_config(LIVEKIT, "")
            .replacen("server:\n", "server:\n  watchConfig: false\n", 1);
    sb.write_config(&base);
    let notify = NotifySocket::bind(sb.path());
    let mut b = sb.start(&[("NOTIFY_SOCKET", notify.path.to_str().unwrap())]);
    b.wait_for("READY=1", |_| (notify.count("READY=1") > 0).then_some(()));
    assert!(
        notify.all().iter().all(|m| !m.contains("RELOADING=1")),
        "no reload yet"
    );
    b.register("before@reload.test");
    let livekit_before = b.livekit_pid();

    // A live key, a key LiveKit restarts for (no meeting is live: applied at once), and a key
    // that needs bedrud restarted (named, not applied).
    let new_tcp = free_port(false);
    let edited = base
        .replace(
            &format!("rtcTcpPort: {}", sb.ports.rtc_tcp),
            &format!("rtcTcpPort: {new_tcp}"),
        )
        .replace("server:\n", "server:\n  maxConnections: 77\n")
        + "auth:\n  allowRegistration: false\n";
    sb.write_config(&edited);
    let seen = notify.all().len();
    b.signal(nix::sys::signal::Signal::SIGHUP);
    let line = b.wait_for("the reload's log line", |b| {
        b.logs()
            .lines()
            .find(|l| l.contains("config reloaded (SIGHUP)"))
            .map(str::to_string)
    });
    assert!(line.contains("applied: auth.allowRegistration"), "{line}");
    assert!(
        line.contains("LiveKit restart pending: livekit.rtcTcpPort"),
        "{line}"
    );
    assert!(
        line.contains("needs a bedrud restart (not applied): server.maxConnections"),
        "{line}"
    );
    // systemd's reload protocol: RELOADING=1 with the monotonic time, then READY=1.
    b.wait_for("READY=1 after the reload", |_| {
        since(&notify, seen)
            .iter()
            .any(|m| m.lines().any(|l| l == "READY=1"))
            .then_some(())
    });
    let msgs = since(&notify, seen);
    let reloading = msgs
        .iter()
        .position(|m| m.lines().any(|l| l == "RELOADING=1"))
        .unwrap_or_else(|| panic!("no RELOADING=1 in {msgs:?}"));
    let usec: u64 = msgs[reloading]
        .lines()
        .find_map(|l| l.strip_prefix("MONOTONIC_USEC="))
        .unwrap_or_else(|| panic!("RELOADING=1 without MONOTONIC_USEC=: {msgs:?}"))
        .parse()
        .unwrap();
    let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).unwrap();
    assert!(usec > 0 && usec <= now.tv_sec() as u64 * 1_000_000 + now.tv_nsec() as u64 / 1000);
    let ready = msgs
        .iter()
        .position(|m| m.lines().any(|l| l == "READY=1"))
        .unwrap();
    assert!(ready > reloading, "READY=1 before RELOADING=1: {msgs:?}");
    assert!(msgs[ready].contains("STATUS=LiveKit"), "{msgs:?}");

    // The live key is in effect at once.
    let body = serde_json::json!({"email": "after@reload.test", "password": "correct horse battery", "name": "after"});
    let (st, r) = b.call("POST", "/api/auth/register", None, Some(body.clone()));
    assert_eq!(st, 403, "{r}");
    // LiveKit restarted with its new port, as no meeting was live.
    b.wait_for("LiveKit on its new TCP port", |b| {
        let restarted = b.logs().contains("to apply: livekit.rtcTcpPort");
        let pid = b
            .ready()
            .and_then(|(s, r)| (s == 200).then(|| r["livekit"]["pid"].as_u64()))??;
        (restarted && pid != u64::from(livekit_before)).then_some(())
    });
    let listening = std::net::TcpStream::connect(("127.0.0.1", new_tcp));
    assert!(
        listening.is_ok(),
        "LiveKit does not listen on its new rtcTcpPort"
    );
    assert!(alive(b.pid()));

    // A config with problems is refused whole, every problem named; bedrud runs on unchanged.
    let broken = edited.replace("allowRegistration: false", "allowRegistration: true")
        + "rooms:\n  joinTokenTtl: banana\n  defaultMaxParticipants: -4\n";
    sb.write_config(&broken);
    let seen = notify.all().len();
    b.signal(nix::sys::signal::Signal::SIGHUP);
    let refused = b.wait_for("the refusal", |b| {
        let logs = b.logs();
        let at = logs.find("config reload (SIGHUP) refused")?;
        Some(logs[at..].to_string())
    });
    assert!(refused.contains("rooms.joinTokenTtl"), "{refused}");
    assert!(
        refused.contains("rooms.defaultMaxParticipants"),
        "{refused}"
    );
    b.wait_for("READY=1 after the refused reload", |_| {
        since(&notify, seen)
            .iter()
            .any(|m| m.lines().any(|l| l == "READY=1"))
            .then_some(())
    });
    let status = since(&notify, seen)
        .into_iter()
        .rev()
        .find(|m| m.contains("STATUS="))
        .unwrap();
    assert!(
        status.contains("reload refused, running config kept")
            && status.contains("rooms.joinTokenTtl"),
        "systemctl status must show the refusal: {status}"
    );
    // The running config stayed: registration is still off, and bedrud still serves.
    let (st, _) = b.call("POST", "/api/auth/register", None, Some(body));
    assert_eq!(st, 403);
    assert_eq!(b.ready().map(|r| r.0), Some(200));
    assert!(alive(b.pid()), "bedrud exited on a refused reload");
    assert!(b.terminate().success());
}
