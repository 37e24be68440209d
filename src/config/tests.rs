use super::*;

const SECRET: &str = "0123456789abcdef0123456789abcdef-secret";

fn file() -> Source {
    Source::File(PathBuf::from("/etc/bedrud/config.yaml"))
}

fn parse_ok(text: &str) -> Config {
    parse(text, &file(), &Env::default()).unwrap_or_else(|e| panic!("{e}"))
}

fn problems(text: &str) -> Vec<String> {
    problems_with(text, &Env::default())
}

fn problems_with(text: &str, env: &Env) -> Vec<String> {
    match parse(text, &file(), env) {
        Err(ConfigError::Invalid { problems, .. }) => {
            problems.iter().map(|p| p.to_string()).collect()
        }
        Err(e) => panic!("expected validation problems, got: {e}"),
        Ok(_) => panic!("expected validation problems, the config was accepted"),
    }
}

fn has(problems: &[String], start: &str) -> bool {
    problems.iter().any(|p| p.starts_with(start))
}

#[test]
fn empty_file_gives_embedded_defaults() {
    let c = parse_ok("");
    assert_eq!(c.server.port, 8090);
    assert_eq!(c.server.bind_address.to_string(), "0.0.0.0");
    assert_eq!(c.server.data_dir, PathBuf::from("/var/lib/bedrud"));
    let e = c.embedded().expect("embedded by default");
    assert_eq!(
        (e.port, e.rtc_tcp_port, e.rtc_port_range),
        (7880, 7881, (50000, 60000))
    );
    assert_eq!(
        e.turn,
        Turn {
            enabled: true,
            udp_port: 3478,
            tls_port: 5349
        }
    );
    assert_eq!(e.supervision.stop_grace_period, Duration::from_secs(20));
    assert!(c.livekit.credentials.is_none());
}

#[test]
fn development_defaults_stay_on_loopback() {
    let c = parse("", &Source::Development, &Env::default()).unwrap();
    assert!(c.server.bind_address.is_loopback());
    assert_eq!(
        c.embedded().unwrap().node_ip,
        Some("127.0.0.1".parse().unwrap())
    );
    assert_eq!(c.server.data_dir, PathBuf::from("bedrud-data"));
}

#[test]
fn keys_use_the_source_documents_names() {
    let c = parse_ok(&format!(
        r#"
server:
  host: "meet.example.test"
  port: 8443
livekit:
  external: true
  host: "wss://livekit.example.test:7880"
  internalHost: "https://livekit.example.test:7880/"
  apiKey: "APIkey"
  apiSecret: "{SECRET}"
  skipTLSVerify: true
"#
    ));
    assert!(matches!(c.livekit.mode, Mode::External));
    assert_eq!(
        c.livekit.host.as_deref(),
        Some("wss://livekit.example.test:7880")
    );
    assert_eq!(
        c.livekit.internal_host.as_deref(),
        Some("https://livekit.example.test:7880")
    );
    assert!(c.livekit.skip_tls_verify);
    assert_eq!(c.livekit.credentials.unwrap().api_secret.expose(), SECRET);
}

#[test]
fn embedded_false_means_external_and_contradictions_are_errors() {
    let base = format!(
        "livekit:\n  host: ws://lk.example.test\n  internalHost: http://lk.example.test\n  apiKey: k\n  apiSecret: {SECRET}\n"
    );
    let c = parse_ok(&format!("{base}  embedded: false\n"));
    assert!(matches!(c.livekit.mode, Mode::External));
    let p = problems(&format!("{base}  embedded: true\n  external: true\n"));
    assert!(
        has(&p, "livekit.embedded: contradicts livekit.external"),
        "{p:?}"
    );
}

#[test]
fn every_problem_is_reported_at_once_with_its_key() {
    let p = problems(
        r#"
server:
  bindAddress: "everywhere"
  port: 70000
  enableTLS: true
livekit:
  apiKey: "key"
  apiSecret: "short"
  nodeIP: "not-an-ip"
  port: 0
  rtcPortRangeStart: 60000
  rtcPortRangeEnd: 50000
  stopGracePeriod: "soon"
  logLevel: "loud"
  host: "http://wrong-scheme.test"
log:
  level: "chatty"
"#,
    );
    for expected in [
        "server.bindAddress: \"everywhere\" is not an IP address",
        "server.port: must be a port number between 0 and 65535",
        "server.certFile: is required when server.enableTLS is true",
        "server.keyFile: is required when server.enableTLS is true",
        "livekit.apiSecret: must be at least 32 characters (it has 5)",
        "livekit.nodeIP: \"not-an-ip\" is not an IP address",
        "livekit.port: must be a port number between 1 and 65535",
        "livekit.rtcPortRangeEnd: must not be below livekit.rtcPortRangeStart",
        "livekit.stopGracePeriod:",
        "livekit.logLevel: must be one of debug, info, warn, error",
        "livekit.host: must be a URL starting with ws:// or wss://",
        "log.level: must be one of trace, debug, info, warn, error",
    ] {
        assert!(has(&p, expected), "missing {expected:?} in {p:#?}");
    }
    assert_eq!(p.len(), 12, "{p:#?}");
}

#[test]
fn a_secret_is_never_echoed() {
    let short = "numeric-ish-1234";
    let text = format!("livekit:\n  apiKey: k\n  apiSecret: \"{short}\"\n");
    let err = parse(&text, &file(), &Env::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("livekit.apiSecret") && !err.contains(short),
        "{err}"
    );
    // A number-looking secret is read as a string, not rejected with its value in the message.
    let text = "livekit:\n  apiKey: k\n  apiSecret: 12345678901234567890123456789012345\n";
    let c = parse_ok(text);
    assert_eq!(c.livekit.credentials.unwrap().api_secret.char_len(), 35);
}

#[test]
fn unknown_keys_are_all_named() {
    let p = problems("server:\n  prot: 1\nlivekit:\n  nodeIp: 1.2.3.4\ntls:\n  cert: x\n");
    for k in [
        "server.prot: unknown key",
        "livekit.nodeIp: unknown key",
        "tls: unknown key",
    ] {
        assert!(has(&p, k), "missing {k:?} in {p:?}");
    }
}

#[test]
fn syntax_errors_name_the_file_and_position() {
    let err = parse("server:\n  port: [1,\n", &file(), &Env::default()).unwrap_err();
    let msg = err.to_string();
    assert!(msg.starts_with("/etc/bedrud/config.yaml:"), "{msg}");
    assert!(msg.contains("line"), "{msg}");
}

#[test]
fn type_errors_name_the_key() {
    let err = parse("server:\n  port: lots\n", &file(), &Env::default()).unwrap_err();
    assert!(err.to_string().contains("server.port"), "{err}");
}

#[test]
fn external_mode_requires_its_keys() {
    let p = problems("livekit:\n  external: true\n");
    for k in [
        "livekit.host: is required",
        "livekit.internalHost: is required",
        "livekit.apiKey: is required",
        "livekit.apiSecret: is required",
    ] {
        assert!(has(&p, k), "missing {k:?} in {p:?}");
    }
}

#[test]
fn livekit_config_path_from_env_wins_and_must_exist() {
    let dir = tempfile::tempdir().unwrap();
    let from_file = dir.path().join("a.yaml");
    let from_env = dir.path().join("b.yaml");
    std::fs::write(&from_file, "port: 7880\n").unwrap();
    std::fs::write(&from_env, "port: 7890\n").unwrap();
    let env = Env {
        livekit_config_path: Some(from_env.clone()),
        ..Env::default()
    };
    let text = format!("livekit:\n  configPath: {}\n", from_file.display());
    let c = parse(&text, &file(), &env).unwrap();
    assert_eq!(
        c.embedded().unwrap().static_config.as_deref(),
        Some(from_env.as_path())
    );
    let missing = Env {
        livekit_config_path: Some(dir.path().join("missing.yaml")),
        ..Env::default()
    };
    let p = problems_with("", &missing);
    assert!(has(&p, "LIVEKIT_CONFIG_PATH: cannot read"), "{p:?}");
    let p = problems(&format!(
        "livekit:\n  configPath: {}\n",
        dir.path().join("nope.yaml").display()
    ));
    assert!(has(&p, "livekit.configPath: cannot read"), "{p:?}");
}

#[test]
fn port_clashes_are_caught_before_run_time() {
    let p = problems("server:\n  port: 7880\nlivekit:\n  rtcTcpPort: 7880\n  turnUdpPort: 50010\n");
    assert!(
        has(
            &p,
            "livekit.port: TCP port 7880 is already used by server.port"
        ),
        "{p:?}"
    );
    assert!(
        has(
            &p,
            "livekit.rtcTcpPort: TCP port 7880 is already used by server.port"
        ),
        "{p:?}"
    );
    assert!(
        has(
            &p,
            "livekit.turnUdpPort: 50010 lies inside the RTC UDP port range"
        ),
        "{p:?}"
    );
}

#[test]
fn tls_files_must_be_readable() {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("cert.pem");
    std::fs::write(&cert, "x").unwrap();
    let text = format!(
        "server:\n  enableTLS: true\n  certFile: {}\n  keyFile: {}\n",
        cert.display(),
        dir.path().join("missing.key").display()
    );
    let p = problems(&text);
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(has(&p, "server.keyFile: cannot read"), "{p:?}");
}

#[test]
fn state_directory_from_systemd_is_the_default_data_dir() {
    let env = Env {
        state_directory: Some(PathBuf::from("/var/lib/bedrud-test")),
        ..Env::default()
    };
    let c = parse("", &file(), &env).unwrap();
    assert_eq!(c.server.data_dir, PathBuf::from("/var/lib/bedrud-test"));
    let c = parse("server:\n  dataDir: /srv/bedrud\n", &file(), &env).unwrap();
    assert_eq!(c.server.data_dir, PathBuf::from("/srv/bedrud"));
}

#[test]
fn locate_prefers_flag_then_env_and_names_a_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.yaml");
    std::fs::write(&a, "").unwrap();
    let env = Env {
        bedrud_config: Some(dir.path().join("from-env.yaml")),
        ..Env::default()
    };
    assert_eq!(locate(Some(&a), &env).unwrap(), Source::File(a.clone()));
    let err = locate(None, &env).unwrap_err().to_string();
    assert!(
        err.contains("from-env.yaml") && err.contains("$BEDRUD_CONFIG"),
        "{err}"
    );
    let err = locate(Some(&dir.path().join("x.yaml")), &Env::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("x.yaml") && err.contains("--config"), "{err}");
}

/// Every key bedrud reads is documented in config/config.example.yaml, and nothing else is.
#[test]
fn the_example_config_documents_every_key() {
    let example = include_str!("../../config/config.example.yaml");
    let documented = leaf_keys(&yaml_serde::from_str(example).unwrap());
    let known = leaf_keys(&yaml_serde::to_value(RawConfig::default()).unwrap());
    assert_eq!(documented, known);
    parse_ok(example);
    parse(
        include_str!("../../config/development.yaml"),
        &file(),
        &Env::default(),
    )
    .unwrap();
}

fn leaf_keys(v: &yaml_serde::Value) -> Vec<String> {
    fn walk(prefix: &str, v: &yaml_serde::Value, out: &mut Vec<String>) {
        match v {
            yaml_serde::Value::Mapping(m) => {
                for (k, child) in m {
                    let k = k.as_str().unwrap();
                    let path = if prefix.is_empty() {
                        k.to_string()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&path, child, out);
                }
            }
            _ => out.push(prefix.to_string()),
        }
    }
    let mut out = Vec::new();
    walk("", v, &mut out);
    out.sort();
    out
}

#[test]
fn turn_tls_port_clashes_only_when_livekit_opens_it() {
    let dir = tempfile::tempdir().unwrap();
    let pem = dir.path().join("cert.pem");
    std::fs::write(&pem, "not checked here").unwrap();
    let tls = |host: &str| {
        format!(
            "server:\n  host: {host}\n  port: 5349\n  enableTLS: true\n  certFile: {p}\n  keyFile: {p}\n",
            p = pem.display()
        )
    };
    // With an IP as server.host LiveKit gets UDP-only TURN: 5349 stays free for the API.
    parse(&tls("203.0.113.10"), &file(), &Env::default()).unwrap_or_else(|e| panic!("{e}"));
    let p = problems(&tls("meet.example.com"));
    assert!(
        has(
            &p,
            "livekit.turnTlsPort: TCP port 5349 is already used by server.port"
        ),
        "{p:?}"
    );
}

#[test]
fn a_wrongly_typed_value_is_one_problem_among_the_others() {
    let p = problems(
        "server:\n  port: \"not-a-port\"\n  enableTLS: maybe\nlivekit:\n  apiKey: k\n  apiSecret: too-short-secret\n  rtcInterfaces: lo\n  colour: blue\n",
    );
    for expected in [
        "server.port: must be a whole number (found string)",
        "server.enableTLS: must be true or false (found string)",
        "livekit.rtcInterfaces: must be a list (found string)",
        "livekit.apiSecret: must be at least 32 characters (it has 16)",
        "livekit.colour: unknown key",
    ] {
        assert!(has(&p, expected), "missing {expected:?} in {p:?}");
    }
    assert_eq!(p.len(), 5, "{p:?}");
    assert!(
        !p.iter().any(|m| m.contains("not-a-port")),
        "values are not echoed: {p:?}"
    );
}

#[test]
fn a_wrongly_typed_section_or_document_is_named() {
    let p = problems("server: 8090\nauth:\n  jwtSecret: short\n");
    assert!(
        has(&p, "server: must be a mapping of keys (found integer)"),
        "{p:?}"
    );
    assert!(has(&p, "auth.jwtSecret: must be at least 32"), "{p:?}");
    match parse("- a\n- b\n", &file(), &Env::default()) {
        Err(ConfigError::Syntax { message, .. }) => {
            assert!(message.contains("must be a mapping"), "{message}")
        }
        other => panic!("expected a syntax error, got {other:?}"),
    }
}

#[test]
fn acme_defaults_to_lets_encrypt_over_http_01_and_keeps_its_files_in_the_data_folder() {
    let c = parse_ok(
        "server:\n  host: meet.example.test\n  port: 443\n  enableTLS: true\n  dataDir: /srv/bedrud\n  acme:\n    enabled: true\n    email: ops@example.test\n",
    );
    let acme = c.server.acme.as_ref().expect("acme on");
    assert_eq!(
        acme.directory_url,
        "https://acme-v02.api.letsencrypt.org/directory"
    );
    assert_eq!(acme.challenge, AcmeChallenge::Http01);
    assert_eq!(acme.http_port, 80);
    assert_eq!(acme.contact, vec!["mailto:ops@example.test".to_string()]);
    assert_eq!(acme.domain, "meet.example.test");
    let tls = c.server.tls.as_ref().unwrap();
    assert_eq!(
        tls.cert_file,
        PathBuf::from("/srv/bedrud/acme/certificate.pem")
    );
    assert_eq!(tls.key_file, PathBuf::from("/srv/bedrud/acme/key.pem"));
    assert!(parse_ok("").server.acme.is_none());
}

#[test]
fn acme_problems_are_all_reported_with_their_keys() {
    let p = problems(
        "server:\n  host: 192.0.2.1\n  port: 8080\n  certFile: /etc/x.pem\n  acme:\n    enabled: true\n    email: not-an-address\n\
         \x20   directoryUrl: http://ca.example.test/dir\n    challenge: dns-01\n    httpPort: 8080\n    directoryCaFile: /nonexistent/ca.pem\n",
    );
    for key in [
        "server.acme.enabled: needs server.enableTLS: true",
        "server.certFile: must be empty when server.acme.enabled",
        "server.host: server.host 192.0.2.1 is an IP address",
        "server.acme.email:",
        "server.acme.directoryUrl: must be a URL starting with https://",
        "server.acme.challenge: must be http-01",
        "server.acme.httpPort: TCP port 8080 is already used by server.port",
        "server.acme.directoryCaFile: cannot read /nonexistent/ca.pem",
    ] {
        assert!(has(&p, key), "{key} missing from {p:#?}");
    }
    let p = problems("server:\n  host: a.example.test\n  enableTLS: true\n  acme:\n    enabled: true\n    challenge: tls-alpn-01\n");
    assert!(
        has(
            &p,
            "server.acme.challenge: tls-alpn-01 is not supported yet"
        ),
        "{p:#?}"
    );
}

#[test]
fn recording_defaults_keep_local_files_in_the_data_folder() {
    let c = parse_ok("server:\n  dataDir: /srv/bedrud\n");
    assert!(!c.recording.enabled);
    assert_eq!(c.recordings_dir(), PathBuf::from("/srv/bedrud/recordings"));
    assert_eq!(c.recording.retain, None);
    assert!(c.recording.redis.is_none() && c.recording.s3.is_none());
    let c = parse_ok(
        "recording:\n  enabled: true\n  retainDays: 2\n  s3:\n    endpoint: http://127.0.0.1:7070/\n    \
         bucket: rec\n    accessKey: k\n    secretKey: s3cret\n    forcePathStyle: true\n",
    );
    let s3 = c.recording.s3.expect("s3");
    assert_eq!(s3.endpoint.as_deref(), Some("http://127.0.0.1:7070"));
    assert_eq!(
        (s3.bucket.as_str(), s3.prefix.as_str()),
        ("rec", "recordings/")
    );
    assert_eq!(c.recording.retain, Some(Duration::from_secs(2 * 86_400)));
}

#[test]
fn recording_problems_name_their_keys_and_hide_secrets() {
    let p = problems(
        "recording:\n  retainDays: -1\n  egressCpuCost: 0\n  redis:\n    password: hunter2hunter2\n  \
         s3:\n    bucket: rec\n    endpoint: ftp://x\n",
    );
    for key in [
        "recording.retainDays:",
        "recording.egressCpuCost:",
        "recording.redis.password:",
        "recording.s3.accessKey:",
        "recording.s3.secretKey:",
        "recording.s3.endpoint:",
    ] {
        assert!(has(&p, key), "{key} missing from {p:#?}");
    }
    assert!(!p.iter().any(|l| l.contains("hunter2")), "{p:#?}");
    let s3 = |prefix: &str| {
        format!(
            "recording:\n  s3:\n    bucket: rec\n    accessKey: k\n    secretKey: s\n    \
             prefix: \"{prefix}\"\n"
        )
    };
    for ok in ["", "recordings/", "a/b-c_d.e/", "meet"] {
        assert_eq!(parse_ok(&s3(ok)).recording.s3.unwrap().prefix, ok);
    }
    for bad in ["a//b/", "../x/", "a/./b", "sp ace/", "ü/"] {
        assert!(has(&problems(&s3(bad)), "recording.s3.prefix:"), "{bad}");
    }
}
