//! Stage one of loading: the file as written, deserialized with serde into `Raw*` structs that
//! carry every default. Nothing is checked here except YAML syntax and types; keys that match no
//! field are handed back so the checker can report them with the other problems.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

pub(super) fn parse_raw(text: &str, development: bool) -> Result<(RawConfig, Vec<String>), String> {
    let mut unknown = Vec::new();
    if text.trim().is_empty() {
        return Ok((RawConfig::defaults(development), unknown));
    }
    let de = yaml_serde::Deserializer::from_str(text);
    let raw: Option<RawConfig> = serde_ignored::deserialize(de, |path| {
        // The document root is an Option, which serde_ignored writes as "?".
        let p = path.to_string();
        unknown.push(p.strip_prefix("?.").unwrap_or(&p).to_string());
    })
    .map_err(|e| e.to_string())?;
    let mut raw = raw.unwrap_or_default();
    if development {
        raw.apply_development_defaults();
    }
    Ok((raw, unknown))
}

// Serialize is only used to list the known keys (the example-config test).
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(default)]
pub(super) struct RawConfig {
    pub(super) server: RawServer,
    pub(super) database: RawDatabase,
    pub(super) auth: RawAuth,
    pub(super) rooms: RawRooms,
    pub(super) livekit: RawLiveKit,
    pub(super) log: RawLog,
}

impl RawConfig {
    pub(super) fn defaults(development: bool) -> Self {
        let mut raw = RawConfig::default();
        if development {
            raw.apply_development_defaults();
        }
        raw
    }

    /// With no config file at all: listen on loopback only and keep data in the working folder,
    /// so that a newcomer can try bedrud in one command without exposing anything.
    fn apply_development_defaults(&mut self) {
        if self.server.bind_address == RawServer::default().bind_address {
            self.server.bind_address = "127.0.0.1".into();
        }
        if self.server.data_dir == RawServer::default().data_dir {
            self.server.data_dir = "bedrud-data".into();
        }
        if self.livekit.node_ip.is_empty() {
            self.livekit.node_ip = "127.0.0.1".into();
        }
        if self.livekit.rtc_interfaces.is_empty() {
            self.livekit.rtc_interfaces = vec!["lo".into()];
        }
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(default, rename_all = "camelCase")]
pub(super) struct RawServer {
    pub(super) host: String,
    pub(super) bind_address: String,
    pub(super) port: i64,
    #[serde(rename = "enableTLS")]
    pub(super) enable_tls: bool,
    pub(super) cert_file: String,
    pub(super) key_file: String,
    pub(super) data_dir: String,
    pub(super) header_timeout: String,
    pub(super) body_timeout: String,
    pub(super) max_connections: i64,
}

impl Default for RawServer {
    fn default() -> Self {
        RawServer {
            host: String::new(),
            bind_address: "0.0.0.0".into(),
            port: 8090,
            enable_tls: false,
            cert_file: String::new(),
            key_file: String::new(),
            data_dir: "/var/lib/bedrud".into(),
            header_timeout: "10s".into(),
            body_timeout: "30s".into(),
            max_connections: 10_000,
        }
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(default, rename_all = "camelCase")]
pub(super) struct RawLiveKit {
    pub(super) external: Option<bool>,
    pub(super) embedded: Option<bool>,
    pub(super) host: String,
    pub(super) internal_host: String,
    #[serde(deserialize_with = "scalar_string")]
    pub(super) api_key: String,
    #[serde(deserialize_with = "scalar_string")]
    pub(super) api_secret: String,
    #[serde(rename = "skipTLSVerify")]
    pub(super) skip_tls_verify: bool,
    #[serde(rename = "nodeIP")]
    pub(super) node_ip: String,
    pub(super) config_path: String,
    pub(super) port: i64,
    pub(super) binary_path: String,
    pub(super) rtc_tcp_port: i64,
    pub(super) rtc_port_range_start: i64,
    pub(super) rtc_port_range_end: i64,
    pub(super) rtc_interfaces: Vec<String>,
    pub(super) turn_enabled: bool,
    pub(super) turn_udp_port: i64,
    pub(super) turn_tls_port: i64,
    pub(super) webhook_url: String,
    pub(super) log_level: String,
    pub(super) stop_grace_period: String,
    pub(super) restart_delay: String,
    pub(super) restart_delay_max: String,
    pub(super) stable_after: String,
    pub(super) ready_timeout: String,
}

impl Default for RawLiveKit {
    fn default() -> Self {
        RawLiveKit {
            external: None,
            embedded: None,
            host: String::new(),
            internal_host: String::new(),
            api_key: String::new(),
            api_secret: String::new(),
            skip_tls_verify: false,
            node_ip: String::new(),
            config_path: String::new(),
            port: 7880,
            binary_path: String::new(),
            rtc_tcp_port: 7881,
            rtc_port_range_start: 50000,
            rtc_port_range_end: 60000,
            rtc_interfaces: Vec::new(),
            turn_enabled: true,
            turn_udp_port: 3478,
            turn_tls_port: 5349,
            webhook_url: String::new(),
            log_level: "info".into(),
            stop_grace_period: "20s".into(),
            restart_delay: "500ms".into(),
            restart_delay_max: "30s".into(),
            stable_after: "60s".into(),
            ready_timeout: "60s".into(),
        }
    }
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(default)]
pub(super) struct RawDatabase {
    pub(super) url: String,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(default, rename_all = "camelCase")]
pub(super) struct RawAuth {
    #[serde(deserialize_with = "scalar_string")]
    pub(super) jwt_secret: String,
    pub(super) access_token_ttl: String,
    pub(super) refresh_token_ttl: String,
    pub(super) allow_registration: bool,
    pub(super) login_attempts_per_minute: i64,
    pub(super) registrations_per_minute: i64,
}

impl Default for RawAuth {
    fn default() -> Self {
        RawAuth {
            jwt_secret: String::new(),
            access_token_ttl: "15m".into(),
            refresh_token_ttl: "30days".into(),
            allow_registration: true,
            login_attempts_per_minute: 10,
            registrations_per_minute: 5,
        }
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(default, rename_all = "camelCase")]
pub(super) struct RawRooms {
    pub(super) join_token_ttl: String,
    pub(super) allow_guests: bool,
    pub(super) default_max_participants: i64,
    pub(super) reconcile_interval: String,
    pub(super) empty_timeout: String,
    pub(super) departure_timeout: String,
}

impl Default for RawRooms {
    fn default() -> Self {
        RawRooms {
            join_token_ttl: "2m".into(),
            allow_guests: true,
            default_max_participants: 50,
            reconcile_interval: "30s".into(),
            empty_timeout: "5m".into(),
            departure_timeout: "20s".into(),
        }
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(default)]
pub(super) struct RawLog {
    pub(super) level: String,
}

impl Default for RawLog {
    fn default() -> Self {
        RawLog {
            level: "info".into(),
        }
    }
}

/// Accepts any YAML scalar as a string, so that a numeric-looking secret is neither rejected
/// nor echoed back in a type error.
fn scalar_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    struct Scalar;
    impl serde::de::Visitor<'_> for Scalar {
        type Value = String;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a string")
        }
        fn visit_str<E>(self, v: &str) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_bool<E>(self, v: bool) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_i64<E>(self, v: i64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_u64<E>(self, v: u64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_i128<E>(self, v: i128) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_u128<E>(self, v: u128) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_f64<E>(self, v: f64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_unit<E>(self) -> Result<String, E> {
            Ok(String::new())
        }
    }
    d.deserialize_any(Scalar)
}
