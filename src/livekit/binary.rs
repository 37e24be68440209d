//! Finds the `livekit-server` executable and asks it for its version.
//! Search order: `livekit.binaryPath`, the packaged `/usr/lib/bedrud/livekit-server`, then `$PATH`.

use std::fmt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

/// Where the .deb/.rpm install the LiveKit binary they carry.
pub const PACKAGED_PATH: &str = "/usr/lib/bedrud/livekit-server";

#[derive(Debug, thiserror::Error)]
pub enum BinaryError {
    #[error("livekit-server not found; looked in: {}. Install it (scripts/install-livekit.sh) or set livekit.binaryPath", looked.join(", "))]
    NotFound { looked: Vec<String> },
    #[error("{path} is not executable (mode {mode:o}); run: chmod +x {path}")]
    NotExecutable { path: String, mode: u32 },
    #[error("livekit.binaryPath {path} does not exist")]
    ConfiguredMissing { path: String },
    #[error("could not run {path} --version: {reason}")]
    VersionProbe { path: String, reason: String },
}

/// A livekit-server release number, as printed by `livekit-server --version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl Version {
    pub const fn new(major: u32, minor: u32, patch: u32) -> Self {
        Version {
            major,
            minor,
            patch,
        }
    }

    /// Reads `livekit-server version 1.13.5` (or a bare `1.13.5`, optionally with a `v`).
    pub fn parse_output(text: &str) -> Option<Version> {
        let word = text.split_whitespace().last()?;
        let word = word.trim_start_matches('v');
        let core = word.split(['-', '+']).next()?;
        let mut parts = core.split('.').map(|p| p.parse::<u32>().ok());
        Some(Version::new(
            parts.next()??,
            parts.next()??,
            parts.next().flatten().unwrap_or(0),
        ))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// Finds the binary on this host: configured path, packaged path, then `$PATH`.
pub fn locate(configured: Option<&Path>) -> Result<PathBuf, BinaryError> {
    let path_env = std::env::var("PATH").ok();
    locate_in(configured, Path::new(PACKAGED_PATH), path_env.as_deref())
}

/// The search itself, with the packaged location and `$PATH` passed in.
pub fn locate_in(
    configured: Option<&Path>,
    packaged: &Path,
    path_env: Option<&str>,
) -> Result<PathBuf, BinaryError> {
    if let Some(p) = configured {
        if !p.exists() {
            return Err(BinaryError::ConfiguredMissing {
                path: p.display().to_string(),
            });
        }
        return check_executable(p);
    }
    let mut looked = vec![packaged.display().to_string()];
    if packaged.exists() {
        return check_executable(packaged);
    }
    for dir in path_env
        .unwrap_or_default()
        .split(':')
        .filter(|d| !d.is_empty())
    {
        let candidate = Path::new(dir).join("livekit-server");
        if candidate.exists() {
            return check_executable(&candidate);
        }
        looked.push(candidate.display().to_string());
    }
    Err(BinaryError::NotFound { looked })
}

fn check_executable(p: &Path) -> Result<PathBuf, BinaryError> {
    let mode = std::fs::metadata(p)
        .map(|m| m.permissions().mode())
        .unwrap_or(0);
    if p.is_file() && mode & 0o111 != 0 {
        Ok(p.to_path_buf())
    } else {
        Err(BinaryError::NotExecutable {
            path: p.display().to_string(),
            mode: mode & 0o7777,
        })
    }
}

/// Runs `livekit-server --version` with an empty environment and a time limit.
pub async fn probe_version(binary: &Path) -> Result<Version, BinaryError> {
    let fail = |reason: String| BinaryError::VersionProbe {
        path: binary.display().to_string(),
        reason,
    };
    let run = tokio::process::Command::new(binary)
        .arg("--version")
        .env_clear()
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(15), run)
        .await
        .map_err(|_| fail("no answer within 15 s".into()))?
        .map_err(|e| fail(e.to_string()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    Version::parse_output(&text).ok_or_else(|| fail(format!("unexpected output {:?}", text.trim())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_version_line() {
        assert_eq!(
            Version::parse_output("livekit-server version 1.13.5\n"),
            Some(Version::new(1, 13, 5))
        );
        assert_eq!(
            Version::parse_output("v1.11.0-rc1"),
            Some(Version::new(1, 11, 0))
        );
        assert_eq!(Version::parse_output("garbage"), None);
        assert!(Version::new(1, 11, 0) < Version::new(1, 13, 2));
    }

    #[test]
    fn missing_binary_names_every_place_looked() {
        let dir = tempfile::tempdir().unwrap();
        let packaged = dir.path().join("lib/livekit-server");
        let err = locate_in(None, &packaged, Some(dir.path().to_str().unwrap())).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(&packaged.display().to_string()), "{msg}");
        assert!(
            msg.contains(&dir.path().join("livekit-server").display().to_string()),
            "{msg}"
        );
        assert!(msg.contains("livekit.binaryPath"), "{msg}");
    }

    #[test]
    fn packaged_location_comes_before_path() {
        let dir = tempfile::tempdir().unwrap();
        let packaged = dir.path().join("livekit-server");
        std::fs::write(&packaged, "").unwrap();
        std::fs::set_permissions(&packaged, std::fs::Permissions::from_mode(0o755)).unwrap();
        let found = locate_in(None, &packaged, Some("/usr/bin:/bin")).unwrap();
        assert_eq!(found, packaged);
    }

    #[test]
    fn non_executable_binary_is_reported_with_its_mode() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("livekit-server");
        std::fs::write(&p, "").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let packaged = dir.path().join("packaged");
        let msg = locate_in(Some(&p), &packaged, None)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("not executable") && msg.contains("644"),
            "{msg}"
        );
        let missing = dir.path().join("nope");
        let msg = locate_in(Some(&missing), &packaged, None)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("livekit.binaryPath") && msg.contains("does not exist"),
            "{msg}"
        );
    }
}
