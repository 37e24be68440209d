//! Which ports embedded LiveKit opens: one pure function of the config, asked by everyone who
//! needs the answer — the generated LiveKit YAML (whether TURN/TLS is on), the supervisor's port
//! claims before each start, `config check` (clashes) and `doctor` (ports already taken).
//!
//! With a static LiveKit config the answer comes from that file instead, with LiveKit's own
//! defaults where the file is silent.

use std::net::IpAddr;

use super::{Embedded, Server, TlsFiles};

/// A port LiveKit will listen on, named by the setting that chose it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortClaim {
    pub port: u16,
    pub udp: bool,
    /// The key that sets it (`livekit.port`, or `rtc.tcp_port` in a static LiveKit config).
    pub key: &'static str,
    pub file: SetIn,
}

/// Which file an administrator edits to move a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetIn {
    /// bedrud's `config.yaml` (LiveKit's config is generated from it).
    Bedrud,
    /// The static LiveKit YAML of `livekit.configPath`.
    StaticLiveKit,
}

impl PortClaim {
    /// Where to change it, for error messages: "livekit.port in config.yaml".
    pub fn setting(&self) -> String {
        match self.file {
            SetIn::Bedrud => format!("{} in config.yaml", self.key),
            SetIn::StaticLiveKit => format!("{} in the static LiveKit config", self.key),
        }
    }
}

/// Whether LiveKit serves TURN over TLS, and why not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TurnTls<'a> {
    /// TURN is off, or the API has no TLS certificate to reuse.
    Off,
    /// TURN/TLS on `livekit.turnTlsPort` for this domain, with the API's certificate.
    On { domain: String, files: &'a TlsFiles },
    /// TLS is on but `server.host` cannot be a TURN/TLS domain: UDP-only TURN, and this is why.
    NoDomain(String),
}

/// The one rule for TURN/TLS: TURN enabled, the API on TLS, and a `server.host` that can be a
/// TLS domain. LiveKit rejects a `tls_port` without a domain, so without one it is never opened.
pub fn turn_tls<'a>(server: &'a Server, e: &Embedded) -> TurnTls<'a> {
    let (true, Some(files)) = (e.turn.enabled, server.tls.as_ref()) else {
        return TurnTls::Off;
    };
    match turn_domain(&server.host) {
        Ok(domain) => TurnTls::On { domain, files },
        Err(why) => TurnTls::NoDomain(why),
    }
}

/// A TURN/TLS domain must be a DNS name with a dot that the certificate can match: not an IP,
/// not `localhost`, not empty. (LiveKit itself only checks the dot, and would accept an IP.)
pub fn turn_domain(host: &str) -> Result<String, String> {
    let h = host.trim().trim_end_matches('.');
    if h.is_empty() {
        return Err("server.host is empty".into());
    }
    if h.parse::<IpAddr>().is_ok() {
        return Err(format!("server.host {h} is an IP address, not a DNS name"));
    }
    let label_ok =
        |l: &str| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if !h.contains('.') || !h.split('.').all(label_ok) {
        return Err(format!("server.host {h} is not a fully qualified DNS name"));
    }
    Ok(h.to_string())
}

/// The ports LiveKit opens with the config bedrud generates (the RTC UDP range is not claimed:
/// LiveKit picks free ports inside it).
pub fn generated(server: &Server, e: &Embedded) -> Vec<PortClaim> {
    let claim = |port, udp, key| PortClaim {
        port,
        udp,
        key,
        file: SetIn::Bedrud,
    };
    let mut claims = vec![
        claim(e.port, false, "livekit.port"),
        claim(e.rtc_tcp_port, false, "livekit.rtcTcpPort"),
    ];
    if e.turn.enabled {
        claims.push(claim(e.turn.udp_port, true, "livekit.turnUdpPort"));
    }
    if let TurnTls::On { .. } = turn_tls(server, e) {
        claims.push(claim(e.turn.tls_port, false, "livekit.turnTlsPort"));
    }
    claims
}

/// LiveKit's HTTP port when its config does not say (`port`).
const LIVEKIT_DEFAULT_PORT: u16 = 7880;

/// LiveKit's HTTP/WebSocket port among its claims (where bedrud probes it and clients connect).
pub fn http_port(claims: &[PortClaim]) -> u16 {
    claims
        .iter()
        .find(|c| matches!(c.key, "livekit.port" | "port"))
        .map_or(LIVEKIT_DEFAULT_PORT, |c| c.port)
}
/// LiveKit's ICE/TCP port when its config does not say (`rtc.tcp_port`).
const LIVEKIT_DEFAULT_RTC_TCP_PORT: u16 = 7881;

/// The ports a static LiveKit YAML asks for, with LiveKit's defaults where it is silent
/// (TURN has no default ports in LiveKit: only the ones written are opened).
pub fn from_static(doc: &yaml_serde::Value) -> Vec<PortClaim> {
    // Absent: LiveKit's default (if it has one). Written as 0: that listener is off.
    let setting = |path: &[&str]| path.iter().try_fold(doc, |v, k| v.get(*k));
    let number = |path: &[&str]| {
        setting(path)
            .and_then(|v| v.as_u64())
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p != 0)
    };
    let or_default = |path: &[&str], default: u16| match setting(path) {
        None => Some(default),
        Some(_) => number(path),
    };
    let claim = |port, udp, key| PortClaim {
        port,
        udp,
        key,
        file: SetIn::StaticLiveKit,
    };
    let mut claims = Vec::new();
    claims.extend(or_default(&["port"], LIVEKIT_DEFAULT_PORT).map(|p| claim(p, false, "port")));
    let tcp = or_default(&["rtc", "tcp_port"], LIVEKIT_DEFAULT_RTC_TCP_PORT);
    claims.extend(tcp.map(|p| claim(p, false, "rtc.tcp_port")));
    claims.extend(number(&["rtc", "udp_port"]).map(|p| claim(p, true, "rtc.udp_port")));
    let turn_on = doc
        .get("turn")
        .and_then(|t| t.get("enabled"))
        .and_then(|v| v.as_bool())
        == Some(true);
    if turn_on {
        claims.extend(number(&["turn", "udp_port"]).map(|p| claim(p, true, "turn.udp_port")));
        claims.extend(number(&["turn", "tls_port"]).map(|p| claim(p, false, "turn.tls_port")));
    }
    claims
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{parse, Env, Source};

    fn embedded(yaml: &str) -> (Server, Embedded) {
        let source = Source::File("/etc/bedrud/config.yaml".into());
        let c = parse(yaml, &source, &Env::default()).unwrap_or_else(|e| panic!("{e}"));
        let e = c.embedded().unwrap().clone();
        (c.server, e)
    }

    fn keys(claims: &[PortClaim]) -> Vec<(&str, u16, bool)> {
        claims.iter().map(|c| (c.key, c.port, c.udp)).collect()
    }

    fn tls_server(host: &str, dir: &std::path::Path) -> String {
        let cert = dir.join("cert.pem");
        std::fs::write(&cert, "not checked here").unwrap();
        let c = cert.display();
        format!("server:\n  host: \"{host}\"\n  enableTLS: true\n  certFile: {c}\n  keyFile: {c}\n")
    }

    #[test]
    fn tls_with_an_ip_host_opens_no_turn_tls_port() {
        let dir = tempfile::tempdir().unwrap();
        let (server, e) = embedded(&tls_server("203.0.113.10", dir.path()));
        assert!(matches!(turn_tls(&server, &e), TurnTls::NoDomain(why) if why.contains("IP")));
        assert_eq!(
            keys(&generated(&server, &e)),
            [
                ("livekit.port", 7880, false),
                ("livekit.rtcTcpPort", 7881, false),
                ("livekit.turnUdpPort", 3478, true),
            ]
        );
    }

    #[test]
    fn tls_with_a_dns_name_opens_turn_tls_and_no_tls_opens_none() {
        let dir = tempfile::tempdir().unwrap();
        let (server, e) = embedded(&tls_server("meet.example.com", dir.path()));
        let claims = generated(&server, &e);
        assert_eq!(
            claims.last().map(|c| (c.key, c.port)),
            Some(("livekit.turnTlsPort", 5349))
        );
        assert_eq!(claims[0].setting(), "livekit.port in config.yaml");
        let (server, e) = embedded("server:\n  host: meet.example.com\n");
        assert_eq!(turn_tls(&server, &e), TurnTls::Off);
        assert!(!generated(&server, &e)
            .iter()
            .any(|c| c.key == "livekit.turnTlsPort"));
        let (server, e) = embedded("livekit:\n  turnEnabled: false\n");
        assert_eq!(generated(&server, &e).len(), 2, "no TURN, no TURN port");
    }

    #[test]
    fn static_ports_follow_the_file_and_livekit_defaults() {
        let doc = |t: &str| yaml_serde::from_str::<yaml_serde::Value>(t).unwrap();
        let full = doc("port: 9000\nrtc:\n  tcp_port: 9001\n  udp_port: 9002\nturn:\n  enabled: true\n  udp_port: 9003\n  tls_port: 9004\n");
        assert_eq!(
            keys(&from_static(&full)),
            [
                ("port", 9000, false),
                ("rtc.tcp_port", 9001, false),
                ("rtc.udp_port", 9002, true),
                ("turn.udp_port", 9003, true),
                ("turn.tls_port", 9004, false),
            ]
        );
        let bare = from_static(&doc("keys:\n  k: v\nturn:\n  udp_port: 3478\n"));
        assert_eq!(
            keys(&bare),
            [("port", 7880, false), ("rtc.tcp_port", 7881, false)],
            "LiveKit's defaults; TURN ports only when TURN is enabled"
        );
        assert_eq!(
            bare[1].setting(),
            "rtc.tcp_port in the static LiveKit config"
        );
    }
}
