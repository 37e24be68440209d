//! A real S3-compatible server for the tests: versitygw (Apache-2.0, built by
//! scripts/install-versitygw.sh) with its posix backend, so every bucket is a folder and every
//! object a file the test can look at. Bound to 127.0.0.1 on a free port; its root credentials
//! reach it through the environment, never its command line.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{free_port, repo_root, Proc, PATIENCE, VERSITYGW};

pub const ACCESS_KEY: &str = "bedrud-test-access";
pub const SECRET_KEY: &str = "bedrud-test-s3-secret-0123456789";

pub struct Versity {
    /// `None` while stopped (see [`Versity::stop`]).
    proc: Option<Proc>,
    pub port: u16,
    /// The posix backend's root: `<root>/<bucket>/<key>`.
    pub root: PathBuf,
    sidecar: PathBuf,
    pub log: PathBuf,
}

/// The versitygw binary; fails with the install command when it is missing.
pub fn versitygw_bin() -> PathBuf {
    let bin = repo_root().join(format!(".tools/versitygw-{VERSITYGW}/versitygw"));
    assert!(
        bin.is_file(),
        "versitygw {VERSITYGW} (the S3 server of the S3 recording test) is not built in {}.\n\
         Build it with: scripts/install-versitygw.sh   (scripts/setup.sh does; needs Go)",
        bin.display()
    );
    bin
}

impl Versity {
    /// Starts versitygw on a free loopback port with its data under `dir`, and waits until it
    /// accepts connections.
    pub fn start(dir: &Path) -> Versity {
        let root = dir.join("objects");
        // Object metadata (content type, ETag) in a sidecar folder rather than extended
        // attributes, which not every test filesystem supports.
        // (not a name that starts with the root's: versitygw compares them as strings)
        let sidecar = dir.join("metadata");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&sidecar).unwrap();
        let mut s3 = Versity {
            proc: None,
            port: free_port(false),
            root,
            sidecar,
            log: dir.join("versitygw.log"),
        };
        s3.restart();
        s3
    }

    /// Kills the server: S3 down. Its objects stay on disk for [`Versity::restart`].
    pub fn stop(&mut self) {
        self.proc = None;
    }

    /// Starts the server (again) on the same port with the same objects, and waits until it
    /// accepts connections.
    pub fn restart(&mut self) {
        self.stop();
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(versitygw_bin())
            .args([
                "--port",
                &format!("127.0.0.1:{}", self.port),
                "posix",
                "--sidecar",
            ])
            .arg(&self.sidecar)
            .arg(&self.root)
            .env_clear()
            .env("ROOT_ACCESS_KEY_ID", ACCESS_KEY)
            .env("ROOT_SECRET_ACCESS_KEY", SECRET_KEY)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("cannot start versitygw");
        let mut proc = Proc(child);
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Ok(Some(st)) = proc.0.try_wait() {
                panic!(
                    "versitygw exited ({st}):\n{}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            assert!(start.elapsed() < PATIENCE, "versitygw not listening");
            std::thread::sleep(Duration::from_millis(50));
        }
        self.proc = Some(proc);
    }

    /// Creates `bucket`: with the posix backend a bucket is a folder in the root.
    pub fn create_bucket(&self, bucket: &str) {
        std::fs::create_dir(self.root.join(bucket)).unwrap();
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The file holding `key` in `bucket`.
    pub fn object(&self, bucket: &str, key: &str) -> PathBuf {
        self.root.join(bucket).join(key)
    }

    /// bedrud's `recording.s3` section for `bucket` (path style, as S3 look-alikes want).
    pub fn config(&self, bucket: &str, secret: &str) -> String {
        format!(
            "  s3:\n    endpoint: {}\n    region: us-east-1\n    bucket: {bucket}\n    \
             accessKey: {ACCESS_KEY}\n    secretKey: {secret}\n    forcePathStyle: true\n",
            self.endpoint()
        )
    }
}
