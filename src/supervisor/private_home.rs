//! Gives the egress worker the folder it insists on. Egress v1.14.0 keeps its IPC sockets and
//! every recording in progress under the fixed path `/home/egress/tmp` (a Go constant,
//! `config.TmpDir`; its `tmp_dir` key is overwritten when a handler is launched). When bedrud
//! may create mount namespaces (it runs as root), the worker gets a namespace of its own in
//! which a small tmpfs covers `/home` and a folder of bedrud's is bound onto
//! `/home/egress/tmp`: the host's `/home` is neither read nor written, and recordings in
//! progress land on disk in bedrud's data folder rather than in memory.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::mount::{mount, MsFlags};
use nix::sched::{unshare, CloneFlags};
use nix::sys::stat::Mode;

/// Where egress expects its temp folder.
pub const EGRESS_TMP: &str = "/home/egress/tmp";

/// The mounts, with every path allocated before the fork (the child may not allocate).
#[derive(Debug)]
pub struct Mounts {
    source: CString,
}

impl Mounts {
    pub fn new(source: &Path) -> io::Result<Mounts> {
        let source = CString::new(source.as_os_str().as_bytes())
            .map_err(|_| io::Error::other("folder name holds a NUL byte"))?;
        Ok(Mounts { source })
    }

    /// Runs in the forked child: only system calls.
    pub fn apply(&self) -> io::Result<()> {
        unshare(CloneFlags::CLONE_NEWNS)?;
        // Nothing mounted here may propagate back to the host's namespace.
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_REC | MsFlags::MS_PRIVATE,
            None::<&str>,
        )?;
        mount(
            Some("bedrud-egress"),
            "/home",
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some("mode=0755,size=1m"),
        )?;
        let dir = Mode::from_bits_truncate(0o755);
        nix::unistd::mkdir("/home/egress", dir)?;
        nix::unistd::mkdir(EGRESS_TMP, dir)?;
        mount(
            Some(self.source.as_c_str()),
            EGRESS_TMP,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )?;
        Ok(())
    }
}

/// Whether this process may create the private namespace (mount namespaces need CAP_SYS_ADMIN;
/// bedrud asks for root rather than probing capabilities).
pub fn available() -> bool {
    nix::unistd::geteuid().is_root()
}
