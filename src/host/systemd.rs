//! Talks to systemd: `READY=1` once LiveKit answers, `STATUS=` lines for `systemctl status`,
//! watchdog pings while bedrud is healthy, and `STOPPING=1` on the way out.

use std::time::Duration;

use sd_notify::NotifyState;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::livekit::status::LiveKitStatus;

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
