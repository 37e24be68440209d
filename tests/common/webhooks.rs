//! LiveKit's side of webhooks, for tests and benchmarks: events signed the way LiveKit signs
//! them, and a minimal HTTP/1.1 keep-alive client that posts them fast (the load generator must
//! cost less than the server) and says which were acknowledged.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine;
use serde_json::json;
use sha2::{Digest, Sha256};

/// Signs a webhook body the way LiveKit does: a JWT with the body's SHA-256, no "Bearer ".
pub fn sign(body: &[u8], secret: &str) -> String {
    let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(body));
    livekit_api::access_token::AccessToken::with_api_key("APItest", secret)
        .with_sha256(&hash)
        .with_ttl(Duration::from_secs(600))
        .to_jwt()
        .unwrap()
}

/// A signed `participant_joined` (or `participant_left`) event body for `identity` in `room`.
pub fn participant_event(event: &str, id: &str, room: &str, identity: &str) -> Vec<u8> {
    json!({
        "event": event, "id": id, "room": {"sid": "RM_b", "name": room},
        "participant": {"sid": format!("PA_{identity}"), "identity": identity, "name": identity, "state": "ACTIVE", "joinedAt": "1700000001"}
    })
    .to_string()
    .into_bytes()
}

/// One signed event ready to post: its body and its Authorization header.
pub struct Signed {
    pub body: Vec<u8>,
    pub jwt: String,
}

impl Signed {
    pub fn new(body: Vec<u8>, secret: &str) -> Signed {
        let jwt = sign(&body, secret);
        Signed { body, jwt }
    }
}

/// Posts `events[i]` for each `i` taken from `next` over one keep-alive connection, until the
/// list is done or the connection fails (bedrud died); returns the indexes answered 200.
/// `acked` counts them across connections as they come.
pub fn post_all(
    port: u16,
    events: &[Signed],
    next: &AtomicUsize,
    acked: &AtomicUsize,
) -> Vec<usize> {
    let mut ok = Vec::new();
    let Ok(stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return ok;
    };
    stream.set_nodelay(true).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let Some(e) = events.get(i) else {
            return ok;
        };
        // Head and body in one write, as an HTTP client with a buffered writer sends a small
        // request (LiveKit's Go client does): one segment, one wake-up of the server.
        let mut request = format!(
            "POST /api/livekit/webhook HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {}\r\nContent-Type: application/webhook+json\r\nContent-Length: {}\r\n\r\n",
            e.jwt,
            e.body.len()
        )
        .into_bytes();
        request.extend_from_slice(&e.body);
        if writer.write_all(&request).is_err() {
            return ok;
        }
        let Some((status, len)) = read_head(&mut reader) else {
            return ok;
        };
        let mut answer = vec![0; len];
        if reader.read_exact(&mut answer).is_err() {
            return ok;
        }
        if status == 200 {
            ok.push(i);
            acked.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The status and Content-Length of a response; `None` when the connection ended first.
fn read_head(r: &mut impl BufRead) -> Option<(u16, usize)> {
    let mut line = String::new();
    if r.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let status = line.split_whitespace().nth(1)?.parse().ok()?;
    let mut len = 0;
    loop {
        line.clear();
        if r.read_line(&mut line).ok()? == 0 {
            return None;
        }
        if line == "\r\n" {
            return Some((status, len));
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().ok()?;
        }
    }
}
