//! Two bedrud instances on one PostgreSQL and one external LiveKit that sends its webhooks to
//! both: accounts and rooms are shared, and each event is applied once, whichever copy lands first.

mod common;

use common::*;
use serde_json::json;

/// The count of `name{labels}` in an instance's /metrics, 0 when absent.
fn metric(b: &Bedrud, line_start: &str) -> u64 {
    let (_, m) = b.call("GET", "/metrics", None, None);
    m.as_str()
        .unwrap()
        .lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0)
}

/// (applied, duplicate) for `event` summed over both instances.
fn outcomes(a: &Bedrud, b: &Bedrud, event: &str) -> (u64, u64) {
    let count = |outcome: &str| {
        let line = format!(r#"bedrud_webhook_events_total{{event="{event}",outcome="{outcome}"}}"#);
        metric(a, &line) + metric(b, &line)
    };
    (count("applied"), count("duplicate"))
}

#[test]
fn two_instances_share_state_and_apply_each_webhook_once() {
    let db = fresh_pg_database("inst");
    let (sa, sb) = (Sandbox::new(), Sandbox::new());
    let lk_ports = Ports::new();
    let hooks = format!(
        "webhook:\n  api_key: APIext\n  urls:\n  - http://127.0.0.1:{}/api/livekit/webhook\n  - http://127.0.0.1:{}/api/livekit/webhook\n",
        sa.ports.api, sb.ports.api
    );
    let lk_config = sa.path().join("livekit.yaml");
    std::fs::write(&lk_config, livekit_yaml(&lk_ports, "APIext") + &hooks).unwrap();
    let _lk = LiveKitProcess::start(&lk_config);
    let config = |s: &Sandbox| {
        format!(
            "server:\n  bindAddress: 127.0.0.1\n  port: {}\n  dataDir: {}\ndatabase:\n  url: {db}\n\
             auth:\n  jwtSecret: shared-secret-of-both-instances-0123456789\n\
             livekit:\n  external: true\n  host: ws://127.0.0.1:{lk}\n  internalHost: http://127.0.0.1:{lk}\n  apiKey: APIext\n  apiSecret: {SECRET}\n",
            s.ports.api,
            s.path().join("data").display(),
            lk = lk_ports.livekit
        )
    };
    sa.write_config(&config(&sa));
    sb.write_config(&config(&sb));
    let (mut a, mut b) = (sa.start(&[]), sb.start(&[]));
    a.wait_ready();
    b.wait_ready();

    // An account made on A signs in on B, and A's access token is good on B.
    let (token, _, _) = a.register("alice@example.test");
    let (st, login) = b.call(
        "POST",
        "/api/auth/login",
        None,
        Some(json!({"email": "alice@example.test", "password": "correct horse battery"})),
    );
    assert_eq!(st, 200, "{login}");
    assert_eq!(b.call("GET", "/api/auth/me", Some(&token), None).0, 200);

    // A room made on A is joined through B: B creates the LiveKit room, LiveKit tells both.
    assert_eq!(
        a.call(
            "POST",
            "/api/room/create",
            Some(&token),
            Some(json!({"name": "shared"}))
        )
        .0,
        201
    );
    let (st, join) = b.call(
        "POST",
        "/api/room/join",
        Some(&token),
        Some(json!({"roomName": "shared"})),
    );
    assert_eq!(st, 200, "{join}");
    assert_eq!(
        b.call(
            "POST",
            "/api/room/create",
            Some(&token),
            Some(json!({"name": "shared"}))
        )
        .0,
        409
    );

    let (applied, duplicate) = a.wait_for("room_started delivered to both instances", |a| {
        let o = outcomes(a, &b, "room_started");
        (o.0 + o.1 >= 2).then_some(o)
    });
    assert_eq!(
        (applied, duplicate),
        (1, 1),
        "one delivery applied, the other recognised as a repeat"
    );

    // Closing through B ends it; room_finished, again delivered twice, is applied once.
    assert_eq!(
        b.call("POST", "/api/room/shared/close", Some(&token), None)
            .0,
        200
    );
    let (applied, duplicate) = a.wait_for("room_finished delivered to both instances", |a| {
        let o = outcomes(a, &b, "room_finished");
        (o.0 + o.1 >= 2).then_some(o)
    });
    assert_eq!((applied, duplicate), (1, 1));
    assert!(a.terminate().success());
    assert!(b.terminate().success());
}
