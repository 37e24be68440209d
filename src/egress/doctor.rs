//! `bedrud doctor`'s checks of embedded-mode recording: the Redis answers with its password, the
//! egress worker is found and runs, the GStreamer elements it records with are installed, the
//! folders it writes are writable, and PulseAudio and a `localhost` that resolves (both for
//! composites with video) are there.

use std::net::IpAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use super::{redis, worker, RedisSource};
use crate::config::Config;
use crate::doctor::{Finding, Level};
use crate::supervisor::private_home;

/// What egress builds its audio and H.264 recordings from (MP4/OGG with Opus, MP4 with H.264):
/// read from egress 1.14.0's pipeline code.
const GST_ELEMENTS: &[&str] = &[
    "appsrc",
    "audioconvert",
    "audioresample",
    "audiorate",
    "audiomixer",
    "opusenc",
    "opusdec",
    "rtpopusdepay",
    "mp4mux",
    "oggmux",
    "filesink",
    "queue",
    "tee",
    "capsfilter",
    "rtpvp8depay",
    "vp8dec",
    "rtph264depay",
    "h264parse",
    "x264enc",
    "videoconvert",
    "videoscale",
    "videorate",
];

fn finding(check: &'static str, level: Level, cause: String, fix: &str) -> Finding {
    Finding {
        check,
        level,
        cause,
        fix: fix.to_string(),
    }
}

/// The checks that apply: none unless embedded mode records.
pub async fn checks(config: &Config) -> Vec<Finding> {
    let source = match super::redis_source(config) {
        Ok(None) => return Vec::new(),
        Ok(Some(s)) => s,
        Err(e) => {
            let fix = "Fix the LiveKit config named above, or set recording.enabled: false";
            return vec![finding("Recording Redis", Level::Fail, e.to_string(), fix)];
        }
    };
    let mut out = vec![redis_answers(config, source).await];
    let binary = egress_binary(config).await;
    let found = binary.level == Level::Ok;
    out.push(binary);
    if found {
        out.push(gstreamer().await);
    }
    out.push(writable(
        "Recordings folder",
        &config.recordings_dir().join(".incoming"),
        "Make recording.dir (default <server.dataDir>/recordings) writable by bedrud's user",
    ));
    out.push(egress_tmp(config));
    out.push(pulseaudio());
    out.push(localhost().await);
    out
}

/// egress' template server listens on `localhost:<template_port>` and a composite's Chromium
/// loads its page from there, so `localhost` must name this host's loopback (an `/etc/hosts`
/// entry; a minimal container may have none). Without it a composite with video fails with
/// `net::ERR_CONNECTION_REFUSED`; audio-only recordings don't use the template.
async fn localhost() -> Finding {
    // getaddrinfo, as every program here resolves; bounded, as a missing entry falls to DNS.
    let lookup = tokio::net::lookup_host("localhost:0");
    let resolved = match tokio::time::timeout(Duration::from_secs(5), lookup).await {
        Ok(found) => found.map(|addrs| addrs.map(|a| a.ip()).collect()),
        Err(_) => Err(std::io::Error::other("no answer within 5 s")),
    };
    localhost_finding(resolved)
}

fn localhost_finding(resolved: std::io::Result<Vec<IpAddr>>) -> Finding {
    let check = "Egress localhost";
    let fix = "Add the usual lines `127.0.0.1 localhost` and `::1 localhost` to /etc/hosts; \
               audio-only recordings work without";
    let consequence = "egress' template server listens on localhost:<template_port> and the \
                       Chromium of a composite with video loads its page there, so such a \
                       recording would fail (net::ERR_CONNECTION_REFUSED)";
    let mut ips = match resolved {
        Ok(ips) => ips,
        Err(e) => {
            let cause = format!("`localhost` does not resolve ({e}): {consequence}");
            return finding(check, Level::Warn, cause, fix);
        }
    };
    ips.sort();
    ips.dedup();
    let list = ips
        .iter()
        .map(IpAddr::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    if ips.is_empty() {
        let cause = format!("`localhost` resolves to no address: {consequence}");
        finding(check, Level::Warn, cause, fix)
    } else if ips.iter().all(IpAddr::is_loopback) {
        finding(check, Level::Ok, format!("`localhost` is {list}"), "")
    } else {
        let cause = format!("`localhost` resolves to {list}, not only loopback: {consequence}");
        finding(check, Level::Warn, cause, fix)
    }
}

/// Only the room composite with video needs it: missing is a warning, not a failure.
fn pulseaudio() -> Finding {
    let check = "Recording PulseAudio";
    match super::pulse::locate() {
        Some(p) => finding(
            check,
            Level::Ok,
            format!("{} (bedrud runs it for the egress worker)", p.display()),
            "",
        ),
        None => finding(
            check,
            Level::Warn,
            super::pulse::MISSING.to_string(),
            "apt install pulseaudio pulseaudio-utils (the bedrud-recording package depends on \
             them); audio-only recordings work without",
        ),
    }
}

async fn redis_answers(config: &Config, source: RedisSource) -> Finding {
    let check = "Recording Redis";
    let link = match source {
        RedisSource::Configured(r) | RedisSource::StaticLiveKit(r) => r,
        RedisSource::Embedded => match redis::stored_link(&config.server.data_dir) {
            Ok(r) => r,
            Err(e) => return finding(check, Level::Warn, e.to_string(), "Start bedrud"),
        },
    };
    match redis::ping(&link).await {
        Ok(()) => finding(
            check,
            Level::Ok,
            format!("{} answers PING with its password", link.address),
            "",
        ),
        Err(e) => {
            let fix = if config.recording.redis.is_none() {
                "bedrud runs this Redis itself: start bedrud (systemctl start bedrud) and see its log"
            } else {
                "Start that Redis, or correct recording.redis.address / password"
            };
            finding(check, Level::Fail, e.to_string(), fix)
        }
    }
}

async fn egress_binary(config: &Config) -> Finding {
    let check = "Egress worker";
    let path = match worker::locate(
        worker::EGRESS,
        config.recording.egress_binary_path.as_deref(),
    ) {
        Ok(p) => p,
        Err(e) => return finding(check, Level::Fail, e.to_string(), worker::EGRESS.install),
    };
    match run(&path.display().to_string(), &["--version"]).await {
        Ok(out) => finding(
            check,
            Level::Ok,
            format!("{}: {}", path.display(), out.trim()),
            "",
        ),
        Err(e) => finding(
            check,
            Level::Fail,
            format!("{} does not run: {e}", path.display()),
            "Reinstall it (apt install --reinstall bedrud-recording, or scripts/install-egress.sh)",
        ),
    }
}

async fn gstreamer() -> Finding {
    let check = "GStreamer elements";
    let missing: Vec<&str> = {
        let mut missing = Vec::new();
        for &e in GST_ELEMENTS {
            match run("gst-inspect-1.0", &["--exists", e]).await {
                Ok(_) => {}
                Err(RunError::NotFound) => {
                    return finding(
                        check,
                        Level::Warn,
                        "gst-inspect-1.0 is not installed, so the elements egress needs cannot be checked".into(),
                        "apt-get install gstreamer1.0-tools",
                    )
                }
                Err(_) => missing.push(e),
            }
        }
        missing
    };
    if missing.is_empty() {
        finding(
            check,
            Level::Ok,
            format!(
                "all {} elements egress records with are installed",
                GST_ELEMENTS.len()
            ),
            "",
        )
    } else {
        finding(
            check,
            Level::Fail,
            format!("missing: {}", missing.join(", ")),
            "apt-get install gstreamer1.0-plugins-base gstreamer1.0-plugins-good \
             gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly (the bedrud-recording package depends on them)",
        )
    }
}

/// Doctor creates nothing: a folder not there yet is judged by the first parent that is.
fn writable(check: &'static str, dir: &Path, fix: &str) -> Finding {
    let existing = dir
        .ancestors()
        .find(|d| d.exists())
        .unwrap_or(Path::new("/"));
    let probe = nix::unistd::access(existing, nix::unistd::AccessFlags::W_OK);
    let what = if existing == dir {
        format!("{} is writable", dir.display())
    } else {
        format!("{} can be created in {}", dir.display(), existing.display())
    };
    match probe {
        Ok(()) => finding(check, Level::Ok, what, ""),
        Err(e) => finding(
            check,
            Level::Fail,
            format!("{}: {e}", existing.display()),
            fix,
        ),
    }
}

fn egress_tmp(config: &Config) -> Finding {
    let check = "Egress temp folder";
    if private_home::available() {
        return writable(
            check,
            &super::egress_tmp(config),
            "Make <server.dataDir>/egress-tmp writable",
        );
    }
    writable(
        check,
        Path::new(private_home::EGRESS_TMP),
        "egress 1.14.0 always writes there: under systemd the bedrud-recording package's unit \
         settings provide it; otherwise create it owned by bedrud's user",
    )
}

#[derive(Debug, thiserror::Error)]
enum RunError {
    #[error("not installed")]
    NotFound,
    #[error("{0}")]
    Failed(String),
}

/// Runs a command with an empty environment and a time limit; its stdout on success.
async fn run(program: &str, args: &[&str]) -> Result<String, RunError> {
    let cmd = tokio::process::Command::new(program)
        .args(args)
        .env_clear()
        .env("PATH", crate::supervisor::CHILD_PATH)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(15), cmd)
        .await
        .map_err(|_| RunError::Failed("no answer within 15 s".into()))?
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => RunError::NotFound,
            _ => RunError::Failed(e.to_string()),
        })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(RunError::Failed(format!(
            "{}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ips(list: &[&str]) -> std::io::Result<Vec<IpAddr>> {
        Ok(list.iter().map(|ip| ip.parse().unwrap()).collect())
    }

    #[test]
    fn localhost_must_resolve_to_loopback_only() {
        let ok = localhost_finding(ips(&["::1", "127.0.0.1", "127.0.0.1"]));
        assert_eq!(ok.level, Level::Ok);
        assert_eq!(ok.cause, "`localhost` is 127.0.0.1, ::1");
        let missing = localhost_finding(Err(std::io::Error::other("Name or service not known")));
        let elsewhere = localhost_finding(ips(&["127.0.0.1", "192.0.2.7"]));
        let nothing = localhost_finding(ips(&[]));
        for f in [&missing, &elsewhere, &nothing] {
            assert_eq!(f.level, Level::Warn, "{}", f.cause);
            assert!(f.cause.contains("ERR_CONNECTION_REFUSED"), "{}", f.cause);
            assert!(f.fix.contains("/etc/hosts"), "{}", f.fix);
        }
        assert!(missing.cause.contains("Name or service not known"));
        assert!(elsewhere.cause.contains("192.0.2.7"), "{}", elsewhere.cause);
    }
}
