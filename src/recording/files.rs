//! Local recording files: egress writes each one under `<recordings dir>/.incoming/`, and
//! `process_recording` checks it and moves it into `<recordings dir>/` (the same filesystem, so
//! the move is a rename: a download never sees half a file).

use std::path::{Path, PathBuf};

/// The folder egress writes into (same host, same user).
pub fn incoming_dir(recordings: &Path) -> PathBuf {
    recordings.join(".incoming")
}

/// The file name of recording `id`: bedrud's own id, so nothing a user typed reaches a path.
pub fn file_name(id: &str) -> String {
    format!("{id}.mp4")
}

/// Creates the recordings folder and its `.incoming/` (0700: recordings are private).
pub fn prepare(recordings: &Path) -> std::io::Result<PathBuf> {
    crate::host::private::create_dir(recordings)?;
    let incoming = incoming_dir(recordings);
    crate::host::private::create_dir(&incoming)?;
    Ok(incoming)
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FileError {
    /// Egress reports a path bedrud does not see: the worker is on another host (external
    /// mode without S3, the seed's "FileURL is a local path" row).
    #[error(
        "egress wrote the recording to {0}, a path bedrud cannot reach (an egress worker on \
         another host writes to its own disk); fix: configure S3 storage (recording.s3) so \
         egress uploads where bedrud can read"
    )]
    Unreachable(String),
    #[error("the recording file {0} is empty")]
    Empty(String),
    #[error("the recording file {path} has {actual} bytes, egress reported {reported}")]
    SizeMismatch {
        path: String,
        actual: u64,
        reported: i64,
    },
    #[error("cannot move the recording into {0}: {1}")]
    Move(String, String),
}

/// Checks the finished file egress reported (`location`, `reported` bytes) and moves it from
/// `.incoming/` to `<recordings>/<name>`. Idempotent: when an earlier run already moved it,
/// the moved file is checked instead. Returns its size.
pub fn settle(
    recordings: &Path,
    name: &str,
    location: &str,
    reported: i64,
) -> Result<u64, FileError> {
    let incoming = incoming_dir(recordings).join(name);
    let done = recordings.join(name);
    let check = |path: &Path| -> Result<Option<u64>, FileError> {
        let Ok(meta) = std::fs::metadata(path) else {
            return Ok(None);
        };
        let actual = meta.len();
        if actual == 0 {
            return Err(FileError::Empty(path.display().to_string()));
        }
        if reported > 0 && actual != reported as u64 {
            return Err(FileError::SizeMismatch {
                path: path.display().to_string(),
                actual,
                reported,
            });
        }
        Ok(Some(actual))
    };
    if let Some(size) = check(&incoming)? {
        std::fs::rename(&incoming, &done)
            .map_err(|e| FileError::Move(done.display().to_string(), e.to_string()))?;
        return Ok(size);
    }
    if let Some(size) = check(&done)? {
        return Ok(size);
    }
    Err(FileError::Unreachable(location.to_string()))
}

/// Removes a recording's file; one already gone is fine.
pub fn remove(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settles_once_checks_size_and_names_an_unreachable_path() {
        let dir = tempfile::tempdir().unwrap();
        let incoming = prepare(dir.path()).unwrap();
        std::fs::write(incoming.join("a.mp4"), b"12345").unwrap();
        assert_eq!(settle(dir.path(), "a.mp4", "x", 5), Ok(5));
        assert!(dir.path().join("a.mp4").is_file());
        assert!(!incoming.join("a.mp4").exists());
        // Again (a repeated webhook): the moved file is checked, nothing changes.
        assert_eq!(settle(dir.path(), "a.mp4", "x", 5), Ok(5));

        std::fs::write(incoming.join("b.mp4"), b"123").unwrap();
        assert!(matches!(
            settle(dir.path(), "b.mp4", "x", 5),
            Err(FileError::SizeMismatch { actual: 3, .. })
        ));
        std::fs::write(incoming.join("c.mp4"), b"").unwrap();
        assert!(matches!(
            settle(dir.path(), "c.mp4", "x", 0),
            Err(FileError::Empty(_))
        ));
        let e = settle(dir.path(), "d.mp4", "/tmp/worker/d.mp4", 5).unwrap_err();
        assert!(
            e.to_string().contains("/tmp/worker/d.mp4") && e.to_string().contains("recording.s3")
        );
    }
}
