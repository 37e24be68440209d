//! Property tests of the parsers that take outside input: the config file, LiveKit's webhook
//! bodies, and the API's JSON request bodies. Whatever comes in: no panic, and a clear error
//! (a config problem names its key and never echoes a secret; the API answers a JSON 4xx).
//! Case counts are bounded so that CI stays quick; `PROPTEST_CASES` raises them locally.

mod common;

use std::path::PathBuf;

use bedrud::config::{self, ConfigError, Env, Source};
use bedrud::livekit::webhook;
use common::*;
use proptest::prelude::*;
use serde_json::{json, Value};

fn cases(n: u32) -> ProptestConfig {
    let n = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(n);
    ProptestConfig {
        cases: n,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Any JSON value, a few levels deep, with the strings and numbers parsers trip on.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,40}".prop_map(Value::from),
        Just(json!("1700000002")),
        Just(json!("-1")),
        Just(json!("ACTIVE")),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::from),
            prop::collection::btree_map("[a-zA-Z]{1,12}", inner.clone(), 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            // Objects that look like what the parser expects, with odd values inside.
            (inner.clone(), inner.clone(), inner).prop_map(|(a, b, c)| {
                json!({"name": a, "identity": b, "sid": c, "state": b, "joinedAt": a})
            }),
        ]
    })
}

/// A config key path bedrud knows, or a near miss.
fn config_key() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "server.host",
        "server.port",
        "server.enableTLS",
        "server.certFile",
        "server.dataDir",
        "server.headerTimeout",
        "server.maxConnections",
        "database.url",
        "auth.jwtSecret",
        "auth.accessTokenTtl",
        "auth.loginAttemptsPerMinute",
        "rooms.joinTokenTtl",
        "rooms.defaultMaxParticipants",
        "rooms.departureTimeout",
        "livekit.external",
        "livekit.embedded",
        "livekit.host",
        "livekit.internalHost",
        "livekit.apiKey",
        "livekit.apiSecret",
        "livekit.nodeIP",
        "livekit.port",
        "livekit.rtcPortRangeStart",
        "livekit.turnTlsPort",
        "log.level",
        "livekit.nosuchkey",
        "nosuchsection.key",
    ])
    .prop_map(String::from)
}

fn yaml_scalar() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        any::<bool>().prop_map(|b| b.to_string()),
        "[a-zA-Z0-9:/._ -]{0,30}".prop_map(|s| format!("\"{s}\"")),
        Just("[1, 2]".to_string()),
        Just("{a: b}".to_string()),
        Just("null".to_string()),
        Just("~".to_string()),
        Just("0x1F".to_string()),
        Just("1e400".to_string()),
    ]
}

fn config_text() -> impl Strategy<Value = String> {
    prop::collection::vec((config_key(), yaml_scalar()), 0..8).prop_map(|pairs| {
        let mut by_section: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        for (key, value) in pairs {
            let (section, field) = key.split_once('.').unwrap();
            by_section
                .entry(section.to_string())
                .or_default()
                .push(format!("  {field}: {value}"));
        }
        by_section
            .into_iter()
            .map(|(s, fields)| format!("{s}:\n{}\n", fields.join("\n")))
            .collect()
    })
}

fn source() -> Source {
    Source::File(PathBuf::from("/etc/bedrud/config.yaml"))
}

proptest! {
    #![proptest_config(cases(512))]

    #[test]
    fn config_text_never_panics_and_every_problem_names_a_key(text in config_text()) {
        match config::parse(&text, &source(), &Env::default()) {
            Ok(_) => {}
            Err(ConfigError::Invalid { problems, .. }) => {
                prop_assert!(!problems.is_empty());
                for p in problems {
                    prop_assert!(!p.key.is_empty() && !p.message.is_empty(), "{p:?}");
                }
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    #[test]
    fn arbitrary_text_is_a_config_error_not_a_panic(text in "\\PC{0,200}") {
        let _ = config::parse(&text, &source(), &Env::default());
    }

    #[test]
    fn a_secret_is_never_echoed(secret in "[A-Za-z0-9]{12,31}", key in "[A-Za-z]{3,10}") {
        let text = format!("livekit:\n  external: true\n  apiKey: {key}\n  apiSecret: {secret}\nauth:\n  jwtSecret: {secret}\n");
        let err = config::parse(&text, &source(), &Env::default()).unwrap_err().to_string();
        prop_assert!(!err.contains(&secret), "{err}");
    }

    #[test]
    fn webhook_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = webhook::parse(&body);
    }

    #[test]
    fn webhook_json_is_an_event_or_a_malformed_error(
        event in prop::sample::select(vec![
            "room_started", "room_finished", "participant_joined", "participant_left",
            "participant_connection_aborted", "track_published", "egress_started",
            "egress_updated", "egress_ended", "something_new",
        ]),
        room in any_json(),
        participant in any_json(),
        egress in any_json(),
        id in any_json(),
    ) {
        let body = json!({
            "event": event, "id": id, "room": room, "participant": participant,
            "egressInfo": egress, "createdAt": "1700000002",
        });
        match webhook::parse(body.to_string().as_bytes()) {
            Ok(e) => prop_assert_eq!(e.name, event),
            Err(e) => prop_assert!(matches!(e, webhook::WebhookError::Malformed(_)), "{e:?}"),
        }
    }
}

/// JSON bodies and path segments sent to the real API: always an answer below 500, and every
/// error a JSON `{"error": …}`.
#[test]
fn api_bodies_get_json_answers_never_5xx() {
    let (b, _sb) =
        ready_bedrud("auth:\n  loginAttemptsPerMinute: 10000\n  registrationsPerMinute: 10000\n");
    let (token, _, _) = b.register("fuzz@example.test");
    b.call(
        "POST",
        "/api/room/create",
        Some(&token),
        Some(json!({"name": "fuzz", "settings": {"allowGuests": true}})),
    );
    let endpoints: Vec<(&str, &str, bool)> = vec![
        ("POST", "/api/auth/register", false),
        ("POST", "/api/auth/login", false),
        ("POST", "/api/auth/refresh", false),
        ("POST", "/api/auth/logout", false),
        ("POST", "/api/room/create", true),
        ("POST", "/api/room/join", true),
        ("POST", "/api/room/guest-join", false),
        ("PUT", "/api/room/fuzz/participants/u_x/permissions", true),
    ];
    let mut runner = proptest::test_runner::TestRunner::new(cases(48));
    for (method, path, signed_in) in endpoints {
        let bearer = signed_in.then_some(token.as_str());
        runner
            .run(&any_json(), |body| {
                let (st, r) = call(method, &b.url(path), bearer, Some(&body));
                prop_assert!(st < 500, "{method} {path} {body} → {st} {r}");
                if st >= 400 {
                    prop_assert!(r["error"].is_string(), "{method} {path} {body} → {st} {r}");
                }
                Ok(())
            })
            .unwrap_or_else(|e| panic!("{e}\nlog:\n{}", b.logs()));
    }
    let segments = "[%a-zA-Z0-9_.~-]{1,24}";
    runner
        .run(&(segments, segments), |(room, who)| {
            let path = format!("/api/room/{room}/kick/{who}");
            let (st, r) = call("POST", &b.url(&path), Some(&token), None);
            prop_assert!(
                st < 500 && r["error"].is_string() || st == 200,
                "{path} → {st} {r}"
            );
            Ok(())
        })
        .unwrap();
}
