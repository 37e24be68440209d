//! Prepares embedded mode before anything runs: binary, version, node IP, keys and LiveKit YAML.
//! Shared by `bedrud serve` and `bedrud livekit config`, so both show the same thing.

use std::net::IpAddr;
use std::path::Path;

use anyhow::Context;

use crate::config::{Config, Credentials, Embedded};
use crate::host::node_ip::{self, NodeIp};
use crate::keys;
use crate::livekit::binary::{self as livekit_binary, Version};
use crate::livekit::config::{self as livekit_config, Generated, Inputs};
use crate::livekit::status;
use crate::supervisor::{ConfigSource, Plan, PortClaim};

/// What `serve` needs to start supervising LiveKit.
pub struct Prepared {
    pub plan: Plan,
    pub version: Option<Version>,
    pub node_ip: Option<NodeIp>,
    pub warnings: Vec<String>,
    pub port: u16,
}

/// Finds the binary (required), learns its version, resolves node_ip and keys, renders the YAML.
pub async fn prepare(
    config: &Config,
    e: &Embedded,
    credentials: &Credentials,
    api_port: u16,
) -> anyhow::Result<Prepared> {
    let binary = livekit_binary::locate(e.binary_path.as_deref())?;
    let version = probe(&binary).await;
    let (source, node_ip, warnings, port) = match &e.static_config {
        Some(path) => {
            let port = static_port(path).unwrap_or(7880);
            (ConfigSource::Static(path.clone()), None, Vec::new(), port)
        }
        None => {
            let node = resolve_node_ip(config, e);
            let generated = generate(config, e, credentials, &node, api_port, version);
            let yaml = generated.yaml.render(true);
            (
                ConfigSource::Generated(yaml),
                Some(node),
                generated.warnings,
                e.port,
            )
        }
    };
    let ports = match source {
        ConfigSource::Generated(_) => port_claims(config, e),
        ConfigSource::Static(_) => vec![PortClaim {
            port,
            udp: false,
            key: "port (in the static LiveKit config)",
        }],
    };
    Ok(Prepared {
        plan: Plan {
            binary,
            config: source,
            probe_url: format!("http://127.0.0.1:{port}/"),
            ports,
            timings: e.supervision.clone(),
            temp_dir: livekit_config::temp_dir(),
        },
        version,
        node_ip,
        warnings,
        port,
    })
}

async fn probe(binary: &Path) -> Option<Version> {
    match livekit_binary::probe_version(binary).await {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::warn!("{e}; writing only the config keys every LiveKit release accepts");
            None
        }
    }
}

/// The API key pair bedrud uses with LiveKit: the configured one; else, with a static LiveKit
/// config, the single key in that file; else the one generated for this host.
pub fn credentials(config: &Config) -> anyhow::Result<Credentials> {
    if let Some(c) = &config.livekit.credentials {
        return Ok(c.clone());
    }
    if let Some(path) = config.embedded().and_then(|e| e.static_config.as_ref()) {
        return static_credentials(path);
    }
    let dir = &config.server.data_dir;
    let (c, created) = keys::load_or_generate(dir).context("embedded LiveKit needs an API key")?;
    if created {
        tracing::info!(
            file = %keys::path(dir).display(),
            "generated an API key and secret for embedded LiveKit"
        );
    }
    Ok(c)
}

fn static_credentials(path: &Path) -> anyhow::Result<Credentials> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let doc: yaml_serde::Value = yaml_serde::from_str(&text).unwrap_or(yaml_serde::Value::Null);
    let keys: Vec<(String, String)> = match doc.get("keys") {
        Some(yaml_serde::Value::Mapping(m)) => m
            .iter()
            .filter_map(|(k, v)| Some((k.as_str()?.to_string(), v.as_str()?.to_string())))
            .collect(),
        _ => Vec::new(),
    };
    match keys.as_slice() {
        [(key, secret)] => Ok(Credentials {
            api_key: key.clone(),
            api_secret: crate::secret::Secret::new(secret.clone()),
        }),
        _ => anyhow::bail!(
            "livekit.apiKey / livekit.apiSecret: set them to one of the keys of {} (it has {} keys, bedrud can only guess with exactly one)",
            path.display(),
            keys.len()
        ),
    }
}

pub fn resolve_node_ip(config: &Config, e: &Embedded) -> NodeIp {
    let n = node_ip::resolve(e.node_ip, &config.server.host, &node_ip::System);
    for why in &n.skipped {
        tracing::info!("node_ip: passed over: {why}");
    }
    match n.rule {
        node_ip::Rule::LoopbackFallback => tracing::warn!(
            "node_ip {} ({}); only clients on this host can connect media. Set livekit.nodeIP",
            n.ip,
            n.rule
        ),
        _ => tracing::info!("node_ip {} chosen by {}", n.ip, n.rule),
    }
    n
}

pub fn generate(
    config: &Config,
    e: &Embedded,
    credentials: &Credentials,
    node: &NodeIp,
    api_port: u16,
    version: Option<Version>,
) -> Generated {
    livekit_config::generate(&Inputs {
        embedded: e,
        server: &config.server,
        credentials,
        node_ip: node.ip,
        webhook_url: webhook_url(config, e, api_port),
        version,
    })
}

/// Where LiveKit sends its webhooks: bedrud's own endpoint, over loopback unless TLS needs a name.
pub fn webhook_url(config: &Config, e: &Embedded, api_port: u16) -> String {
    if let Some(url) = &e.webhook_url {
        return url.clone();
    }
    let s = &config.server;
    if s.tls.is_some() && !s.host.is_empty() {
        // The certificate names server.host, so the loopback address would fail verification.
        return format!("https://{}:{api_port}/api/livekit/webhook", s.host);
    }
    let host = match s.bind_address {
        ip if !ip.is_unspecified() => ip,
        IpAddr::V4(_) => IpAddr::from([127, 0, 0, 1]),
        IpAddr::V6(_) => IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
    };
    let scheme = if s.tls.is_some() { "https" } else { "http" };
    match host {
        IpAddr::V6(v6) => format!("{scheme}://[{v6}]:{api_port}/api/livekit/webhook"),
        IpAddr::V4(v4) => format!("{scheme}://{v4}:{api_port}/api/livekit/webhook"),
    }
}

fn port_claims(config: &Config, e: &Embedded) -> Vec<PortClaim> {
    let mut claims = vec![
        PortClaim {
            port: e.port,
            udp: false,
            key: "livekit.port",
        },
        PortClaim {
            port: e.rtc_tcp_port,
            udp: false,
            key: "livekit.rtcTcpPort",
        },
    ];
    if e.turn.enabled {
        claims.push(PortClaim {
            port: e.turn.udp_port,
            udp: true,
            key: "livekit.turnUdpPort",
        });
        if config.server.tls.is_some() && livekit_config::turn_domain(&config.server.host).is_ok() {
            claims.push(PortClaim {
                port: e.turn.tls_port,
                udp: false,
                key: "livekit.turnTlsPort",
            });
        }
    }
    claims
}

/// The HTTP port a static LiveKit config asks for (LiveKit's default is 7880).
pub fn static_port(path: &Path) -> Option<u16> {
    let text = std::fs::read_to_string(path).ok()?;
    let doc: yaml_serde::Value = yaml_serde::from_str(&text).ok()?;
    doc.get("port")?
        .as_u64()
        .and_then(|p| u16::try_from(p).ok())
}

/// The static file as it is, with the values under `keys:` masked unless `show_secrets`.
pub fn render_static(path: &Path, show_secrets: bool) -> anyhow::Result<String> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    if show_secrets {
        return Ok(text);
    }
    let mut doc: yaml_serde::Value = yaml_serde::from_str(&text)
        .with_context(|| format!("{} is not valid YAML", path.display()))?;
    if let Some(yaml_serde::Value::Mapping(keys)) = doc.get_mut("keys") {
        for (_, v) in keys.iter_mut() {
            *v = yaml_serde::Value::String("********".into());
        }
    }
    Ok(yaml_serde::to_string(&doc)?)
}

/// Fills the status with what preparation learned.
pub fn describe(prepared: &Prepared, status: &mut status::LiveKitStatus) {
    status.version = prepared.version.map(|v| v.to_string());
    status.port = Some(prepared.port);
    status.node_ip = prepared.node_ip.as_ref().map(|n| n.ip.to_string());
    status.node_ip_rule = prepared.node_ip.as_ref().map(|n| n.rule.to_string());
    status.warnings = prepared.warnings.clone();
}

/// For `bedrud livekit config` without a stored key: show where it will come from.
pub fn placeholder_credentials(config: &Config) -> Credentials {
    Credentials {
        api_key: "<generated at first start>".into(),
        api_secret: crate::secret::Secret::new(format!(
            "<generated at first start, kept in {}>",
            keys::path(&config.server.data_dir).display()
        )),
    }
}
