//! Sets up bedrud's log: structured journal entries when stderr is the journal (under systemd),
//! readable text on stderr otherwise. `$BEDRUD_LOG` overrides the configured level.

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Installs the global subscriber once; later calls (tests) are ignored.
pub fn init(level: &str) {
    let filter = EnvFilter::try_from_env("BEDRUD_LOG").unwrap_or_else(|_| EnvFilter::new(level));
    let layer = if stderr_is_journal() {
        match tracing_journald::layer() {
            Ok(j) => j.with_syslog_identifier("bedrud".into()).boxed(),
            Err(_) => text_layer(),
        }
    } else {
        text_layer()
    };
    let _ = tracing_subscriber::registry()
        .with(layer.with_filter(filter))
        .try_init();
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
