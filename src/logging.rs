//! Sets up bedrud's log: structured journal entries when stderr is the journal (under systemd),
//! readable text on stderr otherwise. `$BEDRUD_LOG` overrides the configured level; a reload
//! changes the configured level in place (`set_level`).

use std::sync::OnceLock;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Layer, Registry};

/// The handle that swaps the level filter; absent when `$BEDRUD_LOG` decides the level.
static LEVEL: OnceLock<reload::Handle<EnvFilter, Registry>> = OnceLock::new();

/// Installs the global subscriber once; later calls (tests) are ignored.
pub fn init(level: &str) {
    let from_env = EnvFilter::try_from_env("BEDRUD_LOG").ok();
    let pinned = from_env.is_some();
    let (filter, handle) = reload::Layer::new(from_env.unwrap_or_else(|| EnvFilter::new(level)));
    let layer = if stderr_is_journal() {
        match tracing_journald::layer() {
            Ok(j) => j.with_syslog_identifier("bedrud".into()).boxed(),
            Err(_) => text_layer(),
        }
    } else {
        text_layer()
    };
    let installed = tracing_subscriber::registry()
        .with(layer.with_filter(filter))
        .try_init();
    if installed.is_ok() && !pinned {
        let _ = LEVEL.set(handle);
    }
}

/// Applies a reloaded `log.level` (already checked by the config). Does nothing when
/// `$BEDRUD_LOG` overrides the configured level.
pub fn set_level(level: &str) {
    if let Some(handle) = LEVEL.get() {
        if let Err(e) = handle.reload(EnvFilter::new(level)) {
            tracing::warn!("cannot change the log level: {e}");
        }
    }
}

fn text_layer<S>() -> Box<dyn Layer<S> + Send + Sync>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .boxed()
}

/// systemd sets `$JOURNAL_STREAM` to the device and inode of the journal socket it connected
/// to stderr; matching them (not just the variable's presence) avoids a stale inherited value.
fn stderr_is_journal() -> bool {
    let Some(value) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = value.to_str().and_then(|v| v.split_once(':')) else {
        return false;
    };
    let Ok(stat) = nix::sys::stat::fstat(std::io::stderr()) else {
        return false;
    };
    dev.parse() == Ok(stat.st_dev) && ino.parse() == Ok(stat.st_ino)
}
