//! What bedrud knows about LiveKit right now, shared by the supervisor, the HTTP API and systemd.
//! One writer (the supervisor or the external probe) updates it; everyone else watches it.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Process spawned (or probe started), not answering yet.
    Starting,
    Ready,
    /// Running but its health check fails.
    Unhealthy,
    /// Exited or failed to start; waiting out the backoff delay before the next start.
    Restarting,
    Stopping,
    Stopped,
    /// External mode: the server does not answer.
    Unreachable,
}

/// The word the status API shows (`ready`, `restarting`, …): serde's name, so the two never
/// differ.
impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let word = serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        f.write_str(&word)
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LiveKitStatus {
    pub mode: Mode,
    pub state: State,
    pub version: Option<String>,
    pub node_ip: Option<String>,
    /// Which node_ip rule decided, in words.
    pub node_ip_rule: Option<String>,
    pub port: Option<u16>,
    pub url: Option<String>,
    pub pid: Option<u32>,
    pub restarts: u64,
    pub last_error: Option<String>,
    /// Milliseconds until the next start attempt while `Restarting`.
    pub next_start_in_ms: Option<u64>,
    pub config_file: Option<String>,
    pub warnings: Vec<String>,
    /// Config keys a reload changed that LiveKit takes only by restarting, which waits until no
    /// meeting is live (or an admin forces it).
    pub pending_restart: Vec<String>,
    /// Why the last reload was refused; cleared by the next one that succeeds.
    pub reload_refused: Option<String>,
    /// Embedded mode with `recording.enabled`: the Redis and egress worker bedrud runs.
    pub recording: Option<crate::egress::RecordingStatus>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Embedded,
    External,
}

impl LiveKitStatus {
    pub fn new(mode: Mode) -> Self {
        LiveKitStatus {
            mode,
            state: State::Starting,
            version: None,
            node_ip: None,
            node_ip_rule: None,
            port: None,
            url: None,
            pid: None,
            restarts: 0,
            last_error: None,
            next_start_in_ms: None,
            config_file: None,
            warnings: Vec::new(),
            pending_restart: Vec::new(),
            reload_refused: None,
            recording: None,
        }
    }

    pub fn is_ready(&self) -> bool {
        self.state == State::Ready
    }

    /// Why LiveKit is not usable, with the last error, for admins, the log and signed-in
    /// callers; `None` when it is ready.
    pub fn not_ready_reason(&self) -> Option<String> {
        let short = self.short_reason()?;
        Some(match (self.state, self.last_error.as_deref()) {
            (State::Restarting, Some(e)) => format!("{short} (restart {}): {e}", self.restarts),
            (State::Restarting, None) => format!("{short} (restart {})", self.restarts),
            (State::Unhealthy | State::Unreachable, Some(e)) => format!("{short}: {e}"),
            _ => short.to_string(),
        })
    }

    /// The verdict alone, which tells an anonymous caller nothing about the host.
    pub fn short_reason(&self) -> Option<&'static str> {
        Some(match self.state {
            State::Ready => return None,
            State::Starting => "LiveKit is starting",
            State::Unhealthy => "LiveKit does not answer its health check",
            State::Restarting => "LiveKit is restarting",
            State::Stopping | State::Stopped => "LiveKit is stopping",
            State::Unreachable => "LiveKit is unreachable",
        })
    }

    /// One line for systemd's `STATUS=`, read by humans in `systemctl status`.
    pub fn summary(&self) -> String {
        let version = self.version.as_deref().unwrap_or("?");
        let mode = match self.mode {
            Mode::Embedded => "embedded",
            Mode::External => "external",
        };
        let place = match (&self.url, self.port) {
            (Some(u), _) => u.clone(),
            (None, Some(p)) => format!("port {p}"),
            (None, None) => "?".into(),
        };
        let node = self
            .node_ip
            .as_deref()
            .map(|ip| format!(", node IP {ip}"))
            .unwrap_or_default();
        let state = match self.not_ready_reason() {
            None => "ready".to_string(),
            Some(r) => first_line(&r, 300),
        };
        let mut line = format!(
            "LiveKit {version} ({mode}, {place}{node}): {state}; restarts: {}",
            self.restarts
        );
        if let Some(pending) = self.pending() {
            line.push_str("; ");
            line.push_str(&pending);
        }
        if let Some(refused) = &self.reload_refused {
            line.push_str("; reload refused, running config kept: ");
            line.push_str(&first_line(refused, 300));
        }
        if let Some(r) = &self.recording {
            line.push_str("; ");
            line.push_str(&r.summary());
        }
        line
    }

    /// "LiveKit restart pending: <keys>" while a reload waits for the meetings to end.
    pub fn pending(&self) -> Option<String> {
        (!self.pending_restart.is_empty()).then(|| {
            format!(
                "LiveKit restart pending: {}",
                self.pending_restart.join(", ")
            )
        })
    }
}

/// systemd shows STATUS= on one line; keep it short and single-line.
fn first_line(s: &str, max: usize) -> String {
    let line = s.lines().next().unwrap_or_default();
    match line.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &line[..i]),
        None => line.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_says_what_an_admin_needs() {
        let mut s = LiveKitStatus::new(Mode::Embedded);
        s.version = Some("1.13.5".into());
        s.port = Some(7880);
        s.node_ip = Some("192.0.2.2".into());
        s.state = State::Ready;
        assert_eq!(
            s.summary(),
            "LiveKit 1.13.5 (embedded, port 7880, node IP 192.0.2.2): ready; restarts: 0"
        );
        s.state = State::Restarting;
        s.restarts = 3;
        s.last_error = Some("port 7880 is already in use\nmore".into());
        let line = s.summary();
        assert!(
            line.contains("restarting (restart 3): port 7880 is already in use"),
            "{line}"
        );
        assert!(!line.contains('\n'));
        s.pending_restart = vec!["livekit.rtcTcpPort".into(), "livekit.nodeIP".into()];
        s.reload_refused = Some("2 problem(s): rooms.joinTokenTtl: not a duration\nmore".into());
        let line = s.summary();
        assert!(
            line.contains("; LiveKit restart pending: livekit.rtcTcpPort, livekit.nodeIP; reload refused, running config kept: 2 problem(s): rooms.joinTokenTtl"),
            "{line}"
        );
        assert!(!line.contains('\n'));
    }
}
