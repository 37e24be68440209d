//! The LiveKit URL a join hands to the client. Configured (`livekit.host`, or `server.host`) it
//! is fixed; left unset, it follows the host name the client used to reach bedrud.
//! That is what makes a fresh package install work from any machine that can reach the server.
//! In embedded mode the URL points at bedrud's own listener (`ws(s)://<host>/livekit`, see
//! `http::livekit_proxy`): one origin for the browser, and `wss://` with bedrud's certificate.

/// Where clients are told to connect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientUrl {
    /// `livekit.host`, or `ws://<server.host>:<port>`.
    Fixed(String),
    /// `ws://<the host in the request's Host header>:<port>`; 127.0.0.1 without one.
    SameHostAsRequest { port: u16 },
    /// `ws(s)://<the request's Host header, port included>/livekit`: bedrud's own listener,
    /// which proxies LiveKit's signaling. `fallback_port` is bedrud's port, for a request
    /// without a usable Host header.
    Proxied { tls: bool, fallback_port: u16 },
}

impl ClientUrl {
    pub fn new(livekit_host: Option<&str>, server_host: &str, livekit_port: u16) -> ClientUrl {
        match (livekit_host, server_host) {
            (Some(url), _) => ClientUrl::Fixed(url.to_string()),
            (None, "") => ClientUrl::SameHostAsRequest { port: livekit_port },
            (None, host) => ClientUrl::Fixed(format!("ws://{}:{livekit_port}", bracketed(host))),
        }
    }

    /// Embedded mode: LiveKit's signaling goes through bedrud's listener (`api_port`, TLS when
    /// `server.enableTLS`) unless `livekit.host` says otherwise.
    pub fn proxied(
        livekit_host: Option<&str>,
        server_host: &str,
        api_port: u16,
        tls: bool,
    ) -> ClientUrl {
        let scheme = if tls { "wss" } else { "ws" };
        let default_port = if tls { 443 } else { 80 };
        match (livekit_host, server_host) {
            (Some(url), _) => ClientUrl::Fixed(url.to_string()),
            (None, "") => ClientUrl::Proxied {
                tls,
                fallback_port: api_port,
            },
            (None, host) if api_port == default_port => {
                ClientUrl::Fixed(format!("{scheme}://{}/livekit", bracketed(host)))
            }
            (None, host) => {
                ClientUrl::Fixed(format!("{scheme}://{}:{api_port}/livekit", bracketed(host)))
            }
        }
    }

    /// The URL for a request whose `Host` header is `host_header`.
    pub fn for_request(&self, host_header: Option<&str>) -> String {
        match self {
            ClientUrl::Fixed(url) => url.clone(),
            ClientUrl::SameHostAsRequest { port } => {
                let host = host_header.and_then(host_name).unwrap_or("127.0.0.1");
                format!("ws://{}:{port}", bracketed(host))
            }
            ClientUrl::Proxied { tls, fallback_port } => {
                let scheme = if *tls { "wss" } else { "ws" };
                match host_header.filter(|h| host_name(h).is_some() && port_ok(h)) {
                    Some(h) => format!("{scheme}://{h}/livekit"),
                    None => format!("{scheme}://127.0.0.1:{fallback_port}/livekit"),
                }
            }
        }
    }

    /// For the admin status: the URL, or its pattern.
    pub fn describe(&self) -> String {
        match self {
            ClientUrl::Fixed(url) => url.clone(),
            ClientUrl::SameHostAsRequest { port } => {
                format!("ws://<host the client used>:{port}")
            }
            ClientUrl::Proxied { tls, .. } => {
                let scheme = if *tls { "wss" } else { "ws" };
                format!("{scheme}://<host the client used>/livekit")
            }
        }
    }
}

/// The host part of a `Host` header (`name`, `name:port`, `[v6]:port`), if it is a plain DNS
/// name or IP address; anything else is ignored rather than echoed into a URL.
fn host_name(header: &str) -> Option<&str> {
    let host = match header.strip_prefix('[') {
        Some(rest) => rest.split_once(']')?.0,
        None => header.rsplit_once(':').map_or(header, |(h, _)| h),
    };
    let plain = !host.is_empty()
        && host.len() <= 253
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':'));
    plain.then_some(host)
}

/// The port of a `Host` header, if any, is all digits (it is echoed whole into the URL).
fn port_ok(header: &str) -> bool {
    let after_host = match header.strip_prefix('[') {
        Some(rest) => rest.split_once(']').map_or("", |(_, tail)| tail),
        None => header.rsplit_once(':').map_or("", |(_, p)| p),
    };
    let port = after_host.strip_prefix(':').unwrap_or(after_host);
    port.chars().all(|c| c.is_ascii_digit())
}

fn bracketed(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_urls_are_fixed() {
        let u = ClientUrl::new(Some("wss://lk.example.test"), "meet.example.test", 7880);
        assert_eq!(u.for_request(Some("other.test")), "wss://lk.example.test");
        let u = ClientUrl::new(None, "meet.example.test", 7880);
        assert_eq!(
            u.for_request(Some("other.test")),
            "ws://meet.example.test:7880"
        );
    }

    #[test]
    fn unset_follows_the_host_the_client_used() {
        let u = ClientUrl::new(None, "", 7880);
        assert_eq!(u.for_request(Some("meet.test:8090")), "ws://meet.test:7880");
        assert_eq!(u.for_request(Some("10.0.0.5")), "ws://10.0.0.5:7880");
        assert_eq!(u.for_request(Some("[fd00::5]:8090")), "ws://[fd00::5]:7880");
        assert_eq!(u.for_request(None), "ws://127.0.0.1:7880");
    }

    #[test]
    fn embedded_mode_goes_through_bedrud_itself() {
        let u = ClientUrl::proxied(None, "", 8090, false);
        assert_eq!(
            u.for_request(Some("meet.test:8090")),
            "ws://meet.test:8090/livekit"
        );
        assert_eq!(
            u.for_request(Some("[fd00::5]:8090")),
            "ws://[fd00::5]:8090/livekit"
        );
        assert_eq!(u.for_request(None), "ws://127.0.0.1:8090/livekit");
        for bad in ["evil.test/x", "a b", "meet.test:80x", "[fd00::5]x"] {
            assert_eq!(
                u.for_request(Some(bad)),
                "ws://127.0.0.1:8090/livekit",
                "{bad}"
            );
        }
        let u = ClientUrl::proxied(None, "", 443, true);
        assert_eq!(u.for_request(Some("meet.test")), "wss://meet.test/livekit");
        let u = ClientUrl::proxied(None, "meet.example.test", 443, true);
        assert_eq!(
            u.for_request(Some("x.test")),
            "wss://meet.example.test/livekit"
        );
        let u = ClientUrl::proxied(None, "meet.example.test", 8443, true);
        assert_eq!(u.for_request(None), "wss://meet.example.test:8443/livekit");
        let u = ClientUrl::proxied(Some("wss://lk.example.test"), "", 8090, true);
        assert_eq!(u.for_request(Some("x.test")), "wss://lk.example.test");
    }

    #[test]
    fn a_strange_host_header_is_not_echoed() {
        let u = ClientUrl::new(None, "", 7880);
        for bad in ["evil.test/path", "a b", "x@y", ":8090", "[unclosed"] {
            assert_eq!(u.for_request(Some(bad)), "ws://127.0.0.1:7880", "{bad}");
        }
    }
}
