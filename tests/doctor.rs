//! `bedrud doctor` on hosts set up to trigger its checks, and on a healthy one.

mod common;

use std::process::Command;

use common::*;
use serde_json::Value;

/// Runs `bedrud doctor --json`; returns (exit success, findings).
fn doctor(sb: &Sandbox, envs: &[(&str, &str)]) -> (bool, Vec<Value>) {
    sb.doctor_with(
        Command::new(env!("CARGO_BIN_EXE_bedrud")),
        "/usr/bin:/bin",
        envs,
    )
}

fn find<'a>(findings: &'a [Value], check: &str) -> Vec<&'a Value> {
    findings.iter().filter(|f| f["check"] == check).collect()
}

fn level_of(findings: &[Value], check: &str) -> String {
    let f = find(findings, check);
    assert!(!f.is_empty(), "no {check:?} finding in {findings:#?}");
    f.iter()
        .map(|f| f["level"].as_str().unwrap())
        .max_by_key(|l| match *l {
            "FAIL" => 2,
            "WARN" => 1,
            _ => 0,
        })
        .unwrap()
        .to_string()
}

#[test]
fn a_healthy_embedded_host_is_all_ok() {
    let sb = Sandbox::new();
    sb.write_config(&sb.embedded_config(LIVEKIT, ""));
    let (success, findings) = doctor(&sb, &[]);
    for f in &findings {
        assert_eq!(f["level"], "OK", "{f}");
    }
    assert!(success);
    assert!(level_of(&findings, "livekit-server binary") == "OK");
    let binary = &find(&findings, "livekit-server binary")[0]["cause"];
    assert!(
        binary
            .as_str()
            .unwrap()
            .contains(&format!("version {LIVEKIT}")),
        "{binary}"
    );
}

#[test]
fn a_broken_embedded_host_gets_each_cause_and_fix() {
    let sb = Sandbox::new();
    let squatter = std::net::TcpListener::bind(("0.0.0.0", sb.ports.livekit)).unwrap();
    let text = sb
        .embedded_config(LIVEKIT, "")
        .replace(
            &livekit_bin(LIVEKIT).display().to_string(),
            "/nonexistent/livekit-server",
        )
        .replace("nodeIP: 127.0.0.1", "nodeIP: 10.20.30.40")
        .replacen("server:\n", "server:\n  host: 203.0.113.10\n", 1);
    sb.write_config(&text);
    let (success, findings) = doctor(&sb, &[("LIVEKIT_CONFIG", "port: 7880")]);
    assert!(!success, "any FAIL makes doctor exit non-zero");
    assert_eq!(level_of(&findings, "livekit-server binary"), "FAIL");
    assert_eq!(level_of(&findings, "LiveKit ports free"), "FAIL");
    let port = find(&findings, "LiveKit ports free")
        .into_iter()
        .find(|f| f["level"] == "FAIL")
        .unwrap();
    assert!(
        port["cause"]
            .as_str()
            .unwrap()
            .contains(&format!("Port {} already in use", sb.ports.livekit)),
        "{port}"
    );
    assert!(
        port["fix"].as_str().unwrap().contains("livekit.port"),
        "{port}"
    );
    assert_eq!(level_of(&findings, "node_ip reachable by clients"), "WARN");
    assert_eq!(
        level_of(&findings, "LIVEKIT_CONFIG environment variable"),
        "WARN"
    );
    drop(squatter);
}

#[test]
fn a_static_livekit_config_with_the_classic_mistakes() {
    let sb = Sandbox::new();
    let dead_redis = free_port(false);
    let static_cfg = sb.path().join("livekit.yaml");
    std::fs::write(
        &static_cfg,
        livekit_yaml(&sb.ports, "APItest")
            .replace("use_external_ip: false", "use_external_ip: true")
            + &format!("tls:\n  cert: x\nredis:\n  address: 127.0.0.1:{dead_redis}\ncreate_room_enabled: true\n"),
    )
    .unwrap();
    sb.write_config(&sb.embedded_config(
        LIVEKIT,
        &format!("  configPath: {}\n", static_cfg.display()),
    ));
    let (success, findings) = doctor(&sb, &[]);
    assert!(!success);
    assert_eq!(level_of(&findings, "top-level tls: key"), "FAIL");
    assert_eq!(level_of(&findings, "use_external_ip"), "WARN");
    assert_eq!(level_of(&findings, "Redis"), "FAIL");
    let unknown = &find(&findings, "unknown LiveKit config key")[0];
    assert!(
        unknown["cause"]
            .as_str()
            .unwrap()
            .contains("field create_room_enabled not found"),
        "{unknown}"
    );
    let tls = &find(&findings, "top-level tls: key")[0];
    assert!(
        tls["fix"]
            .as_str()
            .unwrap()
            .contains("Remove the tls: block"),
        "{tls}"
    );
}

#[test]
fn turn_tls_without_a_domain_is_caught() {
    let sb = Sandbox::new();
    let static_cfg = sb.path().join("livekit.yaml");
    std::fs::write(
        &static_cfg,
        livekit_yaml(&sb.ports, "APItest") + "  tls_port: 5349\n",
    )
    .unwrap();
    sb.write_config(&sb.embedded_config(
        LIVEKIT,
        &format!("  configPath: {}\n", static_cfg.display()),
    ));
    let (_, findings) = doctor(&sb, &[]);
    assert_eq!(level_of(&findings, "TURN TLS"), "FAIL");
}

#[test]
fn external_livekit_unreachable_or_untrusted() {
    let sb = Sandbox::new();
    let closed = free_port(false);
    let external = |internal: &str, extra: &str| {
        format!(
            "server:\n  bindAddress: 127.0.0.1\n  port: {}\n  dataDir: {}\nlivekit:\n  external: true\n  host: ws://127.0.0.1:{closed}\n  internalHost: {internal}\n  apiKey: APIext\n  apiSecret: {SECRET}\n{extra}",
            sb.ports.api,
            sb.path().join("data").display()
        )
    };
    sb.write_config(&external(&format!("http://127.0.0.1:{closed}"), ""));
    let (success, findings) = doctor(&sb, &[]);
    assert!(!success);
    let api = &find(&findings, "LiveKit server API (internalHost)")[0];
    assert_eq!(api["level"], "FAIL");
    assert!(
        api["cause"]
            .as_str()
            .unwrap()
            .contains("LiveKit disconnected"),
        "{api}"
    );

    // A LiveKit behind a TLS terminator with a self-signed certificate.
    let lk_dir = tempfile::tempdir().unwrap();
    let lk_ports = Ports::new();
    let lk_cfg = lk_dir.path().join("lk.yaml");
    std::fs::write(&lk_cfg, livekit_yaml(&lk_ports, "APIext")).unwrap();
    let _lk = LiveKitProcess::start(&lk_cfg);
    let proxy = TlsProxy::start(lk_dir.path(), lk_ports.livekit);
    let https = format!("https://127.0.0.1:{}", proxy.port);
    sb.write_config(&external(&https, ""));
    let api = wait_for_finding(&sb, "LiveKit server API (internalHost)", |f| {
        f["cause"].as_str().unwrap().contains("certificate")
    });
    assert_eq!(api["level"], "FAIL");
    assert!(
        api["fix"].as_str().unwrap().contains("skipTLSVerify: true"),
        "{api}"
    );
    sb.write_config(&external(&https, "  skipTLSVerify: true\n"));
    let api = wait_for_finding(&sb, "LiveKit server API (internalHost)", |f| {
        f["level"] == "OK"
    });
    assert!(api["cause"].as_str().unwrap().contains("answers"));
}

#[test]
fn external_recording_without_redis_or_s3_gets_the_seeds_causes() {
    let sb = Sandbox::new();
    let lk_dir = tempfile::tempdir().unwrap();
    let lk_ports = Ports::new();
    let lk_cfg = lk_dir.path().join("lk.yaml");
    // A LiveKit without a redis: block: egress cannot work.
    std::fs::write(&lk_cfg, livekit_yaml(&lk_ports, "APIext")).unwrap();
    let _lk = LiveKitProcess::start(&lk_cfg);
    sb.write_config(&format!(
        "server:\n  bindAddress: 127.0.0.1\n  port: {}\n  dataDir: {}\nlivekit:\n  external: true\n  host: ws://127.0.0.1:{lk}\n  internalHost: http://127.0.0.1:{lk}\n  apiKey: APIext\n  apiSecret: {SECRET}\nrecording:\n  enabled: true\n",
        sb.ports.api,
        sb.path().join("data").display(),
        lk = lk_ports.livekit,
    ));
    let egress = wait_for_finding(&sb, "recording: egress (ListEgress)", |f| {
        f["cause"].as_str().unwrap().contains("redis required")
    });
    assert_eq!(egress["level"], "FAIL");
    assert!(
        egress["fix"].as_str().unwrap().contains("redis: section"),
        "{egress}"
    );
    let (success, findings) = doctor(&sb, &[]);
    assert!(!success);
    let storage = &find(&findings, "recording: storage")[0];
    assert_eq!(storage["level"], "WARN");
    assert!(
        storage["cause"]
            .as_str()
            .unwrap()
            .contains("local path on the worker"),
        "{storage}"
    );
    assert!(
        storage["fix"].as_str().unwrap().contains("recording.s3"),
        "{storage}"
    );
}

/// LiveKit takes a moment to listen after its spawn; doctor is asked again until it does.
fn wait_for_finding(sb: &Sandbox, check: &str, wanted: impl Fn(&Value) -> bool) -> Value {
    let start = std::time::Instant::now();
    loop {
        let (_, findings) = doctor(sb, &[]);
        if let Some(f) = find(&findings, check).into_iter().find(|f| wanted(f)) {
            return f.clone();
        }
        assert!(
            start.elapsed() < PATIENCE,
            "doctor never reported the expected {check}: {findings:#?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

#[test]
fn live_meetings_without_any_webhook_are_flagged() {
    let sb = Sandbox::new();
    sb.write_config(&sb.embedded_config(LIVEKIT, ""));
    // State as reconciliation leaves it when LiveKit never sends webhooks.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let data = sb.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        let store = bedrud::store::Store::connect(&bedrud::store::default_url(&data))
            .await
            .unwrap();
        let u = store
            .create_user("o@example.test", "O", "h", bedrud::store::Role::User)
            .await
            .unwrap();
        let room = bedrud::store::Room {
            id: String::new(),
            name: "standup".into(),
            owner_id: u.id,
            is_public: true,
            max_participants: 5,
            allow_video: true,
            allow_audio: true,
            allow_screen_share: true,
            allow_guests: false,
            moderators: vec![],
        };
        store.create_room(room).await.unwrap();
        store.sync_room("standup", "RM_1", &[]).await.unwrap();
        store.close().await;
    });
    let (success, findings) = doctor(&sb, &[]);
    assert!(!success);
    let w = &find(&findings, "webhooks received")[0];
    assert_eq!(w["level"], "FAIL");
    assert!(w["fix"].as_str().unwrap().contains("webhook-config"), "{w}");
}

/// The findings of one check, as (level, cause) pairs.
fn findings_of(findings: &[Value], check: &str) -> Vec<(String, String)> {
    find(findings, check)
        .into_iter()
        .map(|f| {
            (
                f["level"].as_str().unwrap().into(),
                f["cause"].as_str().unwrap().into(),
            )
        })
        .collect()
}

#[test]
fn with_tls_and_an_ip_host_the_turn_tls_port_is_not_checked() {
    let sb = Sandbox::new();
    let (cert, key) = self_signed(sb.path(), &["203.0.113.10"]);
    // Something else holds turnTlsPort: harmless, since LiveKit gets UDP-only TURN here.
    let _squatter = std::net::TcpListener::bind(("0.0.0.0", sb.ports.turn_tls)).unwrap();
    let text = sb.embedded_config(LIVEKIT, "").replacen(
        "server:\n",
        &format!(
            "server:\n  host: 203.0.113.10\n  enableTLS: true\n  certFile: {}\n  keyFile: {}\n",
            cert.display(),
            key.display()
        ),
        1,
    );
    sb.write_config(&text);
    let (_, findings) = doctor(&sb, &[]);
    let ports = findings_of(&findings, "LiveKit ports free");
    assert_eq!(ports.len(), 3, "port, rtcTcpPort, turnUdpPort: {ports:?}");
    assert!(
        ports
            .iter()
            .all(|(level, cause)| level == "OK" && !cause.contains(&sb.ports.turn_tls.to_string())),
        "{ports:?}"
    );
}

#[test]
fn a_static_livekit_config_has_its_ports_checked() {
    let sb = Sandbox::new();
    let static_cfg = sb.path().join("livekit.yaml");
    std::fs::write(&static_cfg, livekit_yaml(&sb.ports, "APItest")).unwrap();
    sb.write_config(&sb.embedded_config(
        LIVEKIT,
        &format!("  configPath: {}\n", static_cfg.display()),
    ));
    let _squatter = std::net::UdpSocket::bind(("0.0.0.0", sb.ports.turn_udp)).unwrap();
    let (success, findings) = doctor(&sb, &[]);
    assert!(!success);
    let ports = findings_of(&findings, "LiveKit ports free");
    assert_eq!(
        ports.len(),
        3,
        "port, rtc.tcp_port, turn.udp_port: {ports:?}"
    );
    let failed = find(&findings, "LiveKit ports free")
        .into_iter()
        .find(|f| f["level"] == "FAIL")
        .unwrap_or_else(|| panic!("the taken TURN port was not reported: {ports:?}"));
    assert!(
        failed["cause"]
            .as_str()
            .unwrap()
            .contains(&format!("Port {} already in use", sb.ports.turn_udp)),
        "{failed}"
    );
    assert!(
        failed["fix"]
            .as_str()
            .unwrap()
            .contains("turn.udp_port in the static LiveKit config"),
        "{failed}"
    );
}

#[test]
fn doctor_on_a_fresh_host_creates_nothing() {
    let sb = Sandbox::new();
    sb.write_config(&sb.embedded_config(LIVEKIT, ""));
    let listing = |dir: &std::path::Path| {
        let mut names: Vec<_> = walk(dir);
        names.sort();
        names
    };
    let before = listing(sb.path());
    let (_, findings) = doctor(&sb, &[]);
    let w = &find(&findings, "webhooks received")[0];
    assert_eq!(w["level"], "OK", "{w}");
    assert!(
        w["cause"].as_str().unwrap().contains("no database yet"),
        "{w}"
    );
    assert_eq!(listing(sb.path()), before, "doctor created something");
    assert!(!sb.path().join("data").exists());
}

/// Recording's composite with video needs `localhost` (egress serves its page there): a host
/// whose /etc/hosts lacks it gets a warning that says so. That host is this one seen through a
/// mount namespace, with /etc/hosts without `localhost` and name lookups from files only (so no
/// DNS server can answer for it).
#[test]
fn a_recording_host_where_localhost_does_not_resolve_is_warned() {
    let sb = Sandbox::new();
    let recording = "recording:\n  enabled: true\n";
    sb.write_config(&(sb.embedded_config(LIVEKIT, "") + recording));
    let (_, here) = doctor(&sb, &[]);
    let f = &find(&here, "Egress localhost")[0];
    assert_eq!(f["level"], "OK", "{f}");
    assert!(f["cause"].as_str().unwrap().contains("127.0.0.1"), "{f}");

    assert!(
        nix::unistd::geteuid().is_root(),
        "this test makes a mount namespace (unshare --mount): run it as root, as scripts/test.sh does"
    );
    let hosts = sb.path().join("hosts");
    std::fs::write(&hosts, "127.0.0.1\tother.test\n").unwrap();
    let nsswitch = sb.path().join("nsswitch.conf");
    std::fs::write(&nsswitch, "hosts: files\n").unwrap();
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--propagation", "private", "--", "sh", "-c"])
        .arg(r#"mount --bind "$1" /etc/hosts && mount --bind "$2" /etc/nsswitch.conf && shift 2 && exec "$@""#)
        .arg("sh")
        .arg(&hosts)
        .arg(&nsswitch)
        .arg(env!("CARGO_BIN_EXE_bedrud"));
    let (_, there) = sb.doctor_with(cmd, "/usr/bin:/bin", &[]);
    let f = &find(&there, "Egress localhost")[0];
    assert_eq!(f["level"], "WARN", "{f}");
    let cause = f["cause"].as_str().unwrap();
    assert!(
        cause.contains("`localhost` does not resolve") && cause.contains("ERR_CONNECTION_REFUSED"),
        "{f}"
    );
    assert!(f["fix"].as_str().unwrap().contains("/etc/hosts"), "{f}");
    // Only that finding changed.
    let levels = |findings: &[Value]| {
        findings
            .iter()
            .filter(|f| f["check"] != "Egress localhost")
            .map(|f| format!("{} {}", f["check"], f["level"]))
            .collect::<Vec<_>>()
    };
    assert_eq!(levels(&here), levels(&there));
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        }
        out.push(p);
    }
    out
}

#[test]
fn a_certificate_for_another_name_and_a_missing_acme_result_are_caught() {
    let sb = Sandbox::new();
    let (cert, key) = self_signed(sb.path(), &["other.bedrud.test"]);
    let tls = format!(
        "server:\n  host: meet.bedrud.test\n  enableTLS: true\n  certFile: {}\n  keyFile: {}\n",
        cert.display(),
        key.display()
    );
    sb.write_config(
        &sb.embedded_config(LIVEKIT, "")
            .replacen("server:\n", &tls, 1),
    );
    let (success, findings) = doctor(&sb, &[]);
    assert!(!success);
    assert_eq!(level_of(&findings, "TLS certificate name"), "FAIL");
    let name = &find(&findings, "TLS certificate name")[0]["cause"];
    assert!(
        name.as_str().unwrap().contains("other.bedrud.test"),
        "{name}"
    );
    assert_eq!(
        level_of(&findings, "TLS certificate"),
        "WARN",
        "self-signed"
    );
    assert_eq!(level_of(&findings, "TLS certificate chain"), "OK");

    // With ACME on and bedrud never started: no certificate and no result yet.
    let acme = "server:\n  host: meet.bedrud.test\n  enableTLS: true\n  acme:\n    enabled: true\n    httpPort: 8080\n";
    sb.write_config(
        &sb.embedded_config(LIVEKIT, "")
            .replacen("server:\n", acme, 1),
    );
    let (success, findings) = doctor(&sb, &[]);
    assert!(!success);
    assert_eq!(level_of(&findings, "TLS certificate"), "FAIL");
    assert_eq!(level_of(&findings, "ACME"), "WARN");
}
