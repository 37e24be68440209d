//! Folders and files only bedrud's own user may read (0700 / 0600), whatever the umask of the
//! shell or unit that started it: the data folder holds the database and generated secrets.

use std::fs::{DirBuilder, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Creates `dir` (and missing parents) if needed; a folder created here is made 0700 exactly
/// (the mode given at creation is reduced by the umask). An existing folder is left as it is:
/// its mode is the administrator's choice.
pub fn create_dir(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    std::fs::set_permissions(dir, Permissions::from_mode(0o700))
}

/// Creates an empty `file` with mode 0600 if it does not exist, so that whatever later opens it
/// (SQLite) starts from a private file; SQLite gives its -wal and -shm files the same mode.
pub fn create_file(file: &Path) -> io::Result<()> {
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(file)
    {
        Ok(_) => std::fs::set_permissions(file, Permissions::from_mode(0o600)),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The umask is process-wide and other tests run beside this one, so it stays as it is here
    // (0022 usually); tests/abuse.rs starts bedrud under umask 000.
    #[test]
    fn created_private() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b");
        create_dir(&dir).unwrap();
        create_file(&dir.join("db")).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("db")), 0o600);
    }
}
