//! Supervisor benchmark: LiveKit start → ready alone and under bedrud, restart latency after
//! `kill -9`, and bedrud's own memory. Run: `cargo bench --bench supervisor` (figures go to
//! docs/benchmarks.md). Real processes on loopback only.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::*;

const RUNS: usize = 10;

fn main() {
    // `cargo bench` passes --bench; nothing to parse.
    println!("machine: {}", machine());
    println!(
        "livekit-server {LIVEKIT}, bedrud {} (release build), {RUNS} runs each\n",
        env!("CARGO_PKG_VERSION")
    );
    report("livekit-server alone: spawn → GET / 200", &livekit_alone());
    let (start, restart, rss) = under_bedrud();
    report(
        "bedrud serve: spawn → /ready 200 (version probe + LiveKit start)",
        &start,
    );
    report(
        "restart after kill -9 of LiveKit → /ready 200 (restartDelay 10ms)",
        &restart,
    );
    println!("bedrud resident memory (VmRSS) after start and {RUNS} restarts: {rss}");
}

fn report(what: &str, samples: &[Duration]) {
    let mut v = samples.to_vec();
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{what}: median {:.1} ms, min {:.1} ms, max {:.1} ms",
        ms(v[v.len() / 2]),
        ms(v[0]),
        ms(v[v.len() - 1])
    );
}

fn livekit_alone() -> Vec<Duration> {
    (0..RUNS)
        .map(|_| {
            let dir = tempfile::tempdir().unwrap();
            let p = Ports::new();
            let cfg = dir.path().join("lk.yaml");
            std::fs::write(&cfg, livekit_yaml(&p, "APIb")).unwrap();
            let t0 = Instant::now();
            let livekit = LiveKitProcess::start(&cfg);
            let url = format!("http://127.0.0.1:{}/", p.livekit);
            while get_status(&url) != Some(200) {
                assert!(t0.elapsed() < PATIENCE, "livekit-server never answered");
                std::thread::sleep(Duration::from_millis(2));
            }
            let took = t0.elapsed();
            drop(livekit);
            took
        })
        .collect()
}

fn under_bedrud() -> (Vec<Duration>, Vec<Duration>, String) {
    let mut starts = Vec::new();
    let mut restarts = Vec::new();
    let mut rss = String::new();
    for i in 0..RUNS {
        let sb = Sandbox::new();
        // stableAfter 1ms: every restart uses the initial 10ms delay, so this measures the
        // mechanism (detect, clean up, respawn, probe), not the backoff policy.
        let config = sb.embedded_config(LIVEKIT, "  stableAfter: 1ms\n");
        sb.write_config(&config.replace("restartDelay: 100ms", "restartDelay: 10ms"));
        let t0 = Instant::now();
        let mut b = sb.start(&[]);
        poll(&b, |b| matches!(b.ready(), Some((200, _))));
        starts.push(t0.elapsed());
        if i == 0 {
            rss = format!("{} after start", vm_rss(b.pid()));
            for _ in 0..RUNS {
                restarts.push(restart_once(&b));
            }
            rss.push_str(&format!(", {} after {RUNS} restarts", vm_rss(b.pid())));
        }
        b.terminate();
    }
    (starts, restarts, rss)
}

fn restart_once(b: &Bedrud) -> Duration {
    let old = b.livekit_pid();
    let t0 = Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(old as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    poll(
        b,
        |b| matches!(b.ready(), Some((200, body)) if body["livekit"]["pid"].as_u64() != Some(old.into())),
    );
    t0.elapsed()
}

fn poll(b: &Bedrud, done: impl Fn(&Bedrud) -> bool) {
    let t0 = Instant::now();
    while !done(b) {
        assert!(
            t0.elapsed() < PATIENCE,
            "bedrud never got there; log:\n{}",
            b.logs()
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn vm_rss(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:").map(|v| v.trim().to_string()))
        .unwrap_or_default()
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    format!("{cpu}, {cores} cores")
}
