//! Prepares embedded mode before anything runs: binary, version, node IP, ports and LiveKit YAML.
//! Shared by `bedrud serve` and `bedrud livekit config`, so both show the same thing.

use std::net::IpAddr;
use std::path::Path;

use anyhow::Context;

use crate::config::ports;
use crate::config::{Config, Credentials, Embedded};
use crate::host::node_ip::{self, NodeIp};
use crate::keys;
use crate::livekit::binary::{self as livekit_binary, Version};
use crate::livekit::config::{self as livekit_config, Generated, Inputs};
use crate::livekit::status;
use crate::supervisor::{ConfigSource, Plan};

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
    let (source, node_ip, warnings, ports) = match &e.static_config {
        Some(path) => {
            // An unreadable file is LiveKit's to report; its ports are then LiveKit's defaults.
            let doc = e.static_yaml().and_then(Result::ok).unwrap_or_default();
            let ports = ports::from_static(&doc);
            (ConfigSource::Static(path.clone()), None, Vec::new(), ports)
        }
        None => {
            // Resolving server.host is blocking DNS: off the async runtime.
            let (c, emb) = (config.clone(), e.clone());
            let node = tokio::task::spawn_blocking(move || resolve_node_ip(&c, &emb))
                .await
                .context("node_ip resolution")?;
            let redis = crate::egress::livekit_redis(config)?;
            let generated = generate(
                config,
                e,
                credentials,
                &node,
                api_port,
                version,
                redis.as_ref(),
            );
            let yaml = generated.yaml.render(true);
            (
                ConfigSource::Generated(yaml),
                Some(node),
                generated.warnings,
                ports::generated(&config.server, e),
            )
        }
    };
    let port = ports::http_port(&ports);
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
    redis: Option<&crate::config::Redis>,
) -> Generated {
    livekit_config::generate(&Inputs {
        embedded: e,
        server: &config.server,
        credentials,
        node_ip: node.ip,
        webhook_url: webhook_url(config, e, api_port),
        version,
        redis,
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

/// The static file as it is, with the values under `keys:` masked unless `show_secrets`.
pub fn render_static(path: &Path, show_secrets: bool) -> anyhow::Result<String> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    if show_secrets {
        return Ok(text);
    }
    // The parser's message is not shown: it could quote a secret under keys:.
    let mut doc: yaml_serde::Value = yaml_serde::from_str(&text)
        .map_err(|_| anyhow::anyhow!("{} is not valid YAML", path.display()))?;
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
