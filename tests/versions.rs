//! The generated LiveKit config is accepted by the LiveKit releases bedrud supports — actually
//! started, not just parsed — including TURN/TLS with the API's certificate reused.

mod common;

use common::*;

fn tls_sandbox(version: &str, host: &str) -> Sandbox {
    let sb = Sandbox::new();
    let (cert, key) = self_signed(sb.path(), &["meet.bedrud.test"]);
    let text = sb.embedded_config(version, "").replacen(
        "server:\n",
        &format!(
            "server:\n  host: \"{host}\"\n  enableTLS: true\n  certFile: {}\n  keyFile: {}\n",
            cert.display(),
            key.display()
        ),
        1,
    );
    sb.write_config(&text);
    sb
}

fn starts_with_turn_tls(version: &str) {
    let sb = tls_sandbox(version, "meet.bedrud.test");
    let mut b = sb.start_with_tls(&[], true);
    let body = b.wait_ready();
    assert_eq!(body["livekit"]["version"], version);

    let file = &sb.generated_files()[0];
    let yaml: yaml_serde::Value =
        yaml_serde::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    assert_eq!(yaml["turn"]["domain"].as_str(), Some("meet.bedrud.test"));
    assert_eq!(
        yaml["turn"]["tls_port"].as_u64(),
        Some(sb.ports.turn_tls.into())
    );
    assert_eq!(
        yaml["turn"]["cert_file"].as_str(),
        Some(sb.path().join("cert.pem").to_str().unwrap())
    );
    // LiveKit itself says it runs TURN on both ports (its log is forwarded into bedrud's).
    let logs = b.wait_for("LiveKit's TURN start line", |b| {
        let l = b.logs();
        l.lines()
            .any(|x| x.contains("Starting TURN server"))
            .then_some(l)
    });
    let turn_line = logs
        .lines()
        .find(|l| l.contains("Starting TURN server"))
        .unwrap();
    assert!(
        turn_line.contains(&format!("turn.portTLS={}", sb.ports.turn_tls)),
        "{turn_line}"
    );
    assert!(
        turn_line.contains(&format!("turn.portUDP={}", sb.ports.turn_udp)),
        "{turn_line}"
    );
    // TURN/TLS really listens, with the reused certificate.
    std::net::TcpStream::connect(("127.0.0.1", sb.ports.turn_tls))
        .expect("TURN/TLS port not listening");
    assert!(b.terminate().success());
    assert!(sb.generated_files().is_empty());
}

#[test]
fn the_packaged_livekit_accepts_the_generated_config_with_turn_tls() {
    starts_with_turn_tls(LIVEKIT);
}

#[test]
fn the_oldest_tested_livekit_accepts_the_generated_config_with_turn_tls() {
    starts_with_turn_tls(LIVEKIT_OLD);
}

#[test]
fn an_ip_as_server_host_falls_back_to_udp_turn_and_livekit_still_starts() {
    for version in [LIVEKIT, LIVEKIT_OLD] {
        let sb = tls_sandbox(version, "127.0.0.1");
        let mut b = sb.start_with_tls(&[], true);
        let body = b.wait_ready();
        let warnings = body["livekit"]["warnings"].as_array().unwrap();
        assert!(
            warnings
                .iter()
                .any(|w| w.as_str().unwrap().contains("UDP-only TURN")),
            "{warnings:?}"
        );
        let yaml: yaml_serde::Value =
            yaml_serde::from_str(&std::fs::read_to_string(&sb.generated_files()[0]).unwrap())
                .unwrap();
        assert!(yaml["turn"].get("tls_port").is_none(), "{version}");
        assert!(b.logs().contains("UDP-only TURN"));
        assert!(b.terminate().success());
    }
}

#[test]
fn the_oldest_tested_release_is_the_one_the_tests_start() {
    // bedrud's own idea of the oldest release it was tested with, and the pin the tests run.
    let oldest = bedrud::livekit::config::OLDEST_TESTED.to_string();
    assert_eq!(
        oldest, LIVEKIT_OLD,
        "update OLDEST_TESTED with scripts/livekit-version.sh"
    );
    assert_ne!(LIVEKIT, LIVEKIT_OLD);
}
