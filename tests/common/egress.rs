//! The LiveKit Egress worker as the tests that run it themselves configure it (tests/egress,
//! tests/recording), and waiting for an egress to reach a status through `ListEgress`
//! (tests/egress, tests/recording_worker).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use livekit_api::services::egress::{EgressClient, EgressListFilter, EgressListOptions};
use livekit_protocol as proto;

use super::{free_port, PATIENCE, SECRET};

/// Writes `<dir>/egress.yaml`: the worker for LiveKit on `livekit_port` (key `APItest`) and
/// the Redis on `redis_port` with `password`, logging at `log_level`, with its own health and
/// template ports. Returns the file's path.
pub fn write_worker_config(
    dir: &Path,
    livekit_port: u16,
    redis_port: u16,
    password: &str,
    log_level: &str,
) -> PathBuf {
    // Egress' resource guard counts whole CPUs (a room composite asks for 4 by default); the
    // costs are lowered so that a 2-core test machine accepts every request.
    let costs = [
        "room_composite_cpu_cost",
        "audio_room_composite_cpu_cost",
        "web_cpu_cost",
        "audio_web_cpu_cost",
        "participant_cpu_cost",
        "track_composite_cpu_cost",
        "track_cpu_cost",
    ]
    .map(|k| format!("  {k}: 0.1\n"))
    .concat();
    let config = dir.join("egress.yaml");
    std::fs::write(
        &config,
        format!(
            "api_key: APItest\napi_secret: {SECRET}\nws_url: ws://127.0.0.1:{livekit_port}\n\
             redis:\n  address: 127.0.0.1:{redis_port}\n  password: {password}\n\
             health_port: {health}\ntemplate_port: {template}\nlogging:\n  level: {log_level}\n\
             cpu_cost:\n{costs}",
            health = free_port(false),
            template = free_port(false),
        ),
    )
    .unwrap();
    config
}

/// Polls `ListEgress` for `egress_id` (every 50 ms) until `done` accepts its status; returns
/// its info. Fails after [`PATIENCE`] naming `what` it was waiting for, with `log()` (the
/// worker's, or bedrud's).
pub async fn wait_status(
    client: &EgressClient,
    egress_id: &str,
    what: &str,
    done: impl Fn(proto::EgressStatus) -> bool,
    log: impl Fn() -> String,
) -> proto::EgressInfo {
    let start = Instant::now();
    loop {
        let opts = EgressListOptions {
            filter: EgressListFilter::Egress(egress_id.to_string()),
            active: false,
            page_token: None,
        };
        let info = client.list_egress(opts).await.unwrap().into_iter().next();
        if let Some(info) = &info {
            if done(info.status()) {
                return info.clone();
            }
        }
        assert!(
            start.elapsed() < PATIENCE,
            "egress {egress_id} not {what} after {PATIENCE:?}: {info:?}\n{}",
            log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
