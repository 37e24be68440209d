//! Signaling proxy benchmark: what `/livekit` on bedrud's port adds to LiveKit's signaling,
//! measured side by side against LiveKit's own port on the same running instance.
//!   1. HTTP: `GET /` (LiveKit's health answer), a fresh connection each time.
//!   2. WebSocket join: connect, upgrade `/rtc` with a join token, first frame (join response).
//!   3. WebSocket round trip on an open signaling connection: ping → pong (LiveKit answers).
//!
//! Run: `cargo bench --bench livekit_proxy`. Loopback only; needs no private namespace.

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

const HTTP_RUNS: usize = 500;
const JOIN_RUNS: usize = 40;
const PINGS: usize = 2000;

fn main() {
    let build = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    println!("bedrud ({build} build), livekit-server {LIVEKIT}; median / p99 over the runs");
    let (b, sb) = ready_bedrud("");
    let direct = sb.ports.livekit;
    let proxied = b.api_port;
    let (token, _, _) = b.register("bench@example.test");
    let (st, r) = b.call(
        "POST",
        "/api/room/create",
        Some(&token),
        Some(json!({"name": "bench"})),
    );
    assert_eq!(st, 201, "{r}");
    let join = |_: ()| {
        let (st, j) = b.call(
            "POST",
            "/api/room/join",
            Some(&token),
            Some(json!({"roomName": "bench"})),
        );
        assert_eq!(st, 200, "{j}");
        j["token"].as_str().unwrap().to_string()
    };

    for (what, port, prefix) in [("direct ", direct, ""), ("proxied", proxied, "/livekit")] {
        let http = sample(HTTP_RUNS, || {
            let t = Instant::now();
            let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            write!(
                s,
                "GET {prefix}/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            )
            .unwrap();
            let mut out = Vec::new();
            s.read_to_end(&mut out).unwrap();
            assert!(out.ends_with(b"OK"));
            t.elapsed()
        });
        let jwt = join(());
        let ws_join = sample(JOIN_RUNS, || {
            let t = Instant::now();
            let (_s, _) = open_ws(port, prefix, &jwt);
            t.elapsed()
        });
        let (mut s, _) = open_ws(port, prefix, &jwt);
        let rtt = sample(PINGS, || {
            let t = Instant::now();
            // A masked, empty ping frame; LiveKit's WebSocket library answers with a pong.
            s.write_all(&[0x89, 0x80, 1, 2, 3, 4]).unwrap();
            while read_frame(&mut s) != 0xA {}
            t.elapsed()
        });
        println!(
            "{what}: HTTP GET {}   WebSocket join → first frame {}   ping round trip {}",
            show(&http),
            show(&ws_join),
            show(&rtt)
        );
    }
}

/// Upgrades `/rtc` with the join token and reads LiveKit's first frame.
fn open_ws(port: u16, prefix: &str, jwt: &str) -> (TcpStream, u8) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_nodelay(true).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {prefix}/rtc?access_token={jwt}&protocol=16 HTTP/1.1\r\nHost: x\r\n\
         Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    )
    .unwrap();
    // The response head, byte by byte so that no frame byte is consumed with it.
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    let op = read_frame(&mut s);
    (s, op)
}

/// Reads one server frame (unmasked) and returns its opcode.
fn read_frame(s: &mut TcpStream) -> u8 {
    let mut h = [0u8; 2];
    s.read_exact(&mut h).unwrap();
    let len = match h[1] & 0x7f {
        126 => {
            let mut l = [0u8; 2];
            s.read_exact(&mut l).unwrap();
            u16::from_be_bytes(l) as u64
        }
        127 => {
            let mut l = [0u8; 8];
            s.read_exact(&mut l).unwrap();
            u64::from_be_bytes(l)
        }
        n => n as u64,
    };
    std::io::copy(&mut s.take(len), &mut std::io::sink()).unwrap();
    h[0] & 0x0f
}

fn sample(n: usize, mut f: impl FnMut() -> Duration) -> Vec<Duration> {
    let mut v: Vec<Duration> = (0..n).map(|_| f()).collect();
    v.sort();
    v
}

fn show(v: &[Duration]) -> String {
    let median = v[v.len() / 2];
    let p99 = v[(v.len() * 99 / 100).min(v.len() - 1)];
    format!(
        "{:.0} µs / {:.0} µs",
        median.as_secs_f64() * 1e6,
        p99.as_secs_f64() * 1e6
    )
}
