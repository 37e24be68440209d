//! API benchmark: join requests per second with latency percentiles (wrk, many users over
//! keep-alive connections), and signed webhook events stored per second.
//! Run: `cargo bench --bench api` (needs `wrk`: apt-get install wrk). Loopback only.

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use common::*;
use serde_json::json;
use sha2::{Digest, Sha256};

const USERS: usize = 200;
const WRK_SECONDS: u32 = 10;
const WEBHOOK_EVENTS: usize = 20_000;
const WEBHOOK_CONNECTIONS: usize = 8;

fn main() {
    let build = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    println!(
        "bedrud {} ({build} build), livekit-server {LIVEKIT}",
        env!("CARGO_PKG_VERSION")
    );
    for db in ["sqlite", "postgres"] {
        if db == "postgres" && std::env::var("BEDRUD_TEST_POSTGRES").is_err() {
            println!("(postgres skipped: set BEDRUD_TEST_POSTGRES, see scripts/postgres.sh)");
            continue;
        }
        run(db);
    }
}

fn run(db: &str) {
    let sb = Sandbox::new();
    let extra = match db {
        "postgres" => format!("database:\n  url: {}\n", fresh_pg_database("bench")),
        _ => String::new(),
    };
    sb.write_config(
        &(sb.embedded_config(LIVEKIT, "")
            + &extra
            + "auth:\n  loginAttemptsPerMinute: 10000\n  registrationsPerMinute: 10000\n"),
    );
    let mut b = sb.start(&[("BEDRUD_LOG", "warn")]);
    b.wait_ready();
    let tokens = users(&b);
    let (st, body) = call(
        "POST",
        &b.url("/api/room/create"),
        Some(&tokens[0]),
        Some(&json!({"name": "bench", "maxParticipants": 1000})),
    );
    assert_eq!(st, 201, "{body}");
    println!("\n## {db}\n");
    joins(&b, &tokens);
    webhooks(&b);
}

/// Registers USERS accounts and returns their access tokens.
fn users(b: &Bedrud) -> Vec<String> {
    (0..USERS)
        .map(|i| {
            let body = json!({"email": format!("u{i}@bench.test"), "password": "bench password", "name": format!("User {i}")});
            let (st, r) = call("POST", &b.url("/api/auth/register"), None, Some(&body));
            assert_eq!(st, 201, "{r}");
            r["accessToken"].as_str().unwrap().to_string()
        })
        .collect()
}

fn joins(b: &Bedrud, tokens: &[String]) {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("join.lua");
    let list = tokens
        .iter()
        .map(|t| format!("\"{t}\""))
        .collect::<Vec<_>>()
        .join(",");
    std::fs::write(
        &script,
        format!(
            "local tokens = {{{list}}}\nlocal i = 0\nrequest = function()\n  i = i % #tokens + 1\n  return wrk.format(\"POST\", \"/api/room/join\", {{[\"Content-Type\"] = \"application/json\", [\"Authorization\"] = \"Bearer \" .. tokens[i]}}, '{{\"roomName\":\"bench\"}}')\nend\n\
             done = function(summary, latency, requests)\n  io.write(string.format(\"non-2xx: %d\\n\", summary.errors.status))\nend\n"
        ),
    )
    .unwrap();
    let out = Command::new("wrk")
        .args([
            "-t2",
            "-c64",
            &format!("-d{WRK_SECONDS}s"),
            "--latency",
            "-s",
        ])
        .arg(&script)
        .arg(b.url(""))
        .output()
        .expect("wrk is not installed: apt-get install wrk");
    let text = String::from_utf8_lossy(&out.stdout);
    println!("join (POST /api/room/join, {USERS} users, 64 keep-alive connections, {WRK_SECONDS} s, wrk):");
    for line in text.lines() {
        let l = line.trim();
        if l.starts_with("Requests/sec")
            || l.starts_with("50%")
            || l.starts_with("99%")
            || l.starts_with("non-2xx")
            || l.contains("requests in")
        {
            println!("    {l}");
        }
    }
}

/// Posts WEBHOOK_EVENTS distinct signed events over keep-alive connections.
fn webhooks(b: &Bedrud) {
    let bodies: Vec<(Vec<u8>, String)> = (0..WEBHOOK_EVENTS)
        .map(|i| {
            let identity = format!("u_{}", i / 2);
            let event = if i % 2 == 0 { "participant_joined" } else { "participant_left" };
            let body = json!({"event": event, "id": format!("EV_{i}"), "room": {"sid": "RM_b", "name": "bench"},
                "participant": {"sid": format!("PA_{}", i / 2), "identity": identity, "state": "ACTIVE", "joinedAt": "1700000001"}})
            .to_string()
            .into_bytes();
            let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&body));
            let jwt = livekit_api::access_token::AccessToken::with_api_key("APItest", SECRET)
                .with_sha256(&hash)
                .with_ttl(Duration::from_secs(600))
                .to_jwt()
                .unwrap();
            (body, jwt)
        })
        .collect();
    let bodies = Arc::new(bodies);
    let next = Arc::new(AtomicUsize::new(0));
    let port = b.api_port;
    let start = Instant::now();
    let workers: Vec<_> = (0..WEBHOOK_CONNECTIONS)
        .map(|_| {
            let (bodies, next) = (bodies.clone(), next.clone());
            std::thread::spawn(move || post_all(port, &bodies, &next))
        })
        .collect();
    let ok: usize = workers.into_iter().map(|w| w.join().unwrap()).sum();
    let took = start.elapsed();
    assert_eq!(ok, WEBHOOK_EVENTS, "every event must be stored");
    println!(
        "webhook ingest ({WEBHOOK_EVENTS} signed events, {WEBHOOK_CONNECTIONS} keep-alive connections): {:.0} events/s stored ({:.2} s)",
        WEBHOOK_EVENTS as f64 / took.as_secs_f64(),
        took.as_secs_f64()
    );
}

/// A minimal HTTP/1.1 keep-alive client: the load generator must cost less than the server.
fn post_all(port: u16, bodies: &[(Vec<u8>, String)], next: &AtomicUsize) -> usize {
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_nodelay(true).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    let mut ok = 0;
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let Some((body, jwt)) = bodies.get(i) else {
            return ok;
        };
        let head = format!(
            "POST /api/livekit/webhook HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {jwt}\r\nContent-Type: application/webhook+json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        writer.write_all(head.as_bytes()).unwrap();
        writer.write_all(body).unwrap();
        let (status, len) = read_head(&mut reader);
        let mut sink = vec![0; len];
        reader.read_exact(&mut sink).unwrap();
        if status == 200 {
            ok += 1;
        }
    }
}

fn read_head(r: &mut impl BufRead) -> (u16, usize) {
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut len = 0;
    loop {
        line.clear();
        r.read_line(&mut line).unwrap();
        if line == "\r\n" {
            return (status, len);
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().unwrap();
        }
    }
}
