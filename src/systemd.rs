//! Talks to systemd: `READY=1` once LiveKit answers, `STATUS=` lines for `systemctl status`,
//! watchdog pings while bedrud is healthy, and `STOPPING=1` on the way out.

use std::time::Duration;

use sd_notify::NotifyState;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::status::LiveKitStatus;

/// Sends `states` when bedrud runs under systemd (`$NOTIFY_SOCKET`); otherwise does nothing.
pub fn notify(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!("sd_notify failed: {e}");
    }
}

/// Follows the LiveKit status: `READY=1` the first time it is ready, `STATUS=` on every change,
/// and watchdog pings for as long as `healthy()` holds. Returns when `stop` is cancelled.
pub async fn run_notifier(
    mut status: watch::Receiver<LiveKitStatus>,
    healthy: impl Fn() -> bool,
    stop: CancellationToken,
) {
    let mut announced_ready = false;
    let watchdog = sd_notify::watchdog_enabled();
    // Ping at half the interval, as systemd recommends; an unused timer when there is no watchdog.
    let period = watchdog.map_or(Duration::from_secs(3600), |d| d / 2);
    let mut tick = tokio::time::interval(period);
    let mut last_summary = String::new();
    loop {
        let summary = status.borrow_and_update().summary();
        let ready = status.borrow().is_ready();
        if summary != last_summary {
            notify_status(&summary, ready && !announced_ready);
            announced_ready |= ready;
            last_summary = summary;
        }
        tokio::select! {
            changed = status.changed() => if changed.is_err() { break },
            _ = tick.tick() => {
                if watchdog.is_some() && healthy() {
                    notify(&[NotifyState::Watchdog]);
                }
            }
            _ = stop.cancelled() => break,
        }
    }
}

fn notify_status(summary: &str, first_ready: bool) {
    if first_ready {
        notify(&[NotifyState::Ready, NotifyState::Status(summary)]);
    } else {
        notify(&[NotifyState::Status(summary)]);
    }
}

pub fn stopping(reason: &str) {
    notify(&[NotifyState::Stopping, NotifyState::Status(reason)]);
}
