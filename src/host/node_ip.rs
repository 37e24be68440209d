//! Decides the IP address LiveKit advertises to clients (`rtc.node_ip`) and says which rule chose it.
//! Order: `livekit.nodeIP` → `server.host` → the default-route interface → the first usable interface.

use std::fmt;
use std::net::{IpAddr, ToSocketAddrs};

/// Which rule produced the address, kept for the log line and the admin status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    Configured,
    ServerHost(String),
    DefaultRoute(String),
    FirstInterface(String),
    /// Nothing usable found: loopback keeps bedrud usable from this host only.
    LoopbackFallback,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeIp {
    pub ip: IpAddr,
    pub rule: Rule,
    /// Why earlier rules were passed over, in order; empty when the first rule decided.
    pub skipped: Vec<String>,
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rule::Configured => f.write_str("livekit.nodeIP"),
            Rule::ServerHost(h) => write!(f, "server.host ({h})"),
            Rule::DefaultRoute(i) => write!(f, "interface {i}, which holds the default route"),
            Rule::FirstInterface(i) => write!(f, "first usable interface {i}"),
            Rule::LoopbackFallback => f.write_str("loopback fallback: no usable interface address"),
        }
    }
}

/// What the host can tell us; a trait so the rules can be tested without touching the network.
pub trait HostInfo {
    /// Addresses `name` resolves to (empty when it does not resolve).
    fn resolve(&self, name: &str) -> Vec<IpAddr>;
    /// Names of interfaces holding a default route, best (lowest metric) first.
    fn default_route_interfaces(&self) -> Vec<String>;
    /// Every (interface, address) pair of the host.
    fn interfaces(&self) -> Vec<(String, IpAddr)>;
}

/// Addresses a remote client could reach: not loopback, unspecified, multicast or link-local.
pub fn is_usable(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            !(v4.is_loopback()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_link_local()
                || v4.is_broadcast())
        }
        IpAddr::V6(v6) => {
            let link_local = (v6.segments()[0] & 0xffc0) == 0xfe80;
            !(v6.is_loopback() || v6.is_unspecified() || v6.is_multicast() || link_local)
        }
    }
}

/// Applies the rules in order. `configured` is `livekit.nodeIP`, `server_host` is `server.host`.
pub fn resolve(configured: Option<IpAddr>, server_host: &str, host: &dyn HostInfo) -> NodeIp {
    let mut skipped = Vec::new();
    if let Some(ip) = configured {
        return NodeIp {
            ip,
            rule: Rule::Configured,
            skipped,
        };
    }
    match from_server_host(server_host, host) {
        Ok(ip) => {
            return NodeIp {
                ip,
                rule: Rule::ServerHost(server_host.to_string()),
                skipped,
            }
        }
        Err(why) => skipped.push(why),
    }
    let addrs = host.interfaces();
    for iface in host.default_route_interfaces() {
        if let Some(ip) = best_address(&addrs, Some(&iface)) {
            return NodeIp {
                ip,
                rule: Rule::DefaultRoute(iface),
                skipped,
            };
        }
        skipped.push(format!(
            "default-route interface {iface} has no usable address"
        ));
    }
    if host.default_route_interfaces().is_empty() {
        skipped.push("no default route".into());
    }
    if let Some(ip) = best_address(&addrs, None) {
        let iface = addrs
            .iter()
            .find(|(_, a)| *a == ip)
            .map(|(n, _)| n.clone())
            .unwrap_or_default();
        return NodeIp {
            ip,
            rule: Rule::FirstInterface(iface),
            skipped,
        };
    }
    skipped.push("no interface has a usable address".into());
    NodeIp {
        ip: IpAddr::from([127, 0, 0, 1]),
        rule: Rule::LoopbackFallback,
        skipped,
    }
}

fn from_server_host(server_host: &str, host: &dyn HostInfo) -> Result<IpAddr, String> {
    let name = server_host.trim();
    if name.is_empty() {
        return Err("server.host is empty".into());
    }
    if let Ok(ip) = name.parse::<IpAddr>() {
        return if is_usable(&ip) {
            Ok(ip)
        } else {
            Err(format!(
                "server.host {ip} is not an address clients can reach"
            ))
        };
    }
    let resolved = host.resolve(name);
    if resolved.is_empty() {
        return Err(format!("server.host {name} does not resolve"));
    }
    let mut usable: Vec<IpAddr> = resolved.into_iter().filter(is_usable).collect();
    usable.sort_by_key(|ip| ip.is_ipv6()); // IPv4 first: more clients can use it
    usable.first().copied().ok_or_else(|| {
        format!("server.host {name} resolves only to loopback or link-local addresses")
    })
}

/// IPv4 before IPv6, in interface order; optionally only on one interface.
fn best_address(addrs: &[(String, IpAddr)], iface: Option<&str>) -> Option<IpAddr> {
    let candidates = addrs
        .iter()
        .filter(|(name, ip)| iface.is_none_or(|i| i == name) && is_usable(ip));
    let mut v: Vec<IpAddr> = candidates.map(|(_, ip)| *ip).collect();
    v.sort_by_key(|ip| ip.is_ipv6());
    v.first().copied()
}

/// Parses `/proc/net/route` (IPv4): interfaces with an up default route, lowest metric first.
pub fn parse_proc_route(text: &str) -> Vec<String> {
    const RTF_UP: u32 = 0x1;
    let mut routes: Vec<(u32, String)> = text
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (iface, dest, flags, metric, mask) =
                (f.first()?, f.get(1)?, f.get(3)?, f.get(6)?, f.get(7)?);
            let flags = u32::from_str_radix(flags, 16).ok()?;
            let default = *dest == "00000000" && *mask == "00000000";
            (default && flags & RTF_UP != 0)
                .then(|| (metric.parse().unwrap_or(u32::MAX), iface.to_string()))
        })
        .collect();
    routes.sort();
    routes.into_iter().map(|(_, i)| i).collect()
}

/// Parses `/proc/net/ipv6_route`: interfaces with a usable `::/0` route, lowest metric first.
pub fn parse_proc_ipv6_route(text: &str) -> Vec<String> {
    const RTF_UP: u32 = 0x1;
    const RTF_REJECT: u32 = 0x200;
    let mut routes: Vec<(u32, String)> = text
        .lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 10 {
                return None;
            }
            let default = f[0].chars().all(|c| c == '0') && f[1] == "00";
            let metric = u32::from_str_radix(f[5], 16).ok()?;
            let flags = u32::from_str_radix(f[8], 16).ok()?;
            let usable = flags & RTF_UP != 0 && flags & RTF_REJECT == 0 && f[9] != "lo";
            (default && usable).then(|| (metric, f[9].to_string()))
        })
        .collect();
    routes.sort();
    routes.into_iter().map(|(_, i)| i).collect()
}

/// The real host: the resolver, `/proc/net/*route` and the interface list.
pub struct System;

impl HostInfo for System {
    fn resolve(&self, name: &str) -> Vec<IpAddr> {
        (name, 0)
            .to_socket_addrs()
            .map(|it| it.map(|sa| sa.ip()).collect())
            .unwrap_or_default()
    }

    fn default_route_interfaces(&self) -> Vec<String> {
        let v4 = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
        let v6 = std::fs::read_to_string("/proc/net/ipv6_route").unwrap_or_default();
        let mut all = parse_proc_route(&v4);
        for i in parse_proc_ipv6_route(&v6) {
            if !all.contains(&i) {
                all.push(i);
            }
        }
        all
    }

    fn interfaces(&self) -> Vec<(String, IpAddr)> {
        if_addrs::get_if_addrs()
            .map(|v| v.into_iter().map(|i| (i.name.clone(), i.ip())).collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct FakeHost {
        dns: Vec<(&'static str, Vec<IpAddr>)>,
        routes: Vec<String>,
        ifaces: Vec<(String, IpAddr)>,
    }

    impl HostInfo for FakeHost {
        fn resolve(&self, name: &str) -> Vec<IpAddr> {
            self.dns
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        }
        fn default_route_interfaces(&self) -> Vec<String> {
            self.routes.clone()
        }
        fn interfaces(&self) -> Vec<(String, IpAddr)> {
            self.ifaces.clone()
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn host() -> FakeHost {
        FakeHost {
            dns: vec![
                ("meet.example.test", vec![ip("203.0.113.7")]),
                ("loop.example.test", vec![ip("127.0.1.1")]),
            ],
            routes: vec!["eth1".into()],
            ifaces: vec![
                ("lo".into(), ip("127.0.0.1")),
                ("eth0".into(), ip("10.0.0.5")),
                ("eth1".into(), ip("fe80::1")),
                ("eth1".into(), ip("2001:db8::5")),
                ("eth1".into(), ip("192.0.2.9")),
            ],
        }
    }

    #[test]
    fn configured_address_wins() {
        let n = resolve(Some(ip("198.51.100.1")), "meet.example.test", &host());
        assert_eq!((n.ip, n.rule), (ip("198.51.100.1"), Rule::Configured));
    }

    #[test]
    fn server_host_ip_literal_is_used() {
        let n = resolve(None, "203.0.113.50", &host());
        assert_eq!(n.ip, ip("203.0.113.50"));
        assert_eq!(n.rule, Rule::ServerHost("203.0.113.50".into()));
    }

    #[test]
    fn server_host_name_is_resolved() {
        let n = resolve(None, "meet.example.test", &host());
        assert_eq!(n.ip, ip("203.0.113.7"));
    }

    #[test]
    fn loopback_server_host_falls_through_to_default_route_ipv4_first() {
        let n = resolve(None, "loop.example.test", &host());
        assert_eq!(n.ip, ip("192.0.2.9"));
        assert_eq!(n.rule, Rule::DefaultRoute("eth1".into()));
        assert!(n.skipped[0].contains("loopback"), "{:?}", n.skipped);
    }

    #[test]
    fn unresolvable_and_localhost_are_skipped_with_reasons() {
        let n = resolve(None, "nowhere.example.test", &host());
        assert!(n.skipped[0].contains("does not resolve"));
        let n = resolve(None, "127.0.0.1", &host());
        assert!(n.skipped[0].contains("not an address clients can reach"));
        let n = resolve(None, "", &host());
        assert!(n.skipped[0].contains("empty"));
    }

    #[test]
    fn without_default_route_the_first_usable_interface_is_used() {
        let mut h = host();
        h.routes.clear();
        let n = resolve(None, "", &h);
        assert_eq!(n.ip, ip("10.0.0.5"));
        assert_eq!(n.rule, Rule::FirstInterface("eth0".into()));
    }

    #[test]
    fn loopback_only_host_falls_back_to_loopback() {
        let h = FakeHost {
            dns: vec![],
            routes: vec![],
            ifaces: vec![("lo".into(), ip("127.0.0.1")), ("lo".into(), ip("::1"))],
        };
        let n = resolve(None, "", &h);
        assert_eq!((n.ip, n.rule), (ip("127.0.0.1"), Rule::LoopbackFallback));
    }

    #[test]
    fn proc_route_picks_up_default_routes_by_metric() {
        let text =
            "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\tMTU\tWindow\tIRTT\n\
                    wlan0\t00000000\t0101A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0\n\
                    eth0\t00000000\t010200C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n\
                    eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
                    down0\t00000000\t010200C0\t0002\t0\t0\t0\t00000000\t0\t0\t0\n";
        assert_eq!(parse_proc_route(text), vec!["eth0", "wlan0"]);
    }

    #[test]
    fn proc_ipv6_route_skips_reject_and_loopback() {
        let z = "00000000000000000000000000000000";
        let text = format!(
            "{z} 00 {z} 00 fe800000000000000000000000000001 00000400 00000001 00000000 00000003 eth0\n\
             {z} 00 {z} 00 {z} ffffffff 00000001 00000000 00200200 lo\n"
        );
        assert_eq!(parse_proc_ipv6_route(&text), vec!["eth0"]);
    }

    #[test]
    fn usable_excludes_link_local_and_loopback() {
        for bad in [
            "127.0.0.1",
            "::1",
            "169.254.1.1",
            "fe80::1",
            "0.0.0.0",
            "224.0.0.1",
        ] {
            assert!(!is_usable(&ip(bad)), "{bad}");
        }
        for good in ["10.1.2.3", "203.0.113.1", "2001:db8::1"] {
            assert!(is_usable(&ip(good)), "{good}");
        }
    }
}
