use super::*;
use crate::config::{parse, Env, Source};

fn config(text: &str) -> Config {
    let source = Source::File("/etc/bedrud/config.yaml".into());
    parse(text, &source, &Env::default()).unwrap_or_else(|e| panic!("{e}"))
}

const SECRET: &str = "0123456789abcdef0123456789abcdef-secret";

/// One edit per row: the YAML after the change, and the one key it must be reported as.
fn edits() -> Vec<(String, &'static str, Class)> {
    let rows: &[(&str, &str, Class)] = &[
        ("log:\n  level: debug\n", "log.level", Class::Live),
        (
            "auth:\n  accessTokenTtl: 5m\n",
            "auth.accessTokenTtl",
            Class::Live,
        ),
        (
            "auth:\n  refreshTokenTtl: 2days\n",
            "auth.refreshTokenTtl",
            Class::Live,
        ),
        (
            "auth:\n  allowRegistration: false\n",
            "auth.allowRegistration",
            Class::Live,
        ),
        (
            "auth:\n  loginAttemptsPerMinute: 3\n",
            "auth.loginAttemptsPerMinute",
            Class::Live,
        ),
        (
            "auth:\n  registrationsPerMinute: 1\n",
            "auth.registrationsPerMinute",
            Class::Live,
        ),
        (
            "rooms:\n  joinTokenTtl: 1m\n",
            "rooms.joinTokenTtl",
            Class::Live,
        ),
        (
            "rooms:\n  allowGuests: false\n",
            "rooms.allowGuests",
            Class::Live,
        ),
        (
            "rooms:\n  defaultMaxParticipants: 7\n",
            "rooms.defaultMaxParticipants",
            Class::Live,
        ),
        (
            "rooms:\n  reconcileInterval: 5s\n",
            "rooms.reconcileInterval",
            Class::Live,
        ),
        (
            "rooms:\n  emptyTimeout: 1m\n",
            "rooms.emptyTimeout",
            Class::Live,
        ),
        (
            "rooms:\n  departureTimeout: 5s\n",
            "rooms.departureTimeout",
            Class::Live,
        ),
        (
            "server:\n  bodyTimeout: 5s\n",
            "server.bodyTimeout",
            Class::Live,
        ),
        (
            "server:\n  watchConfig: false\n",
            "server.watchConfig",
            Class::Live,
        ),
        (
            "livekit:\n  nodeIP: 192.0.2.7\n",
            "livekit.nodeIP",
            Class::LiveKitRestart,
        ),
        (
            "livekit:\n  rtcTcpPort: 7999\n",
            "livekit.rtcTcpPort",
            Class::LiveKitRestart,
        ),
        (
            "livekit:\n  rtcPortRangeStart: 51000\n",
            "livekit.rtcPortRangeStart/End",
            Class::LiveKitRestart,
        ),
        (
            "livekit:\n  rtcInterfaces: [eth9]\n",
            "livekit.rtcInterfaces",
            Class::LiveKitRestart,
        ),
        (
            "livekit:\n  turnEnabled: false\n",
            "livekit.turnEnabled",
            Class::LiveKitRestart,
        ),
        (
            "livekit:\n  turnUdpPort: 3479\n",
            "livekit.turnUdpPort",
            Class::LiveKitRestart,
        ),
        (
            "livekit:\n  turnTlsPort: 5350\n",
            "livekit.turnTlsPort",
            Class::LiveKitRestart,
        ),
        (
            "livekit:\n  logLevel: debug\n",
            "livekit.logLevel",
            Class::LiveKitRestart,
        ),
        (
            "livekit:\n  webhookUrl: http://127.0.0.1:9/hook\n",
            "livekit.webhookUrl",
            Class::LiveKitRestart,
        ),
        (
            "server:\n  host: meet.example.test\n",
            "server.host",
            Class::ProcessRestart,
        ),
        (
            "server:\n  bindAddress: 127.0.0.1\n",
            "server.bindAddress",
            Class::ProcessRestart,
        ),
        (
            "server:\n  port: 8091\n",
            "server.port",
            Class::ProcessRestart,
        ),
        (
            "server:\n  dataDir: /srv/bedrud\n",
            "server.dataDir",
            Class::ProcessRestart,
        ),
        (
            "server:\n  headerTimeout: 3s\n",
            "server.headerTimeout",
            Class::ProcessRestart,
        ),
        (
            "server:\n  maxConnections: 9\n",
            "server.maxConnections",
            Class::ProcessRestart,
        ),
        (
            "database:\n  url: postgres://bedrud@127.0.0.1/bedrud\n",
            "database.url",
            Class::ProcessRestart,
        ),
        (
            "livekit:\n  port: 7890\n",
            "livekit.port",
            Class::ProcessRestart,
        ),
        (
            "recording:\n  retainDays: 30\n",
            "recording.retainDays",
            Class::Live,
        ),
        (
            "recording:\n  enabled: true\n",
            "recording.enabled",
            Class::ProcessRestart,
        ),
        (
            "recording:\n  dir: /srv/recordings\n",
            "recording.dir",
            Class::ProcessRestart,
        ),
        (
            "recording:\n  egressBinaryPath: /opt/egress\n",
            "recording.egressBinaryPath",
            Class::ProcessRestart,
        ),
        (
            "recording:\n  redisBinaryPath: /opt/redis-server\n",
            "recording.redisBinaryPath",
            Class::ProcessRestart,
        ),
        (
            "recording:\n  egressCpuCost: 2\n",
            "recording.egressCpuCost",
            Class::ProcessRestart,
        ),
        (
            "recording:\n  redis:\n    address: 127.0.0.1:6379\n",
            "recording.redis",
            Class::ProcessRestart,
        ),
        (
            "recording:\n  s3:\n    bucket: b\n    accessKey: k\n    secretKey: s\n",
            "recording.s3",
            Class::ProcessRestart,
        ),
    ];
    let mut all: Vec<(String, &'static str, Class)> = rows
        .iter()
        .map(|(yaml, key, class)| (yaml.to_string(), *key, *class))
        .collect();
    all.push((
        format!("auth:\n  jwtSecret: {SECRET}\n"),
        "auth.jwtSecret",
        Class::ProcessRestart,
    ));
    all
}

#[test]
fn a_changed_secret_alone_is_a_change_though_debug_masks_it() {
    let s3 = |secret: &str| {
        config(&format!(
            "recording:\n  s3:\n    bucket: b\n    accessKey: k\n    secretKey: {secret}\n"
        ))
    };
    let changes = diff(&s3("one"), &s3("two"));
    assert_eq!(changes.process_restart, vec!["recording.s3"], "{changes:?}");
    let redis = |password: &str| {
        config(&format!(
            "recording:\n  redis:\n    address: 127.0.0.1:6379\n    password: {password}\n"
        ))
    };
    let changes = diff(&redis("one"), &redis("two"));
    assert_eq!(
        changes.process_restart,
        vec!["recording.redis"],
        "{changes:?}"
    );
}

#[test]
fn each_edit_is_reported_as_its_key_in_its_class() {
    let running = config("");
    for (yaml, key, class) in edits() {
        let changes = diff(&running, &config(&yaml));
        let expected = match class {
            Class::Live => Changes {
                live: vec![key],
                ..Default::default()
            },
            Class::LiveKitRestart => Changes {
                livekit_restart: vec![key],
                ..Default::default()
            },
            Class::ProcessRestart => Changes {
                process_restart: vec![key],
                ..Default::default()
            },
        };
        assert_eq!(changes, expected, "for the edit {yaml:?}");
        assert_eq!(class_of(key), Some(class));
    }
}

#[test]
fn the_same_config_changes_nothing() {
    let text = "auth:\n  allowRegistration: false\nlivekit:\n  nodeIP: 192.0.2.7\n";
    assert!(diff(&config(text), &config(text)).is_empty());
}

#[test]
fn switching_to_external_livekit_needs_a_process_restart() {
    let external = config(&format!(
        "livekit:\n  external: true\n  host: wss://lk.example.test\n  \
         internalHost: http://127.0.0.1:7880\n  apiKey: APIkey\n  apiSecret: {SECRET}\n"
    ));
    let changes = diff(&config(""), &external);
    assert!(
        changes.process_restart.contains(&"livekit.external"),
        "{changes:?}"
    );
    assert!(changes.live.is_empty(), "{changes:?}");
}

#[test]
fn adopting_live_keys_leaves_the_others_as_they_run() {
    let running = config("");
    let new = config(
        "auth:\n  allowRegistration: false\nserver:\n  port: 9999\nlivekit:\n  rtcTcpPort: 7999\n",
    );
    let next = adopt(&running, &new, Class::Live);
    assert!(!next.auth.allow_registration, "a live key is taken");
    assert_eq!(next.server.port, 8090, "a process-restart key is not");
    assert_eq!(
        next.embedded().unwrap().rtc_tcp_port,
        7881,
        "a LiveKit key waits"
    );
    let restarted = adopt(&next, &new, Class::LiveKitRestart);
    assert_eq!(restarted.embedded().unwrap().rtc_tcp_port, 7999);
    assert_eq!(restarted.server.port, 8090);
    // What is left is exactly what needs a process restart.
    let left = diff(&restarted, &new);
    assert_eq!(left.process_restart, vec!["server.port"]);
    assert!(left.live.is_empty() && left.livekit_restart.is_empty());
}
