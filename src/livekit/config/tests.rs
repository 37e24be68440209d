use std::os::unix::fs::PermissionsExt;

use super::*;
use crate::config::{self, Env, Source};
use crate::secret::Secret;

const SECRET: &str = "0123456789abcdef0123456789abcdef-secret";

fn config_from(text: &str) -> config::Config {
    config::parse(
        text,
        &Source::File("/etc/bedrud/config.yaml".into()),
        &Env::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

fn creds() -> Credentials {
    Credentials {
        api_key: "APIkey".into(),
        api_secret: Secret::new(SECRET),
    }
}

fn generate_for(c: &config::Config, node_ip: &str, version: Option<Version>) -> Generated {
    generate(&Inputs {
        embedded: c.embedded().unwrap(),
        server: &c.server,
        credentials: &creds(),
        node_ip: node_ip.parse().unwrap(),
        webhook_url: "http://127.0.0.1:8090/api/livekit/webhook".into(),
        version,
        redis: None,
    })
}

/// A certificate pair that exists on disk (content does not matter to generation).
fn tls_config(host: &str) -> (tempfile::TempDir, config::Config) {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (
        dir.path().join("fullchain.pem"),
        dir.path().join("privkey.pem"),
    );
    std::fs::write(&cert, "cert").unwrap();
    std::fs::write(&key, "key").unwrap();
    let c = config_from(&format!(
        "server:\n  host: \"{host}\"\n  enableTLS: true\n  port: 443\n  certFile: {}\n  keyFile: {}\n",
        cert.display(),
        key.display()
    ));
    (dir, c)
}

#[test]
fn plain_config_has_udp_turn_webhook_and_no_bind_addresses() {
    let c = config_from("");
    let g = generate_for(&c, "192.0.2.10", Some(Version::new(1, 13, 5)));
    let y = &g.yaml;
    assert!(g.warnings.is_empty(), "{:?}", g.warnings);
    assert_eq!(y.port, 7880);
    assert_eq!(y.keys.get("APIkey").map(String::as_str), Some(SECRET));
    assert_eq!(y.rtc.node_ip, "192.0.2.10");
    assert!(!y.rtc.use_external_ip);
    assert_eq!(
        (y.rtc.tcp_port, y.rtc.port_range_start, y.rtc.port_range_end),
        (7881, 50000, 60000)
    );
    assert_eq!(y.turn.udp_port, Some(3478));
    assert!(y.turn.enabled && y.turn.tls_port.is_none() && y.turn.domain.is_none());
    assert_eq!(y.webhook.api_key, "APIkey");
    assert_eq!(
        y.webhook.urls,
        vec!["http://127.0.0.1:8090/api/livekit/webhook"]
    );
    assert!(y.logging.json);
    let text = y.render(true);
    assert!(!text.contains("bind_addresses"), "{text}");
    assert!(
        !text.contains("enable_loopback_candidate"),
        "only for a loopback node_ip: {text}"
    );
}

#[test]
fn tls_with_a_dns_name_enables_turn_tls_reusing_the_certificate() {
    let (_dir, c) = tls_config("meet.example.test");
    let g = generate_for(&c, "192.0.2.10", Some(Version::new(1, 13, 5)));
    let t = &g.yaml.turn;
    assert_eq!(t.domain.as_deref(), Some("meet.example.test"));
    assert_eq!((t.udp_port, t.tls_port), (Some(3478), Some(5349)));
    let tls = c.server.tls.as_ref().unwrap();
    assert_eq!(
        t.cert_file.as_deref(),
        Some(tls.cert_file.to_str().unwrap())
    );
    assert_eq!(t.key_file.as_deref(), Some(tls.key_file.to_str().unwrap()));
    assert!(g.warnings.is_empty());
}

#[test]
fn tls_without_a_usable_domain_falls_back_to_udp_turn_with_a_warning() {
    for (host, why) in [
        ("203.0.113.5", "is an IP address"),
        ("localhost", "not a fully qualified DNS name"),
        ("", "server.host is empty"),
        ("bad_name.example.test", "not a fully qualified DNS name"),
    ] {
        let (_dir, c) = tls_config(host);
        let g = generate_for(&c, "192.0.2.10", None);
        assert!(
            g.yaml.turn.tls_port.is_none() && g.yaml.turn.domain.is_none(),
            "{host}"
        );
        assert_eq!(g.yaml.turn.udp_port, Some(3478));
        assert_eq!(g.warnings.len(), 1, "{host}: {:?}", g.warnings);
        let w = &g.warnings[0];
        assert!(
            w.contains("UDP-only TURN") && w.contains(why),
            "{host}: {w}"
        );
    }
}

#[test]
fn rtc_interfaces_limit_livekits_candidates() {
    let c = config_from("livekit:\n  rtcInterfaces: [lo]\n");
    let y = generate_for(&c, "127.0.0.1", None).yaml;
    assert_eq!(
        y.rtc.interfaces,
        Some(Interfaces {
            includes: vec!["lo".into()]
        })
    );
    assert!(
        y.render(true)
            .contains("interfaces:\n    includes:\n    - lo"),
        "{}",
        y.render(true)
    );
    assert_eq!(
        generate_for(&config_from(""), "127.0.0.1", None)
            .yaml
            .rtc
            .interfaces,
        None
    );
}

#[test]
fn turn_can_be_switched_off() {
    let c = config_from("livekit:\n  turnEnabled: false\n");
    let t = generate_for(&c, "192.0.2.10", None).yaml.turn;
    assert!(!t.enabled && t.udp_port.is_none());
}

#[test]
fn loopback_node_ip_adds_the_loopback_candidate_only_when_the_version_is_known() {
    let c = config_from("");
    let known = generate_for(&c, "127.0.0.1", Some(Version::new(1, 11, 0)));
    assert_eq!(known.yaml.rtc.enable_loopback_candidate, Some(true));
    let unknown = generate_for(&c, "127.0.0.1", None);
    assert_eq!(unknown.yaml.rtc.enable_loopback_candidate, None);
}

#[test]
fn versions_older_than_tested_get_a_warning() {
    let c = config_from("");
    let g = generate_for(&c, "192.0.2.10", Some(Version::new(1, 8, 0)));
    assert!(
        g.warnings.iter().any(|w| w.contains("older than 1.11.0")),
        "{:?}",
        g.warnings
    );
}

#[test]
fn rendering_masks_secrets_unless_asked() {
    let c = config_from("");
    let y = generate_for(&c, "192.0.2.10", None).yaml;
    let masked = y.render(false);
    assert!(
        !masked.contains(SECRET) && masked.contains("APIkey: '********'"),
        "{masked}"
    );
    assert!(y.render(true).contains(SECRET));
    // And the YAML reads back with LiveKit's key names.
    let back: yaml_serde::Value = yaml_serde::from_str(&y.render(true)).unwrap();
    assert_eq!(back["rtc"]["node_ip"].as_str(), Some("192.0.2.10"));
    assert_eq!(back["webhook"]["api_key"].as_str(), Some("APIkey"));
}

#[test]
fn config_file_is_private_and_removed_on_drop() {
    let dir = tempfile::tempdir().unwrap();
    let f = ConfigFile::write(dir.path(), "port: 7880\n").unwrap();
    let path = f.path().to_path_buf();
    let name = path.file_name().unwrap().to_str().unwrap();
    assert!(
        name.starts_with("bedrud-livekit-") && name.ends_with(".yaml"),
        "{name}"
    );
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "port: 7880\n");
    drop(f);
    assert!(!path.exists());
}

#[test]
fn stale_cleanup_removes_only_unlocked_bedrud_files() {
    let dir = tempfile::tempdir().unwrap();
    let stale = dir.path().join("bedrud-livekit-dead01.yaml");
    std::fs::write(&stale, "keys: {}").unwrap();
    let other = dir.path().join("livekit.yaml");
    std::fs::write(&other, "x").unwrap();
    let unrelated = dir.path().join("bedrud-livekit-notes.txt");
    std::fs::write(&unrelated, "x").unwrap();
    let live = ConfigFile::write(dir.path(), "port: 7880\n").unwrap();

    let removed = remove_stale(dir.path());

    assert_eq!(removed, vec![stale.clone()]);
    assert!(!stale.exists());
    assert!(other.exists() && unrelated.exists());
    assert!(
        live.path().exists(),
        "a file locked by a running bedrud must stay"
    );
}
