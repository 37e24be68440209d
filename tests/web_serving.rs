//! The web app as bedrud serves it (embedded files, cache headers, precompressed variants,
//! client-side routes) and LiveKit's signaling proxied on bedrud's own port, HTTP and WebSocket,
//! plus the admin account endpoints the admin page uses. Raw HTTP over TCP, so every header is
//! seen as sent. The browser itself is tests/web.rs.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::*;
use serde_json::json;

/// One HTTP/1.1 request; returns the status line plus headers (lower-cased names) and the body.
fn raw(port: u16, request: &str) -> (String, Vec<u8>) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut all = Vec::new();
    let _ = s.read_to_end(&mut all);
    let split = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("no header end");
    let head = String::from_utf8_lossy(&all[..split]).to_lowercase();
    (head, all[split + 4..].to_vec())
}

fn get(port: u16, path: &str, extra: &str) -> (String, Vec<u8>) {
    raw(
        port,
        &format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n{extra}\r\n"
        ),
    )
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .map(str::trim)
}

#[test]
fn the_app_is_served_with_cache_headers_and_precompressed_variants() {
    let (b, _sb) = ready_bedrud("");
    let port = b.api_port;

    let (head, body) = get(port, "/", "");
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert_eq!(header(&head, "cache-control"), Some("no-cache"));
    assert_eq!(
        header(&head, "content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(header(&head, "content-encoding"), None);
    let html = String::from_utf8(body).unwrap();
    assert!(html.contains("<div id=\"root\">"), "{html}");
    let script = html
        .split("src=\"/")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("a script in index.html")
        .to_string();
    assert!(script.starts_with("assets/") && script.ends_with(".js"));

    // Hashed files: cached for a year, the smallest variant the client accepts.
    let (plain_head, plain) = get(port, &format!("/{script}"), "");
    assert_eq!(
        header(&plain_head, "cache-control"),
        Some("public, max-age=31536000, immutable")
    );
    let (br_head, br) = get(port, &format!("/{script}"), "Accept-Encoding: gzip, br\r\n");
    assert_eq!(header(&br_head, "content-encoding"), Some("br"));
    assert_eq!(header(&br_head, "vary"), Some("accept-encoding"));
    let (gz_head, gz) = get(port, &format!("/{script}"), "Accept-Encoding: gzip\r\n");
    assert_eq!(header(&gz_head, "content-encoding"), Some("gzip"));
    assert_eq!(&gz[..2], &[0x1f, 0x8b], "a gzip stream");
    assert!(br.len() < gz.len() && gz.len() < plain.len() / 2);
    let (refused, _) = get(
        port,
        &format!("/{script}"),
        "Accept-Encoding: br;q=0, gzip;q=0\r\n",
    );
    assert_eq!(header(&refused, "content-encoding"), None);

    // Client-side routes get the app; API paths and missing assets do not.
    for route in ["/rooms", "/r/standup", "/admin", "/signin"] {
        let (head, body) = get(port, route, "");
        assert!(head.starts_with("http/1.1 200"), "{route}: {head}");
        assert_eq!(String::from_utf8(body).unwrap(), html, "{route}");
    }
    let (head, body) = get(port, "/api/no/such/thing", "");
    assert!(head.starts_with("http/1.1 404"), "{head}");
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&body).unwrap(),
        json!({"error": "no such endpoint"})
    );
    let (head, _) = get(port, "/assets/gone-1234.js", "");
    assert!(head.starts_with("http/1.1 404"), "{head}");
}

#[test]
fn livekit_signaling_is_proxied_on_bedruds_port_websocket_included() {
    let (b, _sb) = ready_bedrud("");
    let port = b.api_port;
    // LiveKit's own health answer ("OK"), through bedrud.
    let (head, body) = get(port, "/livekit/", "");
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert_eq!(body, b"OK");

    let (token, _, _) = b.register("alice@example.test");
    let (st, r) = b.call(
        "POST",
        "/api/room/create",
        Some(&token),
        Some(json!({"name": "proxied"})),
    );
    assert_eq!(st, 201, "{r}");
    let (st, join) = b.call(
        "POST",
        "/api/room/join",
        Some(&token),
        Some(json!({"roomName": "proxied"})),
    );
    assert_eq!(st, 200, "{join}");
    assert_eq!(
        join["livekitHost"],
        format!("ws://127.0.0.1:{port}/livekit")
    );

    // A WebSocket upgrade to LiveKit's /rtc through the proxy: LiveKit accepts the join token
    // and its first message (the join response, a binary frame) arrives through the splice.
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET /livekit/rtc?access_token={}&protocol=16 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
         Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        join["token"].as_str().unwrap()
    )
    .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    // Until the response head and the first two bytes of the first frame are in.
    while got.len() < got_head_len(&got).saturating_add(2) {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    let head_len = got_head_len(&got);
    let head = String::from_utf8_lossy(&got[..head_len]).to_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert_eq!(
        header(&head, "sec-websocket-accept"),
        Some("s3pplmbitxaq9kygzzhzrbk+xoo=")
    );
    assert_eq!(got[head_len] & 0x0f, 0x2, "a binary frame from LiveKit");
}

fn got_head_len(got: &[u8]) -> usize {
    got.windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(usize::MAX, |p| p + 4)
}

#[test]
fn admins_list_accounts_and_make_or_remove_admins() {
    let (b, sb) = ready_bedrud("");
    let (alice, _, alice_id) = b.register("alice@example.test");
    let (bob, _, bob_id) = b.register("bob@example.test");
    let (st, _) = b.call("GET", "/api/admin/users", Some(&alice), None);
    assert_eq!(st, 403, "not an admin yet");

    // The first admin comes from the command line (as on a fresh install).
    let mut cli = std::process::Command::new(env!("CARGO_BIN_EXE_bedrud"))
        .args([
            "user",
            "create-admin",
            "--email",
            "alice@example.test",
            "--config",
        ])
        .arg(sb.config_path())
        .env_clear()
        .env("TMPDIR", sb.tmp())
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    cli.stdin
        .take()
        .unwrap()
        .write_all(b"unused-password\n")
        .unwrap();
    assert!(cli.wait().unwrap().success());
    let (st, login) = b.call(
        "POST",
        "/api/auth/login",
        None,
        Some(json!({"email": "alice@example.test", "password": "correct horse battery"})),
    );
    assert_eq!(st, 200, "{login}");
    let admin = login["accessToken"].as_str().unwrap().to_string();

    let (st, r) = b.call("GET", "/api/admin/users", Some(&admin), None);
    assert_eq!(st, 200, "{r}");
    // The harness has its own admin account too.
    let users = r["users"].as_array().unwrap();
    let by_email = |email: &str| {
        users
            .iter()
            .find(|u| u["email"] == email)
            .unwrap_or_else(|| panic!("{email} not listed: {r}"))
    };
    assert_eq!(by_email("alice@example.test")["role"], "admin");
    assert_eq!(by_email("bob@example.test")["role"], "user");
    assert!(users.iter().all(|u| u.get("passwordHash").is_none()));

    let path = format!("/api/admin/users/{bob_id}/admin");
    let (st, _) = b.call("PUT", &path, Some(&bob), Some(json!({"admin": true})));
    assert_eq!(st, 403, "only admins make admins");
    let (st, r) = b.call("PUT", &path, Some(&admin), Some(json!({"admin": true})));
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["user"]["role"], "admin");
    let (st, r) = b.call("PUT", &path, Some(&admin), Some(json!({"admin": false})));
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["user"]["role"], "user");

    // The last admin stays: nobody could give the role back from the web. Alice first removes
    // the harness's admin (so she is the last one), at once effective for its token.
    let harness_admin = users
        .iter()
        .find(|u| u["role"] == "admin" && u["email"] != "alice@example.test")
        .expect("the harness admin");
    let other = format!(
        "/api/admin/users/{}/admin",
        harness_admin["id"].as_str().unwrap()
    );
    let (st, r) = b.call("PUT", &other, Some(&admin), Some(json!({"admin": false})));
    assert_eq!(st, 200, "{r}");
    let own = format!("/api/admin/users/{alice_id}/admin");
    let (st, r) = b.call("PUT", &own, Some(&admin), Some(json!({"admin": false})));
    assert_eq!(st, 409, "{r}");
    let (st, r) = b.call(
        "PUT",
        "/api/admin/users/nobody/admin",
        Some(&admin),
        Some(json!({"admin": true})),
    );
    assert_eq!(st, 404, "{r}");
    let (st, r) = b.call("PUT", &path, Some(&admin), Some(json!({"admin": "yes"})));
    assert_eq!(st, 400, "{r}");
    let (st, _) = b.call("GET", "/api/admin/users", Some(&alice), None);
    assert_eq!(
        st, 403,
        "the old token still says user: roles change at the next refresh"
    );
}
