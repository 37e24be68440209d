//! Which config keys a running bedrud can take on, and how: the one rule that decides, for every
//! key, whether a change applies at once (`Live`), waits for LiveKit to restart with no meeting
//! live (`LiveKitRestart`), or needs bedrud itself restarted (`ProcessRestart`).
//!
//! A key missing from this table is a key a reload silently ignores; the test at the bottom
//! changes every field of `Config` it knows about and checks that each is seen.

use crate::config::{Config, Mode};

/// How a changed key reaches the running daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Handlers, limiters, reconciliation and the log read the new value from the next request on.
    Live,
    /// Embedded LiveKit reads it from its generated config: applied by restarting LiveKit, which
    /// waits until no meeting is live.
    LiveKitRestart,
    /// Built into the listener, the database pool or the LiveKit client at start-up.
    ProcessRestart,
}

/// One key: its dotted name, how it changes, how to compare it and how to adopt it.
struct Key {
    name: &'static str,
    class: Class,
    /// Only compared, never shown: it may be a secret.
    value: fn(&Config) -> String,
    /// Copies the key from the new config into the running one.
    adopt: fn(&mut Config, &Config),
}

macro_rules! key {
    ($name:literal, $class:ident, $($field:ident).+) => {
        Key {
            name: $name,
            class: Class::$class,
            value: |c| format!("{:?}", c.$($field).+),
            adopt: |dst, src| dst.$($field).+ = src.$($field).+.clone(),
        }
    };
}

/// A field of embedded mode (`livekit.*`); compared as absent in external mode.
macro_rules! embedded {
    ($name:literal, $class:ident, $($field:ident).+) => {
        Key {
            name: $name,
            class: Class::$class,
            value: |c| format!("{:?}", c.embedded().map(|e| &e.$($field).+)),
            adopt: |dst, src| {
                if let (Mode::Embedded(d), Some(s)) = (&mut dst.livekit.mode, src.embedded()) {
                    d.$($field).+ = s.$($field).+.clone();
                }
            },
        }
    };
}

const KEYS: &[Key] = &[
    key!("log.level", Live, log_level),
    key!("auth.accessTokenTtl", Live, auth.access_token_ttl),
    key!("auth.refreshTokenTtl", Live, auth.refresh_token_ttl),
    key!("auth.allowRegistration", Live, auth.allow_registration),
    key!(
        "auth.loginAttemptsPerMinute",
        Live,
        auth.login_attempts_per_minute
    ),
    key!(
        "auth.registrationsPerMinute",
        Live,
        auth.registrations_per_minute
    ),
    key!("rooms.joinTokenTtl", Live, rooms.join_token_ttl),
    key!("rooms.allowGuests", Live, rooms.allow_guests),
    key!(
        "rooms.defaultMaxParticipants",
        Live,
        rooms.default_max_participants
    ),
    key!("rooms.reconcileInterval", Live, rooms.reconcile_interval),
    key!("rooms.emptyTimeout", Live, rooms.livekit_room.empty_timeout),
    key!(
        "rooms.departureTimeout",
        Live,
        rooms.livekit_room.departure_timeout
    ),
    key!("recording.retainDays", Live, recording.retain),
    key!("server.bodyTimeout", Live, server.limits.body_timeout),
    key!("server.watchConfig", Live, server.watch_config),
    // The API certificate is swapped in place (new handshakes get it); TURN/TLS, which reads the
    // same files, is handled by comparing LiveKit's generated config.
    Key {
        name: "server.certFile",
        class: Class::Live,
        value: |c| format!("{:?}", c.server.tls.as_ref().map(|t| &t.cert_file)),
        adopt: |dst, src| {
            if let (Some(d), Some(s)) = (&mut dst.server.tls, &src.server.tls) {
                d.cert_file = s.cert_file.clone();
            }
        },
    },
    Key {
        name: "server.keyFile",
        class: Class::Live,
        value: |c| format!("{:?}", c.server.tls.as_ref().map(|t| &t.key_file)),
        adopt: |dst, src| {
            if let (Some(d), Some(s)) = (&mut dst.server.tls, &src.server.tls) {
                d.key_file = s.key_file.clone();
            }
        },
    },
    embedded!("livekit.nodeIP", LiveKitRestart, node_ip),
    embedded!("livekit.configPath", LiveKitRestart, static_config),
    embedded!("livekit.binaryPath", LiveKitRestart, binary_path),
    embedded!("livekit.rtcTcpPort", LiveKitRestart, rtc_tcp_port),
    embedded!(
        "livekit.rtcPortRangeStart/End",
        LiveKitRestart,
        rtc_port_range
    ),
    embedded!("livekit.rtcInterfaces", LiveKitRestart, rtc_interfaces),
    embedded!("livekit.turnEnabled", LiveKitRestart, turn.enabled),
    embedded!("livekit.turnUdpPort", LiveKitRestart, turn.udp_port),
    embedded!("livekit.turnTlsPort", LiveKitRestart, turn.tls_port),
    embedded!("livekit.webhookUrl", LiveKitRestart, webhook_url),
    embedded!("livekit.logLevel", LiveKitRestart, log_level),
    // bedrud's own listener, database and clients are built once.
    key!("server.host", ProcessRestart, server.host),
    key!("server.bindAddress", ProcessRestart, server.bind_address),
    key!("server.port", ProcessRestart, server.port),
    Key {
        name: "server.enableTLS",
        class: Class::ProcessRestart,
        value: |c| c.server.tls.is_some().to_string(),
        adopt: |_, _| {},
    },
    key!("server.dataDir", ProcessRestart, server.data_dir),
    key!(
        "server.headerTimeout",
        ProcessRestart,
        server.limits.header_timeout
    ),
    key!(
        "server.maxConnections",
        ProcessRestart,
        server.limits.max_connections
    ),
    key!("database.url", ProcessRestart, database_url),
    // The recording worker, its Redis and the storage client are started once with bedrud.
    key!("recording.enabled", ProcessRestart, recording.enabled),
    key!("recording.dir", ProcessRestart, recording.dir),
    key!(
        "recording.egressBinaryPath",
        ProcessRestart,
        recording.egress_binary_path
    ),
    key!(
        "recording.redisBinaryPath",
        ProcessRestart,
        recording.redis_binary_path
    ),
    key!(
        "recording.egressCpuCost",
        ProcessRestart,
        recording.egress_cpu_cost
    ),
    Key {
        name: "recording.redis",
        class: Class::ProcessRestart,
        value: |c| with_secret(&c.recording.redis, |r| r.password.as_ref()),
        adopt: |_, _| {},
    },
    Key {
        name: "recording.s3",
        class: Class::ProcessRestart,
        value: |c| with_secret(&c.recording.s3, |s| Some(&s.secret_key)),
        adopt: |_, _| {},
    },
    Key {
        name: "auth.jwtSecret",
        class: Class::ProcessRestart,
        value: |c| {
            c.auth
                .jwt_secret
                .as_ref()
                .map(|s| s.expose().to_string())
                .unwrap_or_default()
        },
        adopt: |_, _| {},
    },
    Key {
        name: "livekit.apiKey",
        class: Class::ProcessRestart,
        value: |c| {
            c.livekit
                .credentials
                .as_ref()
                .map(|k| k.api_key.clone())
                .unwrap_or_default()
        },
        adopt: |_, _| {},
    },
    Key {
        name: "livekit.apiSecret",
        class: Class::ProcessRestart,
        value: |c| {
            let creds = c.livekit.credentials.as_ref();
            creds
                .map(|k| k.api_secret.expose().to_string())
                .unwrap_or_default()
        },
        adopt: |_, _| {},
    },
    Key {
        name: "livekit.external",
        class: Class::ProcessRestart,
        value: |c| matches!(c.livekit.mode, Mode::External).to_string(),
        adopt: |_, _| {},
    },
    key!("livekit.host", ProcessRestart, livekit.host),
    key!(
        "livekit.internalHost",
        ProcessRestart,
        livekit.internal_host
    ),
    key!(
        "livekit.skipTLSVerify",
        ProcessRestart,
        livekit.skip_tls_verify
    ),
    // LiveKit's client and proxy address are built from it at start-up.
    embedded!("livekit.port", ProcessRestart, port),
    embedded!(
        "livekit.stopGracePeriod/restartDelay/restartDelayMax/stableAfter/readyTimeout",
        ProcessRestart,
        supervision
    ),
];

/// What changed between the running config and a new one, by class.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Changes {
    pub live: Vec<&'static str>,
    pub livekit_restart: Vec<&'static str>,
    pub process_restart: Vec<&'static str>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.live.is_empty() && self.livekit_restart.is_empty() && self.process_restart.is_empty()
    }
}

/// Every key whose value differs, sorted into its class.
/// A block compared with its secret: `Debug` masks secrets, so a changed password alone would
/// otherwise look unchanged.
fn with_secret<T: std::fmt::Debug>(
    block: &Option<T>,
    secret: impl Fn(&T) -> Option<&crate::secret::Secret>,
) -> String {
    match block {
        Some(b) => format!("{b:?} {:?}", secret(b).map(|s| s.expose())),
        None => "none".into(),
    }
}

pub fn diff(running: &Config, new: &Config) -> Changes {
    let mut changes = Changes::default();
    for k in KEYS {
        if (k.value)(running) != (k.value)(new) {
            match k.class {
                Class::Live => changes.live.push(k.name),
                Class::LiveKitRestart => changes.livekit_restart.push(k.name),
                Class::ProcessRestart => changes.process_restart.push(k.name),
            }
        }
    }
    changes
}

/// The class of a key, by its dotted name.
pub fn class_of(name: &str) -> Option<Class> {
    KEYS.iter().find(|k| k.name == name).map(|k| k.class)
}

/// The running config with the keys of `class` taken from `new`; other keys stay as they run.
pub fn adopt(running: &Config, new: &Config, class: Class) -> Config {
    let mut next = running.clone();
    for k in KEYS.iter().filter(|k| k.class == class) {
        (k.adopt)(&mut next, new);
    }
    next
}

#[cfg(test)]
mod tests;
