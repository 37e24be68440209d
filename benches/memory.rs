//! Memory under hostile load: bedrud's resident memory (RSS, LiveKit not included) before and
//! at its peak during 200 concurrent sign-ups (each an argon2id hash of 19 MiB), and during
//! 10,000 refused sign-ins carrying random 1 MB "emails". Peak is the kernel's VmHWM.
//! Run: `cargo bench --bench memory`. Loopback only.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Instant;

use common::*;
use serde_json::json;

const SIGN_UPS: usize = 200;
const HUGE_LOGINS: usize = 10_000;
const CLIENTS: usize = 8;

fn main() {
    println!(
        "bedrud {} ({} build), livekit-server {LIVEKIT}, {} cores",
        env!("CARGO_PKG_VERSION"),
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    sign_ups();
    huge_logins();
}

fn start() -> (Bedrud, Sandbox) {
    let sb = Sandbox::new();
    sb.write_config(
        &(sb.embedded_config(LIVEKIT, "") + "auth:\n  registrationsPerMinute: 10000\n"),
    );
    let mut b = sb.start(&[("BEDRUD_LOG", "warn")]);
    b.wait_ready();
    (b, sb)
}

/// (VmRSS, VmHWM) of `pid` in MB.
fn memory(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
            .unwrap()
            / 1024.0
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Runs `per_client` calls of `one(i)` on each of `CLIENTS` threads; returns the status counts.
fn load(per_client: usize, one: impl Fn(usize) -> u16 + Sync) -> Vec<(u16, usize)> {
    let counts = std::sync::Mutex::new(std::collections::BTreeMap::<u16, usize>::new());
    std::thread::scope(|s| {
        for c in 0..CLIENTS {
            let (one, counts) = (&one, &counts);
            s.spawn(move || {
                for k in 0..per_client {
                    let st = one(c * per_client + k);
                    *counts.lock().unwrap().entry(st).or_default() += 1;
                }
            });
        }
    });
    counts.into_inner().unwrap().into_iter().collect()
}

fn sign_ups() {
    let (b, _sb) = start();
    let (before, _) = memory(b.pid());
    let t = Instant::now();
    // Every sign-up in flight at once: SIGN_UPS threads, one request each.
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..SIGN_UPS)
            .map(|i| {
                let url = b.url("/api/auth/register");
                s.spawn(move || {
                    let body = json!({"email": format!("u{i}@bench.test"), "password": "bench password", "name": "U"});
                    call("POST", &url, None, Some(&body)).0
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let elapsed = t.elapsed();
    let (after, peak) = memory(b.pid());
    let ok = statuses.iter().filter(|s| **s == 201).count();
    println!(
        "\n{SIGN_UPS} concurrent sign-ups: {ok} created (others: {:?}) in {:.1} s",
        statuses.iter().filter(|s| **s != 201).collect::<Vec<_>>(),
        elapsed.as_secs_f64()
    );
    println!(
        "RSS before {before:.1} MB, peak {peak:.1} MB (growth {:.1} MB), after {after:.1} MB",
        peak - before
    );
}

fn huge_logins() {
    let (b, _sb) = start();
    let (before, _) = memory(b.pid());
    let url = b.url("/api/auth/login");
    let t = Instant::now();
    let counts = load(HUGE_LOGINS / CLIENTS, |i| {
        // A different 1 MB "email" each time, as a key-flooding client would send.
        let local: String = format!("{i:08}").repeat(128 * 1024);
        let body = json!({"email": format!("{local}@x.test"), "password": "whatever password"});
        call("POST", &url, None, Some(&body)).0
    });
    let (after, peak) = memory(b.pid());
    println!(
        "\n{HUGE_LOGINS} sign-ins with 1 MB emails from {CLIENTS} clients in {:.1} s: statuses {counts:?}",
        t.elapsed().as_secs_f64()
    );
    println!(
        "RSS before {before:.1} MB, peak {peak:.1} MB (growth {:.1} MB), after {after:.1} MB",
        peak - before
    );
}
