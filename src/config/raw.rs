//! Stage one of loading: the file as written, deserialized with serde into `Raw*` structs that
//! carry every default. Nothing is checked here except YAML syntax and types: keys that match no
//! field and values of the wrong type are handed back as problems, so that the checker reports
//! them together with its own.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

use super::Problem;

/// The raw config and the problems found in this stage: unknown keys, and values of the wrong
/// type (each becomes one problem and its key keeps its default, so that the checker still
/// sees, and reports, everything else).
pub(super) fn parse_raw(
    text: &str,
    development: bool,
) -> Result<(RawConfig, Vec<Problem>), String> {
    let mut raw = match text.trim().is_empty() {
        true => (RawConfig::default(), Vec::new()),
        false => deserialize_all(text)?,
    };
    if development {
        raw.0.apply_development_defaults();
    }
    Ok(raw)
}

/// A value of the wrong type: the mapping keys that lead to it, and serde's message.
struct TypeError {
    keys: Vec<String>,
    message: String,
}

/// Straight from the text first (the common case, and the only one that keeps integers too
/// large for a YAML `Value`). On a type error, again from a `Value` that loses each wrongly
/// typed key in turn (so its default applies), until everything else deserializes.
fn deserialize_all(text: &str) -> Result<(RawConfig, Vec<Problem>), String> {
    match attempt(yaml_serde::Deserializer::from_str(text)) {
        Ok(ok) => return Ok(ok),
        Err(e) if e.keys.is_empty() => return Err(type_error(&e.message)),
        Err(_) => {}
    }
    let mut doc = match yaml_serde::from_str::<yaml_serde::Value>(text) {
        Ok(doc) => doc,
        // A syntax error further down, which the first pass did not reach.
        Err(e) => return Err(without_quoted_values(&e.to_string())),
    };
    let mut problems = Vec::new();
    loop {
        match attempt(doc.clone()) {
            Ok((raw, more)) => {
                problems.extend(more);
                return Ok((raw, problems));
            }
            Err(e) if !remove(&mut doc, &e.keys) => return Err(e.message),
            Err(e) => problems.push(e.into_problem()),
        }
    }
}

impl TypeError {
    fn into_problem(self) -> Problem {
        Problem {
            key: self.keys.join("."),
            message: type_error(&self.message),
        }
    }
}

/// One deserialization, noting unknown keys as problems and where an error happened.
fn attempt<'de, D: Deserializer<'de>>(de: D) -> Result<(RawConfig, Vec<Problem>), TypeError> {
    let mut unknown = Vec::new();
    let mut note_unknown = |path: serde_ignored::Path| unknown.push(path.to_string());
    let mut track = serde_path_to_error::Track::new();
    let de = serde_ignored::Deserializer::new(de, &mut note_unknown);
    match RawConfig::deserialize(serde_path_to_error::Deserializer::new(de, &mut track)) {
        Ok(raw) => {
            let unknown = unknown.into_iter().map(|key| Problem {
                key,
                message: "unknown key".into(),
            });
            Ok((raw, unknown.collect()))
        }
        Err(e) => Err(TypeError {
            keys: track
                .path()
                .iter()
                .map_while(|segment| match segment {
                    serde_path_to_error::Segment::Map { key } => Some(key.clone()),
                    _ => None,
                })
                .collect(),
            message: e.to_string(),
        }),
    }
}

/// Removes the value at `keys` (a path of mapping keys); false if there is none.
fn remove(doc: &mut yaml_serde::Value, keys: &[String]) -> bool {
    let Some((last, parents)) = keys.split_last() else {
        return false;
    };
    let parent = parents.iter().try_fold(doc, |v, k| v.get_mut(k.as_str()));
    parent
        .and_then(|p| p.as_mapping_mut())
        .and_then(|m| m.remove(last.as_str()))
        .is_some()
}

/// The parser quotes some values between backticks (an integer too large for a `Value`); it
/// could be a secret.
fn without_quoted_values(message: &str) -> String {
    message
        .split('`')
        .enumerate()
        .map(|(i, part)| if i % 2 == 1 { "…" } else { part })
        .collect()
}

/// serde's "invalid type: string \"x\", expected i64" in the words of the config, without the
/// value (it could be a secret put under the wrong key).
fn type_error(message: &str) -> String {
    let Some(rest) = message.strip_prefix("invalid type: ") else {
        return message.to_string();
    };
    let (found, expected) = rest
        .split_once(", expected ")
        .unwrap_or((rest, "another type"));
    let found = found.split(' ').next().unwrap_or(found);
    let expected = match expected {
        "i64" | "u64" | "i32" | "u32" | "u16" => "a whole number",
        "a boolean" => "true or false",
        "a sequence" => "a list",
        e if e.starts_with("struct ") => "a mapping of keys",
        e => e,
    };
    format!("must be {expected} (found {found})")
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
    pub(super) recording: RawRecording,
    pub(super) log: RawLog,
}

impl RawConfig {
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
    pub(super) watch_config: bool,
    pub(super) acme: RawAcme,
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
            watch_config: true,
            acme: RawAcme::default(),
        }
    }
}

/// Let's Encrypt's production directory: what `server.acme.directoryUrl` means when not set.
pub const LETS_ENCRYPT_DIRECTORY: &str = "https://acme-v02.api.letsencrypt.org/directory";

#[derive(Debug, Deserialize, Serialize)]
#[serde(default, rename_all = "camelCase")]
pub(super) struct RawAcme {
    pub(super) enabled: bool,
    pub(super) email: String,
    pub(super) directory_url: String,
    pub(super) directory_ca_file: String,
    pub(super) challenge: String,
    pub(super) http_port: i64,
}

impl Default for RawAcme {
    fn default() -> Self {
        RawAcme {
            enabled: false,
            email: String::new(),
            directory_url: LETS_ENCRYPT_DIRECTORY.into(),
            directory_ca_file: String::new(),
            challenge: "http-01".into(),
            http_port: 80,
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
#[serde(default, rename_all = "camelCase")]
pub(super) struct RawRecording {
    pub(super) enabled: bool,
    pub(super) dir: String,
    pub(super) retain_days: i64,
    pub(super) egress_binary_path: String,
    pub(super) redis_binary_path: String,
    pub(super) egress_cpu_cost: f64,
    pub(super) redis: RawRedis,
    pub(super) s3: RawS3,
}

impl Default for RawRecording {
    fn default() -> Self {
        RawRecording {
            enabled: false,
            dir: String::new(),
            retain_days: 0,
            egress_binary_path: String::new(),
            redis_binary_path: String::new(),
            egress_cpu_cost: 0.5,
            redis: RawRedis::default(),
            s3: RawS3::default(),
        }
    }
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(default, rename_all = "camelCase")]
pub(super) struct RawRedis {
    pub(super) address: String,
    pub(super) username: String,
    #[serde(deserialize_with = "scalar_string")]
    pub(super) password: String,
    pub(super) db: i64,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(default, rename_all = "camelCase")]
pub(super) struct RawS3 {
    pub(super) endpoint: String,
    pub(super) region: String,
    pub(super) bucket: String,
    pub(super) prefix: String,
    #[serde(deserialize_with = "scalar_string")]
    pub(super) access_key: String,
    #[serde(deserialize_with = "scalar_string")]
    pub(super) secret_key: String,
    pub(super) force_path_style: bool,
}

impl Default for RawS3 {
    fn default() -> Self {
        RawS3 {
            endpoint: String::new(),
            region: "us-east-1".into(),
            bucket: String::new(),
            prefix: "recordings/".into(),
            access_key: String::new(),
            secret_key: String::new(),
            force_path_style: false,
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
