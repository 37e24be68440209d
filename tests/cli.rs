//! The administrator's commands: `config check`, `livekit config`, `livekit token`,
//! `livekit webhook-config`, `secrets init`, `--version`.

mod common;

use std::process::{Command, Output};

use common::*;

fn bedrud(args: &[&str], sb: &Sandbox) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bedrud"))
        .args(args)
        .current_dir(sb.path())
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .output()
        .unwrap()
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn config_check_accepts_a_good_file() {
    let sb = Sandbox::new();
    let cfg = sb.write_config(&sb.embedded_config(LIVEKIT, ""));
    let out = bedrud(&["config", "check", "--config", cfg.to_str().unwrap()], &sb);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("OK (embedded LiveKit)"), "{stdout}");
}

#[test]
fn config_check_lists_every_problem_and_fails() {
    let sb = Sandbox::new();
    let cfg = sb.write_config(
        "server:\n  port: -1\n  colour: blue\nlivekit:\n  external: true\n  embedded: true\n  apiKey: k\n  apiSecret: too-short-secret\n",
    );
    let out = bedrud(&["config", "check", "--config", cfg.to_str().unwrap()], &sb);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    for expected in [
        "server.colour: unknown key",
        "server.port: must be a port number between 0 and 65535",
        "livekit.embedded: contradicts livekit.external",
        "livekit.apiSecret: must be at least 32 characters (it has 16)",
        "livekit.host: is required when livekit.external is true",
        "livekit.internalHost: is required when livekit.external is true",
    ] {
        assert!(
            stderr.contains(expected),
            "missing {expected:?} in:\n{stderr}"
        );
    }
    assert!(stderr.contains("6 problem(s)"), "{stderr}");
    assert!(
        !stderr.contains("too-short-secret"),
        "the secret was echoed:\n{stderr}"
    );
    assert!(
        !stderr.contains("panicked") && !stderr.contains("backtrace"),
        "{stderr}"
    );
}

#[test]
fn a_missing_config_file_is_named() {
    let sb = Sandbox::new();
    let out = bedrud(
        &["config", "check", "--config", "/nonexistent/bedrud.yaml"],
        &sb,
    );
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(
        stderr.contains("/nonexistent/bedrud.yaml") && stderr.contains("does not exist"),
        "{stderr}"
    );
}

#[test]
fn livekit_config_masks_secrets_unless_asked() {
    let sb = Sandbox::new();
    let cfg = sb.write_config(&sb.embedded_config(LIVEKIT, ""));
    let masked = bedrud(
        &["livekit", "config", "--config", cfg.to_str().unwrap()],
        &sb,
    );
    let (stdout, stderr) = text(&masked);
    assert!(masked.status.success(), "{stderr}");
    assert!(!stdout.contains(SECRET), "{stdout}");
    assert!(stdout.contains("APItest: '********'"), "{stdout}");
    assert!(
        stdout.contains(&format!("generated for livekit-server {LIVEKIT}")),
        "{stdout}"
    );
    assert!(stdout.contains("node_ip: 127.0.0.1"), "{stdout}");

    let shown = bedrud(
        &[
            "livekit",
            "config",
            "--show-secrets",
            "--config",
            cfg.to_str().unwrap(),
        ],
        &sb,
    );
    assert!(text(&shown).0.contains(SECRET));
}

#[test]
fn livekit_config_in_external_mode_explains_there_is_none() {
    let sb = Sandbox::new();
    let cfg = sb.write_config(&format!(
        "livekit:\n  external: true\n  host: ws://127.0.0.1:7880\n  internalHost: http://127.0.0.1:7880\n  apiKey: k\n  apiSecret: {SECRET}\n"
    ));
    let out = bedrud(
        &["livekit", "config", "--config", cfg.to_str().unwrap()],
        &sb,
    );
    assert!(!out.status.success());
    assert!(
        text(&out).1.contains("bedrud runs no LiveKit"),
        "{}",
        text(&out).1
    );
}

#[test]
fn version_is_printed() {
    let sb = Sandbox::new();
    let out = bedrud(&["--version"], &sb);
    assert_eq!(
        text(&out).0.trim(),
        format!("bedrud {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn webhook_config_prints_the_block_for_livekits_yaml() {
    let sb = Sandbox::new();
    let cfg = sb.write_config(&format!(
        "server:\n  host: meet.bedrud.test\n  port: 8443\nlivekit:\n  external: true\n  host: wss://lk.bedrud.test\n  internalHost: https://lk.bedrud.test\n  apiKey: APIext\n  apiSecret: {SECRET}\n"
    ));
    let out = bedrud(
        &[
            "livekit",
            "webhook-config",
            "--config",
            cfg.to_str().unwrap(),
        ],
        &sb,
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let block: yaml_serde::Value = yaml_serde::from_str(&stdout).unwrap();
    assert_eq!(block["webhook"]["api_key"].as_str(), Some("APIext"));
    assert_eq!(
        block["webhook"]["urls"][0].as_str(),
        Some("http://meet.bedrud.test:8443/api/livekit/webhook")
    );
    assert!(!stdout.contains(SECRET), "the secret stays out of it");
}

/// Every file and folder under `dir`, with the contents of the files.
fn snapshot(dir: &std::path::Path) -> std::collections::BTreeMap<std::path::PathBuf, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                todo.push(p.clone());
                out.insert(p, Vec::new());
            } else {
                out.insert(p.clone(), std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

#[test]
fn read_only_commands_write_nothing_and_say_what_is_missing() {
    let sb = Sandbox::new();
    // Embedded LiveKit with generated keys: the secrets live in the (not yet created) data folder.
    let yaml = sb
        .embedded_config(LIVEKIT, "")
        .replace("  apiKey: APItest\n", "")
        .replace(&format!("  apiSecret: {SECRET}\n"), "");
    assert!(!yaml.contains(SECRET), "{yaml}");
    let cfg = sb.write_config(&yaml);
    let cfg = cfg.to_str().unwrap();
    let token = [
        "livekit",
        "token",
        "--room",
        "r",
        "--identity",
        "i",
        "--config",
        cfg,
    ];
    let webhook = ["livekit", "webhook-config", "--config", cfg];

    let before = snapshot(sb.path());
    for args in [&token[..], &webhook[..]] {
        let out = bedrud(args, &sb);
        let (_, stderr) = text(&out);
        assert!(!out.status.success(), "{args:?} without keys must fail");
        assert!(
            stderr.contains("livekit.apiKey/apiSecret is not set")
                && stderr.contains("bedrud secrets init"),
            "{args:?}: {stderr}"
        );
    }
    let out = bedrud(&["livekit", "config", "--config", cfg], &sb);
    assert!(out.status.success(), "{}", text(&out).1);
    assert!(
        text(&out).0.contains("<generated at first start"),
        "{}",
        text(&out).0
    );
    let out = bedrud(&["doctor", "--config", cfg], &sb);
    assert!(text(&out).0.contains("no database yet"), "{}", text(&out).0);
    assert_eq!(
        snapshot(sb.path()),
        before,
        "a read-only command changed the folder"
    );

    // Once the host has its secrets, the same commands read them and still write nothing.
    assert!(bedrud(&["secrets", "init", "--config", cfg], &sb)
        .status
        .success());
    let before = snapshot(sb.path());
    assert!(sb.path().join("data/livekit-keys.yaml").is_file());
    let out = bedrud(&token, &sb);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let claims = jwt_claims(stdout.trim());
    assert!(
        claims["iss"].as_str().unwrap().starts_with("API"),
        "{claims}"
    );
    assert!(bedrud(&webhook, &sb).status.success());
    assert_eq!(snapshot(sb.path()), before);
}

#[test]
fn config_check_lists_a_type_error_with_the_other_problems() {
    let sb = Sandbox::new();
    let cfg = sb.write_config(
        "server:\n  port: \"not-a-port\"\nlivekit:\n  apiKey: k\n  apiSecret: too-short-secret\n",
    );
    let out = bedrud(&["config", "check", "--config", cfg.to_str().unwrap()], &sb);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("2 problem(s)"), "{stderr}");
    assert!(
        stderr.contains("server.port: must be a whole number (found string)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("livekit.apiSecret: must be at least 32 characters (it has 16)"),
        "{stderr}"
    );
    assert!(!stderr.contains("too-short-secret"), "{stderr}");
}
