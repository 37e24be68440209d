//! External mode: bedrud starts no LiveKit and follows one that runs on its own.

mod common;

use common::*;
use serde_json::json;

/// A livekit-server started by the test itself, as an administrator's separate server would be.
struct StandaloneLiveKit {
    process: LiveKitProcess,
    port: u16,
    _dir: tempfile::TempDir,
}

impl StandaloneLiveKit {
    fn start() -> StandaloneLiveKit {
        let dir = tempfile::tempdir().unwrap();
        let ports = Ports::new();
        let cfg = dir.path().join("livekit.yaml");
        std::fs::write(&cfg, livekit_yaml(&ports, "APIext")).unwrap();
        StandaloneLiveKit {
            process: LiveKitProcess::start(&cfg),
            port: ports.livekit,
            _dir: dir,
        }
    }
}

fn external_config(sb: &Sandbox, ws: &str, internal: &str, extra: &str) -> String {
    format!(
        "server:\n  bindAddress: 127.0.0.1\n  port: {}\n  dataDir: {}\nlivekit:\n  embedded: false\n  host: {ws}\n  internalHost: {internal}\n  apiKey: APIext\n  apiSecret: {SECRET}\n{extra}",
        sb.ports.api,
        sb.path().join("data").display()
    )
}

#[test]
fn follows_an_external_livekit_and_reports_when_it_goes_away() {
    let mut lk = StandaloneLiveKit::start();
    let sb = Sandbox::new();
    sb.write_config(&format!(
        "server:\n  bindAddress: 127.0.0.1\n  port: {}\n  dataDir: {}\nlivekit:\n  embedded: false\n  host: ws://127.0.0.1:{p}\n  internalHost: http://127.0.0.1:{p}\n  apiKey: APIext\n  apiSecret: {SECRET}\n",
        sb.ports.api,
        sb.path().join("data").display(),
        p = lk.port
    ));
    let mut b = sb.start(&[]);
    let body = b.wait_ready();
    assert_eq!(body["livekit"]["mode"], "external");
    assert_eq!(
        body["livekit"]["url"],
        format!("ws://127.0.0.1:{}", lk.port)
    );
    assert!(
        body["livekit"]["pid"].is_null(),
        "external mode runs no process"
    );
    assert!(sb.generated_files().is_empty());

    lk.process.kill();
    let body = b.wait_for("/ready to report LiveKit unreachable", |b| {
        match b.ready() {
            Some((503, body)) => Some(body),
            _ => None,
        }
    });
    let error = body["error"].as_str().unwrap();
    assert!(error.contains("LiveKit is unreachable"), "{error}");
    assert!(error.contains(&format!("127.0.0.1:{}", lk.port)), "{error}");
    assert_eq!(get_status(&b.url("/health")), Some(200));
    assert!(b.terminate().success());
}

#[test]
fn a_self_signed_internal_host_needs_skip_tls_verify() {
    let lk = StandaloneLiveKit::start();
    let sb = Sandbox::new();
    let proxy = TlsProxy::start(sb.path(), lk.port);
    let internal = format!("https://127.0.0.1:{}", proxy.port);
    let ws = format!("wss://127.0.0.1:{}", proxy.port);

    // Without skipTLSVerify the certificate is not trusted, and bedrud says which key fixes it.
    sb.write_config(&external_config(&sb, &ws, &internal, ""));
    let mut b = sb.start(&[]);
    let body = b.wait_for("/ready to report the untrusted certificate", |b| {
        match b.ready() {
            Some((503, body)) if body["error"].as_str()?.contains("certificate") => Some(body),
            _ => None,
        }
    });
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("livekit.skipTLSVerify"),
        "{body}"
    );
    assert!(b.terminate().success());

    // With it, the same LiveKit behind the same proxy is ready.
    sb.write_config(&external_config(
        &sb,
        &ws,
        &internal,
        "  skipTLSVerify: true\n",
    ));
    let mut b = sb.start(&[]);
    let body = b.wait_ready();
    assert_eq!(body["livekit"]["mode"], "external");
    let warnings = body["livekit"]["warnings"].to_string();
    assert!(
        warnings.contains("always verifies certificates"),
        "the limit is stated: {warnings}"
    );
    // The server API does not skip verification: a join (CreateRoom over https) fails…
    let (token, _, _) = b.register("alice@example.test");
    let room = json!({"name": "tls-room"});
    assert_eq!(
        b.call("POST", "/api/room/create", Some(&token), Some(room))
            .0,
        201
    );
    let join = json!({"roomName": "tls-room"});
    let (st, r) = b.call("POST", "/api/room/join", Some(&token), Some(join.clone()));
    assert_eq!(st, 503, "an untrusted certificate cannot pass: {r}");
    assert!(r["error"].as_str().unwrap().contains("certificate"), "{r}");
    assert!(b.terminate().success());

    // …until the certificate is trusted on the host, as the warning says (here: SSL_CERT_FILE).
    let cert = sb.path().join("cert.pem");
    let mut b = sb.start(&[("SSL_CERT_FILE", cert.to_str().unwrap())]);
    b.wait_ready();
    let (token, _, _) = b.register("bob@example.test");
    let (st, r) = b.call("POST", "/api/room/join", Some(&token), Some(join));
    assert_eq!(st, 200, "{r}");
    assert!(b.terminate().success());
}
