//! Embedded mode against the real livekit-server: start, readiness, the generated config,
//! restarts with backoff, clean stops, crash clean-up, and the errors an administrator sees.

mod common;

use common::*;
use nix::sys::signal::Signal;

#[test]
fn starts_livekit_and_reports_ready_with_a_private_generated_config() {
    let sb = Sandbox::new();
    sb.write_config(&sb.embedded_config(LIVEKIT, ""));
    let mut b = sb.start(&[]);
    let body = b.wait_ready();

    let lk = &body["livekit"];
    assert_eq!(lk["state"], "ready");
    assert_eq!(lk["mode"], "embedded");
    assert_eq!(lk["version"], LIVEKIT);
    assert_eq!(lk["port"], sb.ports.livekit);
    assert_eq!(lk["nodeIp"], "127.0.0.1");
    assert_eq!(lk["restarts"], 0);
    assert_eq!(
        get_status(&format!("http://127.0.0.1:{}/", sb.ports.livekit)),
        Some(200)
    );
    assert_eq!(get_status(&b.url("/health")), Some(200));

    let files = sb.generated_files();
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(lk["configFile"], files[0].to_str().unwrap());
    assert_eq!(mode(&files[0]), 0o600);
    let yaml: yaml_serde::Value = yaml(&files[0]);
    assert_eq!(yaml["port"].as_u64(), Some(sb.ports.livekit.into()));
    assert_eq!(yaml["keys"]["APItest"].as_str(), Some(SECRET));
    assert_eq!(yaml["rtc"]["node_ip"].as_str(), Some("127.0.0.1"));
    assert_eq!(
        yaml["rtc"]["tcp_port"].as_u64(),
        Some(sb.ports.rtc_tcp.into())
    );
    assert_eq!(yaml["rtc"]["use_external_ip"].as_bool(), Some(false));
    assert_eq!(yaml["turn"]["enabled"].as_bool(), Some(true));
    assert_eq!(
        yaml["turn"]["udp_port"].as_u64(),
        Some(sb.ports.turn_udp.into())
    );
    assert!(yaml["turn"].get("tls_port").is_none(), "no TLS configured");
    assert_eq!(yaml["webhook"]["api_key"].as_str(), Some("APItest"));
    let hook = format!("http://127.0.0.1:{}/api/livekit/webhook", sb.ports.api);
    assert_eq!(yaml["webhook"]["urls"][0].as_str(), Some(hook.as_str()));
    assert!(yaml.get("bind_addresses").is_none());
}

#[test]
fn livekit_gets_a_clean_environment_and_no_secret_on_its_command_line() {
    let sb = Sandbox::new();
    sb.write_config(&sb.embedded_config(LIVEKIT, ""));
    let envs = [
        ("LIVEKIT_KEYS", "evil: key"),
        ("NODE_IP", "198.51.100.1"),
        ("LIVEKIT_CONFIG", "port: 1"),
    ];
    let mut b = sb.start(&envs);
    b.wait_ready();
    let pid = b.livekit_pid();

    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    let vars: Vec<String> = environ
        .split(|c| *c == 0)
        .filter(|v| !v.is_empty())
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect();
    assert_eq!(vars.len(), 1, "{vars:?}");
    assert!(vars[0].starts_with("PATH="), "{vars:?}");
    let cmdline = String::from_utf8_lossy(&std::fs::read(format!("/proc/{pid}/cmdline")).unwrap())
        .into_owned();
    assert!(!cmdline.contains(SECRET), "{cmdline}");
    assert!(!b.logs().contains(SECRET), "the secret reached the log");
    // LiveKit ignored the hostile variables: it answers on the configured port.
    assert_eq!(
        get_status(&format!("http://127.0.0.1:{}/", sb.ports.livekit)),
        Some(200)
    );
}

#[test]
fn sigterm_stops_livekit_and_removes_its_config() {
    let sb = Sandbox::new();
    sb.write_config(&sb.embedded_config(LIVEKIT, ""));
    let mut b = sb.start(&[]);
    b.wait_ready();
    let lk = b.livekit_pid();
    assert_eq!(sb.generated_files().len(), 1);

    let status = b.terminate();

    assert!(status.success(), "{status}; log:\n{}", b.logs());
    assert!(!alive(lk), "LiveKit outlived bedrud");
    assert!(
        sb.generated_files().is_empty(),
        "{:?}",
        sb.generated_files()
    );
    assert!(b.logs().contains("LiveKit stopped"), "{}", b.logs());
}

#[test]
fn killed_livekit_is_restarted_and_the_restart_counted() {
    let sb = Sandbox::new();
    sb.write_config(&sb.embedded_config(LIVEKIT, ""));
    let mut b = sb.start(&[]);
    b.wait_ready();
    let first = b.livekit_pid();
    let first_file = sb.generated_files();

    nix::sys::signal::kill(nix::unistd::Pid::from_raw(first as i32), Signal::SIGKILL).unwrap();

    let body = b.wait_for("a new LiveKit to be ready", |b| match b.ready() {
        Some((200, body)) if body["livekit"]["pid"].as_u64() != Some(first.into()) => Some(body),
        _ => None,
    });
    assert_eq!(body["livekit"]["restarts"], 1);
    let err = body["livekit"]["lastError"].as_str().unwrap();
    assert!(err.contains("signal: 9"), "{err}");
    let files = sb.generated_files();
    assert_eq!(files.len(), 1, "{files:?}");
    assert_ne!(
        files, first_file,
        "a fresh config file per start; the old one is removed"
    );
}

#[test]
fn failing_livekit_backs_off_reports_its_error_and_bedrud_stays_up() {
    let sb = Sandbox::new();
    // The classic mistake from old guides: a top-level `tls:` block, which LiveKit rejects.
    let static_cfg = sb.path().join("livekit.yaml");
    let lk_port = sb.ports.livekit;
    std::fs::write(
        &static_cfg,
        format!("port: {lk_port}\nkeys:\n  APItest: {SECRET}\ntls:\n  cert: x\n"),
    )
    .unwrap();
    sb.write_config(&sb.embedded_config(
        LIVEKIT,
        &format!("  configPath: {}\n", static_cfg.display()),
    ));
    let mut b = sb.start(&[]);

    let body = b.wait_for("three failed starts", |b| match b.ready() {
        Some((503, body)) if body["livekit"]["restarts"].as_u64() >= Some(3) => Some(body),
        _ => None,
    });
    let error = body["error"].as_str().unwrap();
    assert!(error.contains("field tls not found"), "{error}");
    assert!(error.contains("LiveKit is restarting"), "{error}");
    assert_eq!(
        get_status(&b.url("/health")),
        Some(200),
        "bedrud itself must stay up"
    );
    // The delays double: 100ms, 200ms, 400ms… (restartDelay 100ms in the sandbox config).
    let delays: Vec<String> = b
        .logs()
        .lines()
        .filter(|l| l.contains("LiveKit failed"))
        .filter_map(|l| {
            l.split("retry_in=")
                .nth(1)?
                .split_whitespace()
                .next()
                .map(String::from)
        })
        .collect();
    assert!(delays.len() >= 3, "{delays:?}");
    assert_eq!(
        &delays[..3],
        ["100ms", "200ms", "400ms"],
        "log:\n{}",
        b.logs()
    );
    assert!(
        sb.generated_files().is_empty(),
        "a static config must not produce generated files"
    );
    let status = b.terminate();
    assert!(status.success());
}

#[test]
fn kill_9_of_bedrud_takes_livekit_along_and_the_next_start_cleans_up() {
    let sb = Sandbox::new();
    sb.write_config(&sb.embedded_config(LIVEKIT, ""));
    let mut b = sb.start(&[]);
    b.wait_ready();
    let lk = b.livekit_pid();
    let stale = sb.generated_files();
    assert_eq!(stale.len(), 1);

    b.signal(Signal::SIGKILL);
    b.wait_exit();
    wait_gone(lk, "LiveKit after kill -9 of bedrud");
    assert!(
        stale[0].exists(),
        "kill -9 leaves the file; the next start must remove it"
    );

    let mut again = sb.start(&[]);
    again.wait_ready();
    assert!(!stale[0].exists(), "stale config survived the restart");
    assert_eq!(
        sb.generated_files().len(),
        1,
        "only the new instance's file"
    );
    assert!(again
        .logs()
        .contains("removed a LiveKit config left by a bedrud that died"));
    assert!(again.terminate().success());
}

#[test]
fn a_port_in_use_is_reported_by_number_and_key_until_it_is_freed() {
    let sb = Sandbox::new();
    sb.write_config(&sb.embedded_config(LIVEKIT, ""));
    let squatter = std::net::TcpListener::bind(("0.0.0.0", sb.ports.livekit)).unwrap();
    let mut b = sb.start(&[]);

    let body = b.wait_for("the port clash to be reported", |b| match b.ready() {
        Some((503, body)) if body["livekit"]["restarts"].as_u64() >= Some(1) => Some(body),
        _ => None,
    });
    let error = body["error"].as_str().unwrap();
    let expected = format!(
        "port {} (tcp, livekit.port) is already in use",
        sb.ports.livekit
    );
    assert!(error.contains(&expected), "{error}");

    drop(squatter);
    let body = b.wait_ready();
    assert_eq!(body["livekit"]["state"], "ready");
}

#[test]
fn a_static_config_path_is_run_unchanged() {
    let sb = Sandbox::new();
    let p = sb.ports;
    let static_cfg = sb.path().join("my-livekit.yaml");
    std::fs::write(&static_cfg, livekit_yaml(&p, "APIstatic")).unwrap();
    let before = std::fs::read(&static_cfg).unwrap();
    sb.write_config(&sb.embedded_config(LIVEKIT, ""));
    // LIVEKIT_CONFIG_PATH means the same as livekit.configPath.
    let mut b = sb.start(&[("LIVEKIT_CONFIG_PATH", static_cfg.to_str().unwrap())]);
    let body = b.wait_ready();

    assert_eq!(body["livekit"]["configFile"], static_cfg.to_str().unwrap());
    let pid = b.livekit_pid();
    let cmdline = String::from_utf8_lossy(&std::fs::read(format!("/proc/{pid}/cmdline")).unwrap())
        .into_owned();
    assert!(cmdline.contains(static_cfg.to_str().unwrap()), "{cmdline}");
    assert!(sb.generated_files().is_empty());
    assert!(b.terminate().success());
    assert_eq!(
        std::fs::read(&static_cfg).unwrap(),
        before,
        "the static file must be left as it was"
    );
}

#[test]
fn a_missing_or_unusable_binary_is_a_clear_startup_error() {
    let sb = Sandbox::new();
    let missing = sb.path().join("nowhere/livekit-server");
    let text = sb.embedded_config(LIVEKIT, "").replace(
        &format!("binaryPath: {}", livekit_bin(LIVEKIT).display()),
        &format!("binaryPath: {}", missing.display()),
    );
    sb.write_config(&text);
    let mut b = sb.start(&[]);
    let status = b.wait_exit();
    assert!(!status.success());
    let log = b.logs();
    assert!(
        log.contains(&format!(
            "livekit.binaryPath {} does not exist",
            missing.display()
        )),
        "{log}"
    );

    let not_exec = sb.path().join("livekit-server");
    std::fs::write(&not_exec, "#!/bin/sh\n").unwrap();
    sb.write_config(&text.replace(missing.to_str().unwrap(), not_exec.to_str().unwrap()));
    let mut b = sb.start(&[]);
    assert!(!b.wait_exit().success());
    assert!(
        b.logs().contains("is not executable (mode 644)"),
        "{}",
        b.logs()
    );
}

#[test]
fn no_config_file_means_loopback_development_defaults() {
    // The README's first command: no config file, loopback only, keys generated in ./bedrud-data.
    let sb = Sandbox::new();
    let bin_dir = livekit_bin(LIVEKIT).parent().unwrap().to_path_buf();
    let path = format!("{}:/usr/bin:/bin", bin_dir.display());
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_bedrud"));
    cmd.arg("livekit")
        .arg("config")
        .current_dir(sb.path())
        .env_clear()
        .env("PATH", &path);
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.contains("node_ip: 127.0.0.1"), "{printed}");
    assert!(printed.contains("port: 7880"), "{printed}");
    assert!(
        printed.contains(&format!("generated for livekit-server {LIVEKIT}")),
        "{printed}"
    );
    assert!(
        !sb.path().join("bedrud-data").exists(),
        "a read-only command must not create keys"
    );
}

/// Reads a YAML file as a generic value.
fn yaml(p: &std::path::Path) -> yaml_serde::Value {
    yaml_serde::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

#[test]
fn embedded_mode_needs_no_system_ca_certificates() {
    // A minimal host may have no CA store at all (Debian without ca-certificates). Embedded
    // mode only talks plain HTTP to its own LiveKit on loopback, so it must still start.
    let sb = Sandbox::new();
    sb.write_config(&sb.embedded_config(LIVEKIT, ""));
    let empty = sb.path().join("no-ca-certificates");
    std::fs::create_dir(&empty).unwrap();
    let missing = sb.path().join("no-ca-bundle.pem");
    let mut b = sb.start(&[
        ("SSL_CERT_FILE", missing.to_str().unwrap()),
        ("SSL_CERT_DIR", empty.to_str().unwrap()),
    ]);
    b.wait_ready();
    let status = b.terminate();
    assert!(status.success(), "{status}; log:\n{}", b.logs());
}

#[test]
fn a_failure_while_building_starts_no_livekit() {
    let sb = Sandbox::new();
    sb.write_config(&sb.embedded_config(LIVEKIT, ""));
    // A token-signing secret bedrud refuses: found while building, before LiveKit starts.
    std::fs::create_dir_all(sb.path().join("data")).unwrap();
    std::fs::write(sb.path().join("data/jwt-secret"), "short").unwrap();
    let mut b = sb.start(&[]);
    let status = b.wait_exit();
    assert!(!status.success());
    let logs = b.logs();
    assert!(
        logs.contains("auth.jwtSecret") && logs.contains("jwt-secret"),
        "{logs}"
    );
    assert!(!logs.contains("LiveKit started"), "{logs}");
    assert!(sb.generated_files().is_empty());
}
