//! The meeting web app in real Chromium against a real bedrud and its embedded LiveKit: sign-up,
//! rooms, a two-person meeting with decoded video both ways, chat, moderation, a guest by link,
//! the admin page, accessibility (axe-core), the same meeting over TLS with LiveKit's
//! signaling proxied through bedrud's own `wss://` origin, and recording (audio only, with the
//! embedded Redis and egress worker) from the meeting page. The browser steps are
//! `web/e2e/meeting.mjs` (playwright-core); this file starts bedrud and checks the run.
//! Chromium gathers no ICE candidates on loopback, so this runs in scripts/netns-run.sh.
//! Screenshots go to target/screenshots/, timings to target/web-figures-*.json.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

const CHROMIUM: &str = "/usr/lib/chromium/chromium";

/// Everything the browser run needs, or a failure that says how to get it (never a skip).
fn requirements() -> PathBuf {
    assert!(
        Path::new(CHROMIUM).is_file(),
        "Chromium is not installed ({CHROMIUM}): apt-get install chromium (scripts/setup.sh does)"
    );
    let node = which("node").expect("Node.js is not installed: apt-get install nodejs npm");
    let web = repo_root().join("web");
    assert!(
        web.join("node_modules/playwright-core").is_dir()
            && web.join("node_modules/axe-core").is_dir(),
        "the web app's npm packages are not installed: run scripts/build-web.sh"
    );
    node
}

fn run_browser(b: &Bedrud, sb: &Sandbox, base: &str, scenario: &str, host_rules: Option<&str>) {
    let node = requirements();
    let target = repo_root().join("target");
    let figures = target.join(format!("web-figures-{scenario}.json"));
    let mut cmd = Command::new(node);
    cmd.arg(repo_root().join("web/e2e/meeting.mjs"))
        .current_dir(repo_root().join("web"))
        .env("BEDRUD_URL", base)
        .env("SCENARIO", scenario)
        .env("CHROMIUM", CHROMIUM)
        .env("SCREENSHOTS", target.join("screenshots"))
        .env("FIGURES", &figures)
        .env("BEDRUD_BIN", env!("CARGO_BIN_EXE_bedrud"))
        .env("BEDRUD_CONFIG", sb.config_path())
        .env("LIVEKIT_VERSION", LIVEKIT)
        // Chromium writes its profile and crash dumps under $HOME and $TMPDIR: the sandbox's.
        .env("HOME", sb.tmp())
        .env("TMPDIR", sb.tmp());
    if let Some(rules) = host_rules {
        cmd.env("HOST_RULES", rules);
    }
    let out = cmd.output().expect("cannot run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "the browser run ({scenario}) failed:\n{stdout}\n{stderr}\nbedrud's log:\n{}",
        b.logs()
    );
    assert!(stdout.contains(&format!("e2e {scenario}: all steps passed")));
}

#[test]
fn people_meet_chat_and_are_moderated_in_the_browser() {
    require_private_network("web");
    // Access tokens live 35 s and the app renews them 30 s before expiry: the run only gets
    // through its API calls if silent refresh (with rotation) works.
    let (b, sb) = ready_bedrud("auth:\n  accessTokenTtl: 35s\n");
    // 127.0.0.1 is a secure context, so camera and microphone work without TLS; the same server
    // as http://meet.bedrud.test is not, and the page must say so.
    run_browser(
        &b,
        &sb,
        &b.url(""),
        "full",
        Some("MAP meet.bedrud.test 127.0.0.1"),
    );
}

#[test]
fn a_moderator_records_the_meeting_and_everyone_sees_it() {
    require_private_network("web");
    assert!(
        which("redis-server").is_some(),
        "redis-server is not installed: apt-get install redis-server (scripts/setup.sh does)"
    );
    let sb = Sandbox::new();
    sb.write_config(&(sb.embedded_config(LIVEKIT, "") + "recording:\n  enabled: true\n"));
    // bedrud finds the egress worker on $PATH, as it finds the packaged /usr/lib/bedrud/egress.
    let path = format!("{}:/usr/local/bin:/usr/bin:/bin", egress_dir().display());
    let mut b = sb.start(&[("PATH", &path)]);
    b.wait_ready();
    // A start before the worker is ready is refused (503); the page would show that, but the
    // scenario is about a recording that works.
    b.wait_for("the egress worker and Redis to be ready", |b| {
        let admin = b.admin_token()?;
        let (_, body) = get_json_as(&b.url("/api/admin/livekit"), Some(&admin))?;
        let r = &body["recording"];
        (r["worker"]["state"] == "ready" && r["redis"]["state"] == "ready").then_some(())
    });
    run_browser(&b, &sb, &b.url(""), "recording", None);
    // Deleted through the page: the file is gone from the recordings folder too.
    let data = sb.path().join("data/recordings");
    let kept: Vec<_> = std::fs::read_dir(&data)
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_file())
        .collect();
    assert!(
        kept.is_empty(),
        "the page deleted the recording, yet {data:?} holds {kept:?}"
    );
}

#[test]
fn the_meeting_works_over_tls_through_bedrud_s_own_origin() {
    require_private_network("web");
    let sb = Sandbox::new();
    let (cert, key) = self_signed(sb.path(), &["meet.bedrud.test"]);
    let text = sb.embedded_config(LIVEKIT, "").replacen(
        "server:\n",
        &format!(
            "server:\n  host: meet.bedrud.test\n  enableTLS: true\n  certFile: {}\n  keyFile: {}\n",
            cert.display(),
            key.display()
        ),
        1,
    );
    sb.write_config(&text);
    let mut b = sb.start_with_tls(&[], true);
    b.wait_ready();
    let base = format!("https://meet.bedrud.test:{}", sb.ports.api);
    run_browser(
        &b,
        &sb,
        &base,
        "tls",
        Some("MAP meet.bedrud.test 127.0.0.1"),
    );
}
