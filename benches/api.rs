//! API benchmark: join requests per second with latency percentiles (wrk, many users over
//! keep-alive connections), and signed webhook events stored per second.
//! Run: `cargo bench --bench api` (needs `wrk`: apt-get install wrk). Loopback only.
//! `BEDRUD_BENCH=webhooks` (or `joins`) runs only that row, e.g. while profiling.

#[path = "../tests/common/mod.rs"]
mod common;

use std::process::Command;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Instant;

use common::webhooks::{participant_event, post_all, Signed};
use common::*;
use serde_json::json;

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
    println!("machine: {}", machine());
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
    println!("\n## {db}\n");
    let only = std::env::var("BEDRUD_BENCH").unwrap_or_default();
    // The webhook row alone needs only the room its events name.
    let tokens = users(&b, if only == "webhooks" { 1 } else { USERS });
    if only != "webhooks" {
        println!("{}", rss(&b, &format!("after {USERS} registrations")));
    }
    let (st, body) = call(
        "POST",
        &b.url("/api/room/create"),
        Some(&tokens[0]),
        Some(&json!({"name": "bench", "maxParticipants": 1000})),
    );
    assert_eq!(st, 201, "{body}");
    if only == "webhooks" {
        webhooks(&b);
        return;
    }
    joins(&b, &tokens);
    if only == "joins" {
        return;
    }
    webhooks(&b);
    println!("{}", rss(&b, "after the whole run"));
}

/// bedrud's resident memory now and its peak (VmRSS, VmHWM; LiveKit not included).
fn rss(b: &Bedrud, when: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{}/status", b.pid())).unwrap();
    let mb = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
            .map_or(f64::NAN, |kb| kb / 1024.0)
    };
    format!(
        "bedrud RSS {when}: {:.1} MB (peak so far {:.1} MB)",
        mb("VmRSS:"),
        mb("VmHWM:")
    )
}

/// CPU model and count, and memory: the figures mean nothing without them.
fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpu
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|m| m.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_default();
    let cores = cpu.lines().filter(|l| l.starts_with("processor")).count();
    let mem = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let total = mem
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .nth(1)
        .unwrap_or("?");
    format!("{model}, {cores} cores, MemTotal {total} kB")
}

/// The 1-minute load average now: others may share the machine.
fn load() -> String {
    let l = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    format!(
        "load average {}",
        l.split_whitespace().next().unwrap_or("?")
    )
}

/// Registers `n` accounts and returns their access tokens.
fn users(b: &Bedrud, n: usize) -> Vec<String> {
    (0..n)
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
    println!("join (POST /api/room/join, {USERS} users, 64 keep-alive connections, {WRK_SECONDS} s, wrk; {} before):", load());
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
    let events: Vec<Signed> = (0..WEBHOOK_EVENTS)
        .map(|i| {
            let identity = format!("u_{}", i / 2);
            let event = if i % 2 == 0 {
                "participant_joined"
            } else {
                "participant_left"
            };
            Signed::new(
                participant_event(event, &format!("EV_{i}"), "bench", &identity),
                SECRET,
            )
        })
        .collect();
    let events = Arc::new(events);
    let (next, acked) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let port = b.api_port;
    let start = Instant::now();
    let workers: Vec<_> = (0..WEBHOOK_CONNECTIONS)
        .map(|_| {
            let (events, next, acked) = (events.clone(), next.clone(), acked.clone());
            std::thread::spawn(move || post_all(port, &events, &next, &acked).len())
        })
        .collect();
    let ok: usize = workers.into_iter().map(|w| w.join().unwrap()).sum();
    let took = start.elapsed();
    assert_eq!(ok, WEBHOOK_EVENTS, "every event must be stored");
    println!(
        "webhook ingest ({WEBHOOK_EVENTS} signed events, {WEBHOOK_CONNECTIONS} keep-alive connections): {:.0} events/s stored ({:.2} s; {} after)",
        WEBHOOK_EVENTS as f64 / took.as_secs_f64(),
        took.as_secs_f64(),
        load()
    );
}
