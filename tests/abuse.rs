//! Hostile clients against the real binary with its real embedded LiveKit: stalled and slow
//! connections, too many connections, what anonymous callers learn, oversized and malformed
//! input, NUL characters on both stores, stale admin rights, private data on disk, bans for
//! people who already left. (Bans against a token already in hand, and capacity across LiveKit's
//! own room deletion, need real participants: tests/meeting.rs.)

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

/// Short limits so that each case is over in seconds.
const QUICK_LIMITS: &str = "  headerTimeout: 1s\n  bodyTimeout: 1s\n";

fn start(server_extra: &str, rest: &str) -> (Bedrud, Sandbox) {
    let sb = Sandbox::new();
    let config = sb.embedded_config(LIVEKIT, "").replacen(
        "server:\n",
        &format!("server:\n{server_extra}"),
        1,
    );
    sb.write_config(&(config + rest));
    let mut b = sb.start(&[]);
    b.wait_ready();
    (b, sb)
}

fn connect(b: &Bedrud) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", b.api_port)).unwrap();
    // A liveness bound for the reads below, far above the limits under test.
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    s
}

/// Reads until the server closes the connection; returns what it sent and how long that took.
fn read_until_closed(s: &mut TcpStream) -> (String, Duration) {
    let start = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("the server kept the connection open ({e}) after {got:?}"),
        }
    }
    (String::from_utf8_lossy(&got).into_owned(), start.elapsed())
}

#[test]
fn stalled_and_idle_connections_are_closed_while_health_answers() {
    let (b, _sb) = start(QUICK_LIMITS, "");

    // Half a header, then nothing.
    let mut half_header = connect(&b);
    half_header
        .write_all(b"GET /health HTTP/1.1\r\nHost: meet.example.test\r\n")
        .unwrap();
    // Nothing at all (a TLS-less "handshake" that never starts).
    let mut silent = connect(&b);
    // A header that promises 100 bytes of body, and 10 of them.
    let mut half_body = connect(&b);
    half_body
        .write_all(
            b"POST /api/auth/login HTTP/1.1\r\nHost: meet.example.test\r\n\
              Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"email\":",
        )
        .unwrap();
    // One complete request, then an idle keep-alive connection.
    let mut idle = connect(&b);
    idle.write_all(b"GET /health HTTP/1.1\r\nHost: meet.example.test\r\n\r\n")
        .unwrap();

    // Meanwhile everyone else is served.
    assert_eq!(get_status(&b.url("/health")), Some(200));

    let (sent, _) = read_until_closed(&mut half_header);
    assert!(
        !sent.contains("200 OK"),
        "a half header got an answer: {sent}"
    );
    let (sent, _) = read_until_closed(&mut silent);
    assert!(sent.is_empty(), "{sent}");
    let (sent, _) = read_until_closed(&mut half_body);
    assert!(
        sent.starts_with("HTTP/1.1 408"),
        "a stalled body is answered 408: {sent}"
    );
    assert!(sent.contains(r#"{"error":"#), "as JSON: {sent}");
    let (sent, _) = read_until_closed(&mut idle);
    assert!(sent.starts_with("HTTP/1.1 200"), "{sent}");
    assert_eq!(get_status(&b.url("/health")), Some(200));
}

#[test]
fn connections_past_the_limit_are_closed_and_logged() {
    let (mut b, _sb) = start("  maxConnections: 3\n  headerTimeout: 30s\n", "");
    // Three keep-alive connections, each served once (so each surely holds its slot), take
    // every slot. The harness's own connections close just before; until the server has seen
    // them go, a new one may be refused, so each is tried again after a moment.
    let held: Vec<TcpStream> = (0..3)
        .map(|_| {
            for _ in 0..100 {
                let mut s = connect(&b);
                s.write_all(b"GET /health HTTP/1.1\r\nHost: a.test\r\n\r\n")
                    .unwrap();
                let mut buf = [0u8; 512];
                if let Ok(n @ 1..) = s.read(&mut buf) {
                    assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{:?}", &buf[..n]);
                    return s;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            panic!("no connection slot ever came free; log:\n{}", b.logs());
        })
        .collect();
    let mut extra = connect(&b);
    let _ = extra.write_all(b"GET /health HTTP/1.1\r\nHost: a.test\r\n\r\n");
    let (sent, _) = read_until_closed(&mut extra);
    assert!(
        sent.is_empty(),
        "a connection past the limit was served: {sent}"
    );
    b.wait_for("the log to say why", |b| {
        b.logs().contains("connection limit reached").then_some(())
    });
    drop(held);
    let mut served = None;
    for _ in 0..100 {
        served = get_status(&b.url("/health"));
        if served == Some(200) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(served, Some(200), "slots come back when connections close");
}

#[test]
fn anonymous_ready_tells_the_verdict_and_nothing_about_the_host() {
    let (b, sb) = ready_bedrud("");
    let (st, body) = b.ready_anonymous().unwrap();
    assert_eq!(st, 200);
    assert_eq!(body, json!({"status": "ready"}));
    let text = body.to_string();
    for secret in ["127.0.0.1", "1.13.5", &sb.path().display().to_string()] {
        assert!(!text.contains(secret), "{text}");
    }
    // Admins see the details.
    let (_, admin) = b.ready().unwrap();
    assert_eq!(admin["livekit"]["version"], "1.13.5");
    assert!(admin["livekit"]["pid"].as_u64().is_some(), "{admin}");
}

#[test]
fn anonymous_ready_while_livekit_is_down_gives_one_line() {
    let (mut b, _sb) = ready_bedrud("");
    let lk = b.livekit_pid();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(lk as i32),
        nix::sys::signal::Signal::SIGSTOP,
    )
    .unwrap();
    let body = b.wait_for("/ready to turn 503", |b| match b.ready_anonymous() {
        Some((503, body)) => Some(body),
        _ => None,
    });
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(lk as i32),
        nix::sys::signal::Signal::SIGCONT,
    );
    let mut keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(keys, ["error", "status"], "{body}");
    let reason = body["error"].as_str().unwrap();
    assert!(reason.starts_with("LiveKit "), "{reason}");
    assert!(!reason.contains(':') && !reason.contains('\n'), "{reason}");
}

#[test]
fn every_error_is_json_with_the_documented_status() {
    let (b, _sb) = ready_bedrud("");
    let (owner, _, _) = b.register("owner@example.test");
    // Oversized JSON: 413, as the README says, not 400; refused from its length, unread.
    let (st, answer) = post_expecting_continue(
        b.api_port,
        "/api/room/create",
        &format!("Bearer {owner}"),
        3 * 1024 * 1024,
    );
    assert_eq!(st, 413, "{answer}");
    assert!(answer.contains(r#"{"error":"#), "{answer}");
    // Without a length (chunked), reading stops at the limit.
    let big = format!(r#"{{"name":"{}"}}"#, "x".repeat(100 * 1024));
    let (st, body) = call_with(
        "POST",
        &b.url("/api/room/create"),
        &[
            ("Authorization", Some(format!("Bearer {owner}"))),
            ("Transfer-Encoding", Some("chunked".into())),
        ],
        Some(big.into_bytes()),
    );
    assert_eq!(st, 413, "{body}");
    assert!(body["error"].is_string(), "{body}");
    // A path segment that does not decode.
    let (st, body) = call("POST", &b.url("/api/room/%ff/close"), Some(&owner), None);
    assert_eq!(st, 400);
    assert!(body["error"].is_string(), "not JSON: {body}");
    let (st, body) = call(
        "POST",
        &b.url("/api/room/r/kick/%ff%fe"),
        Some(&owner),
        None,
    );
    assert_eq!(st, 400);
    assert!(body["error"].is_string(), "not JSON: {body}");
}

#[test]
fn a_private_room_looks_like_no_room_to_anonymous_guests() {
    let (b, _sb) = ready_bedrud("");
    let (owner, _, _) = b.register("owner@example.test");
    let (st, _) = b.call(
        "POST",
        "/api/room/create",
        Some(&owner),
        Some(json!({"name": "board", "isPublic": false, "settings": {"allowGuests": true}})),
    );
    assert_eq!(st, 201);
    let guest = |room: &str| {
        b.call(
            "POST",
            "/api/room/guest-join",
            None,
            Some(json!({"roomName": room, "guestName": "Visitor"})),
        )
    };
    let (st_private, private) = guest("board");
    let (st_missing, missing) = guest("bored");
    assert_eq!((st_private, st_missing), (404, 404));
    assert_eq!(
        private["error"].as_str().unwrap().replace("board", "?"),
        missing["error"].as_str().unwrap().replace("bored", "?")
    );
}

#[test]
fn a_demoted_admin_loses_admin_rights_at_once() {
    let (b, sb) = ready_bedrud("");
    let (alice, _, alice_id) = b.register("alice@example.test");
    let (bob, _, _) = b.register("bob@example.test");
    let (st, _) = b.call(
        "POST",
        "/api/room/create",
        Some(&bob),
        Some(json!({"name": "bobs-room"})),
    );
    assert_eq!(st, 201);
    set_role(&sb, &alice_id, bedrud::store::Role::Admin);
    // A new sign-in carries the admin role.
    let admin = login(&b, "alice@example.test");
    assert_eq!(
        b.call("GET", "/api/admin/livekit", Some(&admin), None).0,
        200
    );

    set_role(&sb, &alice_id, bedrud::store::Role::User);
    // Her token still says "admin" for up to 15 minutes; bedrud asks the store.
    assert_eq!(jwt_claims(&admin)["role"], "admin");
    assert_eq!(
        b.call("GET", "/api/admin/livekit", Some(&admin), None).0,
        403
    );
    assert_eq!(
        b.call("POST", "/api/room/bobs-room/close", Some(&admin), None)
            .0,
        403
    );
    assert_eq!(
        b.call("POST", "/api/room/bobs-room/kick/u_x", Some(&admin), None)
            .0,
        403
    );
    let (st, join) = b.call(
        "POST",
        "/api/room/join",
        Some(&admin),
        Some(json!({"roomName": "bobs-room"})),
    );
    assert_eq!(st, 200);
    assert_eq!(join["role"], "participant", "no moderator grants: {join}");
    assert_eq!(b.ready_as(&admin).1.get("livekit"), None);
    let _ = alice;
}

fn login(b: &Bedrud, email: &str) -> String {
    let (st, r) = b.call(
        "POST",
        "/api/auth/login",
        None,
        Some(json!({"email": email, "password": "correct horse battery"})),
    );
    assert_eq!(st, 200, "{r}");
    r["accessToken"].as_str().unwrap().to_string()
}

fn set_role(sb: &Sandbox, user_id: &str, role: bedrud::store::Role) {
    let url = bedrud::store::default_url(&sb.path().join("data"));
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = bedrud::store::Store::connect(&url).await.unwrap();
        store.set_role(user_id, role).await.unwrap();
        store.close().await;
    });
}

#[test]
fn a_ban_for_someone_who_already_left_is_stored_and_said() {
    let (b, _sb) = ready_bedrud("");
    let (owner, _, _) = b.register("owner@example.test");
    let (bob, _, bob_id) = b.register("bob@example.test");
    b.call(
        "POST",
        "/api/room/create",
        Some(&owner),
        Some(json!({"name": "hall"})),
    );
    let (st, r) = b.call(
        "POST",
        &format!("/api/room/hall/kick/u_{bob_id}"),
        Some(&owner),
        None,
    );
    assert_eq!(st, 200, "{r}");
    assert_eq!(
        (r["banned"].as_bool(), r["wasConnected"].as_bool()),
        (Some(true), Some(false))
    );
    let (st, r) = b.call(
        "POST",
        "/api/room/join",
        Some(&bob),
        Some(json!({"roomName": "hall"})),
    );
    assert_eq!(st, 403, "the ban holds: {r}");
    // Without a ban, kicking someone absent changes nothing and says so.
    let (st, _) = b.call(
        "POST",
        "/api/room/hall/kick/u_nobody?ban=false",
        Some(&owner),
        None,
    );
    assert_eq!(st, 404);
}

#[test]
fn sign_ups_are_limited_per_address() {
    let (b, _sb) = ready_bedrud("auth:\n  registrationsPerMinute: 2\n");
    b.register("one@example.test");
    b.register("two@example.test");
    let body =
        json!({"email": "three@example.test", "password": "correct horse battery", "name": "x"});
    let (st, r) = b.call("POST", "/api/auth/register", None, Some(body));
    assert_eq!(st, 429, "{r}");
    assert!(r["error"].as_str().unwrap().contains("sign-ups"), "{r}");
}

#[test]
fn a_huge_email_is_refused_before_it_reaches_the_limiter() {
    let (b, _sb) = ready_bedrud("");
    // Within the body limit, but no email: refused by validation, never a limiter key.
    let email = format!("{}@example.test", "a".repeat(32 * 1024));
    let (st, r) = b.call(
        "POST",
        "/api/auth/login",
        None,
        Some(json!({"email": email, "password": "whatever password"})),
    );
    assert_eq!(st, 400, "{r}");
    assert!(r["error"].as_str().unwrap().starts_with("email:"), "{r}");
    // A megabyte is refused from its length, before it is read.
    let (st, answer) = post_expecting_continue(b.api_port, "/api/auth/login", "", 1024 * 1024);
    assert_eq!(st, 413, "{answer}");
}

/// NUL characters: PostgreSQL refuses them in text, so they must be refused as input (400) on
/// both stores, never reach the database as a 500.
#[test]
fn nul_characters_are_bad_input_on_sqlite_and_postgresql() {
    for database in [None, Some(fresh_pg_database("abuse"))] {
        let extra = database
            .as_ref()
            .map(|url| format!("database:\n  url: \"{url}\"\n"))
            .unwrap_or_default();
        let (b, _sb) = ready_bedrud(&extra);
        let (owner, _, _) = b.register("owner@example.test");
        b.call(
            "POST",
            "/api/room/create",
            Some(&owner),
            Some(json!({"name": "hall", "settings": {"allowGuests": true}})),
        );
        let cases: Vec<(&str, String, Option<&str>, Value)> = vec![
            (
                "POST",
                "/api/auth/register".into(),
                None,
                json!({"email": "n@example.test", "password": "correct horse battery", "name": "a\u{0}b"}),
            ),
            (
                "POST",
                "/api/auth/login".into(),
                None,
                json!({"email": "owner@example.test", "password": "correct\u{0}horse"}),
            ),
            (
                "POST",
                "/api/room/guest-join".into(),
                None,
                json!({"roomName": "hall", "guestName": "V\u{0}"}),
            ),
            (
                "POST",
                "/api/room/create".into(),
                Some(&owner),
                json!({"name": "x", "settings": {"moderators": ["a\u{0}@example.test"]}}),
            ),
            (
                "POST",
                "/api/room/hall/kick/u_%00".into(),
                Some(&owner),
                Value::Null,
            ),
            (
                "DELETE",
                "/api/room/hall/bans/u_%00x".into(),
                Some(&owner),
                Value::Null,
            ),
        ];
        for (method, path, token, body) in cases {
            let body = (!body.is_null()).then_some(body);
            let (st, r) = b.call(method, &path, token, body);
            assert_eq!(st, 400, "{method} {path} on {database:?}: {r}");
            assert!(r["error"].as_str().unwrap().contains("NUL"), "{r}");
        }
        // The escaped backslash before "u0000" is text, not a NUL.
        let (st, r) = b.call(
            "POST",
            "/api/room/guest-join",
            None,
            Some(json!({"roomName": "hall", "guestName": "back\\u0000slash"})),
        );
        assert_eq!(st, 200, "{r}");
    }
}

/// The data folder and the database are private even when bedrud starts under umask 000.
#[test]
fn the_data_folder_and_database_are_private_whatever_the_umask() {
    let sb = Sandbox::new();
    let config = sb.write_config(&sb.embedded_config(LIVEKIT, ""));
    let script = format!(
        "umask 000; exec {} user create-admin --config {} --email admin@example.test",
        env!("CARGO_BIN_EXE_bedrud"),
        config.display()
    );
    run_with_input(
        Command::new("sh").args(["-c", &script]),
        b"correct horse battery\n",
    );
    let data = sb.path().join("data");
    assert_eq!(mode(&data) & 0o777, 0o700);
    for f in std::fs::read_dir(&data).unwrap().flatten() {
        let m = f.metadata().unwrap().permissions().mode() & 0o777;
        assert_eq!(m, 0o600, "{} is {m:o}", f.path().display());
    }
    assert!(data.join("bedrud.db").exists());
}
