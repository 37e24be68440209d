//! Talks to systemd: `READY=1` once LiveKit answers, `STATUS=` lines for `systemctl status`,
//! watchdog pings while bedrud is healthy, the reload protocol (`RELOADING=1` with
//! `MONOTONIC_USEC=`, then `READY=1`), and `STOPPING=1` on the way out.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sd_notify::NotifyState;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::livekit::status::LiveKitStatus;

/// Set once `READY=1` went out: a reload must not announce readiness before the start did.
static ANNOUNCED_READY: AtomicBool = AtomicBool::new(false);

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
        ANNOUNCED_READY.store(true, Ordering::SeqCst);
    } else {
        notify(&[NotifyState::Status(summary)]);
    }
}

/// A reload starts: systemd shows the unit as reloading until `reloaded`. It needs the time on
/// CLOCK_MONOTONIC with `RELOADING=1`, or it fails the reload.
pub fn reloading() {
    if !ANNOUNCED_READY.load(Ordering::SeqCst) {
        return;
    }
    let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() as i128 * 1_000_000 + t.tv_nsec() as i128 / 1_000);
    match now {
        Ok(usec) => notify(&[NotifyState::Reloading, NotifyState::MonotonicUsec(usec)]),
        Err(e) => tracing::warn!("cannot read CLOCK_MONOTONIC for RELOADING=1: {e}"),
    }
}

/// A reload is done (applied or refused: bedrud keeps running either way).
pub fn reloaded(summary: &str) {
    if ANNOUNCED_READY.load(Ordering::SeqCst) {
        notify(&[NotifyState::Ready, NotifyState::Status(summary)]);
    }
}

pub fn stopping(reason: &str) {
    notify(&[NotifyState::Stopping, NotifyState::Status(reason)]);
}

/// What to do when binding `port` failed with `err`: ports below 1024 need
/// `CAP_NET_BIND_SERVICE`, which the unit grants only through a drop-in, because most
/// installations use unprivileged ports and should not hold the capability at all.
pub fn low_port_hint(port: u16, err: &std::io::Error) -> Option<String> {
    (port != 0 && port < 1024 && err.kind() == std::io::ErrorKind::PermissionDenied).then(|| {
        format!(
            "port {port} is below 1024 and needs CAP_NET_BIND_SERVICE: run `systemctl edit bedrud`, \
             add the lines of /usr/share/doc/bedrud/examples/low-port.conf, then restart bedrud"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_refused_low_port_gets_the_capability_hint() {
        let denied = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        let in_use = std::io::Error::from(std::io::ErrorKind::AddrInUse);
        let hint = low_port_hint(443, &denied).unwrap();
        assert!(hint.contains("CAP_NET_BIND_SERVICE") && hint.contains("systemctl edit bedrud"));
        assert_eq!(low_port_hint(443, &in_use), None);
        assert_eq!(low_port_hint(8090, &denied), None);
    }
}
