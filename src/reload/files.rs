//! The config file and the TLS certificate/key, watched through `notify` (inotify on Linux).
//!
//! The folders holding the files are watched, not the files: editors and certbot replace a file
//! by renaming a new one over it, which a watch on the old file (its inode) would never see.
//! Changes come in bursts (write, chmod, rename; certificate then key), so a change is reported
//! once the files have been quiet for `DEBOUNCE`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::event::{EventKind, ModifyKind};
use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// How long the files must stay unchanged before a reload: long enough for an editor's save or
/// a certificate and its key written one after the other.
pub const DEBOUNCE: Duration = Duration::from_millis(300);

/// Watching a set of files until dropped.
pub struct Watched {
    paths: Vec<PathBuf>,
    events: mpsc::UnboundedReceiver<()>,
    _watcher: RecommendedWatcher,
}

impl Watched {
    pub fn start(paths: Vec<PathBuf>) -> notify::Result<Watched> {
        let targets: Vec<PathBuf> = paths.iter().map(|p| absolute(p)).collect();
        let (tx, events) = mpsc::unbounded_channel();
        let wanted = targets.clone();
        let mut watcher =
            notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
                let Ok(event) = res else { return };
                if is_change(&event.kind) && event.paths.iter().any(|p| wanted.contains(p)) {
                    let _ = tx.send(());
                }
            })?;
        let mut folders: Vec<&Path> = targets.iter().filter_map(|p| p.parent()).collect();
        folders.sort();
        folders.dedup();
        for folder in folders {
            watcher.watch(folder, RecursiveMode::NonRecursive)?;
        }
        Ok(Watched {
            paths,
            events,
            _watcher: watcher,
        })
    }

    /// The files as configured (compared to decide whether to watch anew after a reload).
    pub fn paths(&self) -> &[PathBuf] {
        &self.paths
    }
}

/// Resolves when a watched file changed and then stayed quiet for `DEBOUNCE`; never when
/// nothing is watched.
pub async fn changed(watched: &mut Option<Watched>) -> Option<()> {
    let Some(w) = watched else {
        return std::future::pending().await;
    };
    w.events.recv().await?;
    let mut quiet_from = Instant::now() + DEBOUNCE;
    loop {
        tokio::select! {
            more = w.events.recv() => {
                more?;
                quiet_from = Instant::now() + DEBOUNCE;
            }
            _ = tokio::time::sleep_until(quiet_from) => return Some(()),
        }
    }
}

/// Content or name changes; not reads (bedrud reading the files itself must not trigger
/// another reload) and not metadata (access times).
fn is_change(kind: &EventKind) -> bool {
    match kind {
        EventKind::Create(_) | EventKind::Remove(_) => true,
        EventKind::Modify(ModifyKind::Metadata(_)) => false,
        EventKind::Modify(_) => true,
        _ => false,
    }
}

/// Events name files by the watched folder's path joined with the file name, so a relative
/// config path is made absolute the same way.
fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn next(w: &mut Option<Watched>) -> bool {
        tokio::time::timeout(Duration::from_secs(5), changed(w))
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn an_edit_and_a_rename_over_the_file_are_seen_and_others_not() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.yaml");
        std::fs::write(&config, "a: 1\n").unwrap();
        let mut w = Some(Watched::start(vec![config.clone()]).unwrap());

        // Another file in the same folder: nothing.
        std::fs::write(dir.path().join("other.yaml"), "x").unwrap();
        let quiet = tokio::time::timeout(DEBOUNCE * 3, changed(&mut w)).await;
        assert!(quiet.is_err(), "a change to another file was reported");

        // An in-place write (several syscalls) is one change.
        std::fs::write(&config, "a: 2\n").unwrap();
        std::fs::write(&config, "a: 3\n").unwrap();
        assert!(next(&mut w).await, "an in-place edit was not seen");

        // The editor's way: write a temporary file, rename it over the config.
        let tmp = dir.path().join(".config.yaml.swp");
        std::fs::write(&tmp, "a: 4\n").unwrap();
        std::fs::rename(&tmp, &config).unwrap();
        assert!(next(&mut w).await, "a rename over the file was not seen");

        // Reading the file is not a change.
        let _ = std::fs::read(&config).unwrap();
        let quiet = tokio::time::timeout(DEBOUNCE * 3, changed(&mut w)).await;
        assert!(quiet.is_err(), "reading the file was reported as a change");
    }
}
