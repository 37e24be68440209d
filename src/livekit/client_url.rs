//! The LiveKit URL a join hands to the client. Configured (`livekit.host`, or `server.host`) it
//! is fixed; left unset, it follows the host name the client used to reach bedrud.
//! That is what makes a fresh package install work from any machine that can reach the server.

/// Where clients are told to connect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientUrl {
    /// `livekit.host`, or `ws://<server.host>:<port>`.
    Fixed(String),
    /// `ws://<the host in the request's Host header>:<port>`; 127.0.0.1 without one.
    SameHostAsRequest { port: u16 },
}

impl ClientUrl {
    pub fn new(livekit_host: Option<&str>, server_host: &str, livekit_port: u16) -> ClientUrl {
        match (livekit_host, server_host) {
            (Some(url), _) => ClientUrl::Fixed(url.to_string()),
            (None, "") => ClientUrl::SameHostAsRequest { port: livekit_port },
            (None, host) => ClientUrl::Fixed(format!("ws://{}:{livekit_port}", bracketed(host))),
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
        }
    }

    /// For the admin status: the URL, or its pattern.
    pub fn describe(&self) -> String {
        match self {
            ClientUrl::Fixed(url) => url.clone(),
            ClientUrl::SameHostAsRequest { port } => {
                format!("ws://<host the client used>:{port}")
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
    fn a_strange_host_header_is_not_echoed() {
        let u = ClientUrl::new(None, "", 7880);
        for bad in ["evil.test/path", "a b", "x@y", ":8090", "[unclosed"] {
            assert_eq!(u.for_request(Some(bad)), "ws://127.0.0.1:7880", "{bad}");
        }
    }
}
