//! Shared test harness: runs the real `bedrud` binary against the real livekit-server, each test
//! in its own temp folder with its own ports, and gives the tests ways to look at what happened.
//! API tests that never reach LiveKit run bedrud in-process instead ([`TestApp`], in `in_process`).
#![allow(dead_code)] // each test binary uses a different part of the harness

pub mod audio;
pub mod egress;
mod in_process;
pub mod procs;
pub mod pulseaudio;
pub mod s3;
pub mod video;
pub mod webhooks;

#[allow(unused_imports)] // only the API test binaries use it
pub use in_process::TestApp;

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Liveness bound for waits: a wait that takes this long means something is broken.
/// It is not a performance expectation (those live in the benchmarks).
pub const PATIENCE: Duration = Duration::from_secs(90);

pub const SECRET: &str = "test-secret-0123456789abcdef0123456789";

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The folder of the egress worker scripts/install-egress.sh builds; bedrud finds it on $PATH.
pub fn egress_dir() -> PathBuf {
    let dir = repo_root().join(format!(".tools/egress-{EGRESS}"));
    assert!(
        dir.join("egress").is_file(),
        "the LiveKit Egress worker {EGRESS} is not built in {}.\n\
         Build it with: scripts/install-egress.sh   (scripts/test.sh does)",
        dir.display()
    );
    dir
}

/// The egress worker itself (in [`egress_dir`]).
pub fn egress_bin() -> PathBuf {
    egress_dir().join("egress")
}

/// A shell line that runs the egress worker (`$0`, config `$1`) the way the tests that start it
/// themselves do: egress writes every recording first under the fixed folder
/// `/home/egress/tmp/<egress id>` (not configurable in v1.14.0), so the worker runs in a mount
/// namespace of its own with a tmpfs over `/home`, which gives it that folder without touching
/// the host's `/home` (nor the view of it the other tests in the network namespace have).
/// `/home/egress` is also its `HOME` (Chromium writes its caches and crash folder there).
pub const PRIVATE_EGRESS_TMP: &str = "mount -t tmpfs -o mode=0755 bedrud-egress-test /home \
     && mkdir -p /home/egress/tmp && exec \"$0\" --config \"$1\"";

/// The real livekit-server at `version`; fails with the install command when it is missing.
pub fn livekit_bin(version: &str) -> PathBuf {
    let p = repo_root()
        .join(".tools/livekit")
        .join(version)
        .join("livekit-server");
    assert!(
        p.is_file(),
        "livekit-server {version} is not installed at {}.\n\
         Install it with: scripts/install-livekit.sh {version}   (needs Go >= 1.26; scripts/test.sh does this)",
        p.display()
    );
    p
}

/// The livekit-server the packages carry (`LIVEKIT_VERSION` in scripts/livekit-version.sh, the
/// one place the pins live).
pub const LIVEKIT: &str = pin("LIVEKIT_VERSION");
/// The older release the tests also start (`LIVEKIT_OLD_VERSION`).
pub const LIVEKIT_OLD: &str = pin("LIVEKIT_OLD_VERSION");
/// The LiveKit Egress worker scripts/install-egress.sh builds (`EGRESS_VERSION`).
pub const EGRESS: &str = pin("EGRESS_VERSION");
/// versitygw, the S3 server scripts/install-versitygw.sh builds (`VERSITYGW_VERSION`).
pub const VERSITYGW: &str = pin("VERSITYGW_VERSION");

/// The value of `NAME=` at the start of a line of scripts/livekit-version.sh, read at compile time.
const fn pin(name: &str) -> &'static str {
    let script = include_str!("../../scripts/livekit-version.sh").as_bytes();
    let name = name.as_bytes();
    let mut at = 0;
    while at + name.len() < script.len() {
        let line_start = at == 0 || script[at - 1] == b'\n';
        if line_start && script[at + name.len()] == b'=' && same(script, at, name) {
            let start = at + name.len() + 1;
            let mut end = start;
            while end < script.len() && script[end] != b'\n' {
                end += 1;
            }
            let (line, _) = script.split_at(end);
            let (_, value) = line.split_at(start);
            match std::str::from_utf8(value) {
                Ok(v) => return v,
                Err(_) => panic!("scripts/livekit-version.sh is not UTF-8"),
            }
        }
        at += 1;
    }
    panic!("scripts/livekit-version.sh does not set this version")
}

const fn same(haystack: &[u8], at: usize, needle: &[u8]) -> bool {
    let mut i = 0;
    while i < needle.len() {
        if haystack[at + i] != needle[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// Ports that no other test in this process has been given and that are free right now.
pub fn free_port(udp: bool) -> u16 {
    static GIVEN: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    let given = GIVEN.get_or_init(Default::default);
    loop {
        let port = if udp {
            UdpSocket::bind("0.0.0.0:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        } else {
            TcpListener::bind("0.0.0.0:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        };
        // A port must be free for both protocols: LiveKit's TCP and UDP ports share numbers.
        let other_free = if udp {
            TcpListener::bind(("0.0.0.0", port)).is_ok()
        } else {
            UdpSocket::bind(("0.0.0.0", port)).is_ok()
        };
        if other_free && given.lock().unwrap().insert(port) {
            return port;
        }
    }
}

/// The ports one bedrud + LiveKit pair listens on.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    pub api: u16,
    pub livekit: u16,
    pub rtc_tcp: u16,
    pub turn_udp: u16,
    pub turn_tls: u16,
}

impl Ports {
    pub fn new() -> Ports {
        Ports {
            api: free_port(false),
            livekit: free_port(false),
            rtc_tcp: free_port(false),
            turn_udp: free_port(true),
            turn_tls: free_port(false),
        }
    }
}

/// A LiveKit config of the test's own (static-config and external-mode tests): API key `key`,
/// the ports of `p`, candidates on `lo` only, and UDP TURN so that clients are handed only
/// `turn:127.0.0.1:<port>` (never a public STUN server).
pub fn livekit_yaml(p: &Ports, key: &str) -> String {
    format!(
        "port: {}\nkeys:\n  {key}: {SECRET}\nrtc:\n  tcp_port: {}\n  port_range_start: 20000\n  port_range_end: 29999\n\
         \x20 node_ip: 127.0.0.1\n  use_external_ip: false\n  enable_loopback_candidate: true\n  interfaces:\n    includes: [lo]\n\
         turn:\n  enabled: true\n  udp_port: {}\n",
        p.livekit, p.rtc_tcp, p.turn_udp
    )
}

/// A folder for one test: the config file, bedrud's data folder and its own `$TMPDIR`.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
    pub ports: Ports,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("tmp")).unwrap();
        Sandbox {
            dir,
            ports: Ports::new(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn tmp(&self) -> PathBuf {
        self.path().join("tmp")
    }

    pub fn config_path(&self) -> PathBuf {
        self.path().join("config.yaml")
    }

    /// `bedrud doctor --json` on this sandbox's config, run by `cmd` (the binary, or a wrapper
    /// that ends by running it) with nothing in its environment but `path` as `PATH`, the
    /// sandbox's `TMPDIR` and `envs`: (exit success, findings).
    pub fn doctor_with(
        &self,
        mut cmd: Command,
        path: &str,
        envs: &[(&str, &str)],
    ) -> (bool, Vec<Value>) {
        cmd.args(["doctor", "--json", "--config"])
            .arg(self.config_path())
            .env_clear()
            .env("PATH", path)
            .env("TMPDIR", self.tmp())
            .envs(envs.iter().copied())
            .stdin(Stdio::null());
        let out = cmd.output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let findings: Vec<Value> = serde_json::from_str(&stdout).unwrap_or_else(|e| {
            panic!(
                "doctor --json printed no JSON ({e}): {stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (out.status.success(), findings)
    }

    /// [`Sandbox::doctor_with`] the bedrud binary and the system's `PATH`.
    pub fn doctor(&self) -> Vec<Value> {
        let bedrud = Command::new(env!("CARGO_BIN_EXE_bedrud"));
        self.doctor_with(bedrud, "/usr/bin:/bin", &[]).1
    }

    /// A loopback-only embedded config with short supervision timings; `extra` adds or
    /// overrides `livekit:` keys (indented by two spaces) and may add whole sections.
    pub fn embedded_config(&self, livekit_version: &str, extra_livekit: &str) -> String {
        let p = self.ports;
        format!(
            "server:\n  bindAddress: 127.0.0.1\n  port: {api}\n  dataDir: {data}\n\
             livekit:\n  binaryPath: {bin}\n  apiKey: APItest\n  apiSecret: {SECRET}\n  nodeIP: 127.0.0.1\n\
             \x20 port: {lk}\n  rtcTcpPort: {tcp}\n  turnUdpPort: {turn}\n  turnTlsPort: {tls}\n\
             \x20 rtcPortRangeStart: 20000\n  rtcPortRangeEnd: 29999\n  rtcInterfaces: [lo]\n\
             \x20 restartDelay: 100ms\n  restartDelayMax: 2s\n  stopGracePeriod: 3s\n{extra_livekit}",
            api = p.api,
            data = self.path().join("data").display(),
            bin = livekit_bin(livekit_version).display(),
            lk = p.livekit,
            tcp = p.rtc_tcp,
            turn = p.turn_udp,
            tls = p.turn_tls,
        )
    }

    pub fn write_config(&self, text: &str) -> PathBuf {
        let p = self.config_path();
        std::fs::write(&p, text).unwrap();
        p
    }

    /// `bedrud-livekit-*.yaml` files in this sandbox's `$TMPDIR`.
    pub fn generated_files(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(self.tmp())
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                let n = p.file_name().unwrap().to_string_lossy();
                n.starts_with("bedrud-livekit-") && n.ends_with(".yaml")
            })
            .collect();
        v.sort();
        v
    }

    /// Starts `bedrud serve --config <sandbox config>` with a minimal environment.
    pub fn start(&self, envs: &[(&str, &str)]) -> Bedrud {
        self.start_with_tls(envs, false)
    }

    /// As `start`, for a config with `server.enableTLS: true` (the API speaks HTTPS).
    pub fn start_with_tls(&self, envs: &[(&str, &str)], tls: bool) -> Bedrud {
        let config = self.config_path();
        let args = ["serve", "--config", config.to_str().unwrap()];
        Bedrud::spawn(&args, &self.tmp(), envs, self.ports.api, tls)
    }
}

/// A running `bedrud` process with its stderr captured.
pub struct Bedrud {
    pub child: Child,
    pub api_port: u16,
    pub tls: bool,
    log: Arc<Mutex<String>>,
    /// Set once bedrud's stderr has ended (every line is in `log`).
    log_done: Arc<std::sync::atomic::AtomicBool>,
    /// The `--config` it runs with, for commands run beside it (`user create-admin`).
    config: Option<PathBuf>,
    /// An admin's access token, made on first need: `/ready` shows details to admins only.
    admin: Mutex<Option<String>>,
}

impl Bedrud {
    pub fn spawn(
        args: &[&str],
        tmp: &Path,
        envs: &[(&str, &str)],
        api_port: u16,
        tls: bool,
    ) -> Bedrud {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_bedrud"));
        cmd.args(args)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("TMPDIR", tmp)
            .env("BEDRUD_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("cannot start the bedrud binary");
        let log = Arc::new(Mutex::new(String::new()));
        let sink = log.clone();
        let log_done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let done = log_done.clone();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
            done.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        let config = args
            .iter()
            .position(|a| *a == "--config")
            .and_then(|i| args.get(i + 1))
            .map(PathBuf::from);
        Bedrud {
            child,
            api_port,
            tls,
            log,
            log_done,
            config,
            admin: Mutex::new(None),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn logs(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    pub fn url(&self, path: &str) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}{path}", self.api_port)
    }

    /// `GET /ready` as an admin sees it (with LiveKit's details under `livekit`): the status
    /// code and JSON body, or `None` while nothing answers.
    pub fn ready(&self) -> Option<(u16, Value)> {
        if self.config.is_none() {
            return get_json(&self.url("/ready"));
        }
        // Until the admin exists, nothing is reported: a body without the details would be
        // mistaken for a bedrud that has none.
        let admin = self.admin_token()?;
        get_json_as(&self.url("/ready"), Some(&admin))
    }

    /// `GET /ready` with `token`'s bearer.
    pub fn ready_as(&self, token: &str) -> (u16, Value) {
        get_json_as(&self.url("/ready"), Some(token)).expect("bedrud does not answer")
    }

    /// `GET /ready` as anyone sees it.
    pub fn ready_anonymous(&self) -> Option<(u16, Value)> {
        get_json(&self.url("/ready"))
    }

    /// An access token of a bedrud admin, created once with `bedrud user create-admin` beside
    /// the running daemon (after its API answers: the database is migrated by then).
    pub fn admin_token(&self) -> Option<String> {
        let mut cached = self.admin.lock().unwrap();
        if cached.is_none() {
            get_status(&self.url("/health")).filter(|s| *s == 200)?;
            let config = self.config.as_ref()?;
            let mut cli = Command::new(env!("CARGO_BIN_EXE_bedrud"))
                .args(["user", "create-admin", "--email", HARNESS_ADMIN, "--config"])
                .arg(config)
                .env_clear()
                .env("PATH", "/usr/local/bin:/usr/bin:/bin")
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .ok()?;
            cli.stdin
                .take()?
                .write_all(format!("{HARNESS_PASSWORD}\n").as_bytes())
                .ok()?;
            cli.wait().ok()?.success().then_some(())?;
            let body = serde_json::json!({"email": HARNESS_ADMIN, "password": HARNESS_PASSWORD});
            let mut resp = agent()
                .post(&self.url("/api/auth/login"))
                .send_json(&body)
                .ok()?;
            (resp.status() == 200).then_some(())?;
            let r: Value = resp.body_mut().read_json().ok()?;
            *cached = Some(r["accessToken"].as_str()?.to_string());
        }
        cached.clone()
    }

    /// Waits for `/ready` to answer 200 and returns its body.
    pub fn wait_ready(&mut self) -> Value {
        self.wait_for("/ready to answer 200", |b| match b.ready() {
            Some((200, body)) => Some(body),
            _ => None,
        })
    }

    /// Polls `check` until it returns `Some`, failing with bedrud's log if it never does or if
    /// bedrud exits meanwhile.
    pub fn wait_for<T>(&mut self, what: &str, mut check: impl FnMut(&Bedrud) -> Option<T>) -> T {
        let start = Instant::now();
        loop {
            if let Some(v) = check(self) {
                return v;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "bedrud exited ({status}) while waiting for {what}; log:\n{}",
                    self.logs()
                );
            }
            assert!(
                start.elapsed() < PATIENCE,
                "gave up waiting for {what}; log:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The pid of the LiveKit process bedrud currently runs.
    pub fn livekit_pid(&self) -> u32 {
        let (_, body) = self.ready().expect("bedrud does not answer");
        body["livekit"]["pid"]
            .as_u64()
            .expect("no LiveKit pid in /ready") as u32
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid() as i32), sig).unwrap();
    }

    /// Waits for bedrud to exit on its own, and for its last log lines to be read.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                while !self.log_done.load(std::sync::atomic::Ordering::SeqCst)
                    && start.elapsed() < PATIENCE
                {
                    std::thread::sleep(Duration::from_millis(10));
                }
                return status;
            }
            assert!(
                start.elapsed() < PATIENCE,
                "bedrud did not exit; log:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, as `systemctl stop` sends, then waits for the exit.
    pub fn terminate(&mut self) -> ExitStatus {
        self.signal(nix::sys::signal::Signal::SIGTERM);
        self.wait_exit()
    }
}

impl Api for Bedrud {
    fn url(&self, path: &str) -> String {
        Bedrud::url(self, path)
    }
}

/// The JSON API of a running bedrud — a real process ([`Bedrud`]) or in-process ([`TestApp`]).
pub trait Api {
    fn url(&self, path: &str) -> String;

    /// A JSON API call on this bedrud: (status, body).
    fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        call(method, &self.url(path), token, body.as_ref())
    }

    /// Registers an account for `email`; returns (access token, refresh token, user id).
    fn register(&self, email: &str) -> (String, String, String) {
        let name = email.split('@').next().unwrap();
        let body =
            serde_json::json!({"email": email, "password": "correct horse battery", "name": name});
        let (st, r) = self.call("POST", "/api/auth/register", None, Some(body));
        assert_eq!(st, 201, "{r}");
        let field = |k: &str| r[k].as_str().unwrap().to_string();
        (
            field("accessToken"),
            field("refreshToken"),
            r["user"]["id"].as_str().unwrap().to_string(),
        )
    }

    /// `GET /api/room/{room}/recordings` as `token`, which must be allowed: the list.
    fn room_recordings(&self, token: &str, room: &str) -> Vec<Value> {
        let path = format!("/api/room/{room}/recordings");
        let (st, list) = self.call("GET", &path, Some(token), None);
        assert_eq!(st, 200, "{list}");
        list["recordings"].as_array().unwrap().clone()
    }
}

impl Drop for Bedrud {
    fn drop(&mut self) {
        // A failed test must not leave a daemon behind; LiveKit follows it (PDEATHSIG).
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The admin account the harness makes to read `/ready`'s details.
pub const HARNESS_ADMIN: &str = "harness-admin@bedrud.test";
const HARNESS_PASSWORD: &str = "harness admin password";

/// How long the tests' HTTP client waits for one answer: longer than bedrud's own longest call
/// upstream (20 s to egress), so that a slow but working answer on a loaded machine is no
/// failure. 5 s was too short: a recording start with three egress stacks and two busy loops
/// beside it did not answer in time.
const ANSWER_WITHIN: Duration = Duration::from_secs(30);

/// An HTTP client for loopback test servers; it trusts self-signed test certificates.
fn agent() -> ureq::Agent {
    let tls = ureq::tls::TlsConfig::builder()
        .disable_verification(true)
        .build();
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(ANSWER_WITHIN))
        .tls_config(tls)
        .build()
        .into()
}

/// `GET url` → (status, JSON body); `None` when nothing answers.
pub fn get_json(url: &str) -> Option<(u16, Value)> {
    get_json_as(url, None)
}

/// `GET url` with an optional bearer token → (status, JSON body); `None` when nothing answers.
pub fn get_json_as(url: &str, bearer: Option<&str>) -> Option<(u16, Value)> {
    let mut req = agent().get(url);
    if let Some(b) = bearer {
        req = req.header("Authorization", &format!("Bearer {b}"));
    }
    let mut resp = req.call().ok()?;
    let status = resp.status().as_u16();
    let body = resp.body_mut().read_json::<Value>().unwrap_or(Value::Null);
    Some((status, body))
}

/// `GET url` → status code only.
pub fn get_status(url: &str) -> Option<u16> {
    agent().get(url).call().ok().map(|r| r.status().as_u16())
}

/// A token signed with the test keys that lets `identity` join `room` at LiveKit directly, as
/// a participant bedrud did not admit (the recording tests' tone publishers).
pub fn livekit_token(identity: &str, room: &str) -> String {
    livekit_api::access_token::AccessToken::with_api_key("APItest", SECRET)
        .with_identity(identity)
        .with_grants(livekit_api::access_token::VideoGrants {
            room_join: true,
            room: room.into(),
            ..Default::default()
        })
        .to_jwt()
        .unwrap()
}

/// Whether `pid` is a live process (a zombie counts as gone: it no longer runs).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat.rsplit(") ").next().and_then(|s| s.chars().next());
            state != Some('Z') && state != Some('X')
        }
        Err(_) => false,
    }
}

/// Waits until `pid` no longer runs.
pub fn wait_gone(pid: u32, what: &str) {
    let start = Instant::now();
    while alive(pid) {
        assert!(
            start.elapsed() < PATIENCE,
            "{what} (pid {pid}) is still running"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Every running process whose `/proc/PID/{file}` (`cmdline`, `environ`) passes `test`.
pub fn processes_where(file: &str, test: impl Fn(&str) -> bool) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| alive(*pid))
        .filter(|pid| {
            let text = std::fs::read(format!("/proc/{pid}/{file}")).unwrap_or_default();
            test(&String::from_utf8_lossy(&text))
        })
        .collect()
}

/// Every running process whose command line or environment (`file`) names `needle`.
pub fn processes_with(file: &str, needle: &str) -> Vec<u32> {
    processes_where(file, |text| text.contains(needle))
}

/// Every running livekit-server whose command line mentions `needle`.
pub fn livekit_processes_mentioning(needle: &str) -> Vec<u32> {
    processes_where("cmdline", |cmd| {
        cmd.contains("livekit-server") && cmd.contains(needle)
    })
}

/// `cmd` as found on `$PATH`.
pub fn which(cmd: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(cmd))
        .find(|c| c.is_file())
}

pub fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

/// A self-signed certificate for `names`, written as PEM files into `dir`.
pub fn self_signed(dir: &Path, names: &[&str]) -> (PathBuf, PathBuf) {
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    let cert = rcgen::generate_simple_self_signed(names).unwrap();
    let (c, k) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&c, cert.cert.pem()).unwrap();
    std::fs::write(&k, cert.signing_key.serialize_pem()).unwrap();
    (c, k)
}

/// A JSON API call: method, URL, optional bearer token and body → (status, JSON body).
pub fn call(method: &str, url: &str, bearer: Option<&str>, body: Option<&Value>) -> (u16, Value) {
    call_with(
        method,
        url,
        &[("Authorization", bearer.map(|b| format!("Bearer {b}")))],
        body.map(|b| b.to_string().into_bytes()),
    )
}

/// Like `call`, with raw headers and body bytes.
pub fn call_with(
    method: &str,
    url: &str,
    headers: &[(&str, Option<String>)],
    body: Option<Vec<u8>>,
) -> (u16, Value) {
    let mut req = ureq::http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        if let Some(v) = v {
            req = req.header(*k, v);
        }
    }
    let req = req.header("Content-Type", "application/json");
    let result = match body {
        Some(b) => agent().run(req.body(b).unwrap()),
        None => agent().run(req.body(()).unwrap()),
    };
    let mut resp = result.unwrap_or_else(|e| panic!("{method} {url} failed: {e}"));
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    let json = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, json)
}

/// `GET` with a bearer token and optionally a `Range` header → (status, headers, body bytes):
/// a recording's download.
pub fn get_bytes(
    url: &str,
    token: &str,
    range: Option<&str>,
) -> (u16, ureq::http::HeaderMap, Vec<u8>) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let mut req = agent
        .get(url)
        .header("Authorization", &format!("Bearer {token}"));
    if let Some(r) = range {
        req = req.header("Range", r);
    }
    let mut resp = req.call().unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp
        .body_mut()
        .with_config()
        .limit(512 * 1024 * 1024)
        .read_to_vec()
        .unwrap();
    (status, headers, body)
}

/// The claims of a JWT, read without checking its signature (the tests check what was signed).
pub fn jwt_claims(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("not a JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// A real LiveKit participant: tests/participant/participant.py (the Python `livekit` SDK with
/// its native WebRTC engine), reporting what happens to it as JSON lines.
pub struct Participant {
    child: Child,
    stdin: Option<std::process::ChildStdin>,
    events: Arc<Mutex<Vec<Value>>>,
    stderr: Arc<Mutex<String>>,
}

/// The Python that has the `livekit` package (scripts/install-python.sh makes .tools/venv).
pub fn python() -> PathBuf {
    let p = std::env::var_os("BEDRUD_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".tools/venv/bin/python"));
    assert!(
        p.is_file(),
        "no Python with the livekit package at {}: run scripts/install-python.sh (scripts/test.sh does)",
        p.display()
    );
    p
}

impl Participant {
    pub fn join(url: &str, token: &str, extra: &[&str]) -> Participant {
        Participant::join_with_env(url, token, extra, &[])
    }

    /// As `join`, with `envs` added to its (otherwise empty) environment, e.g. `SSL_CERT_FILE`
    /// for a test CA: the SDK's native signal client reads the system's trusted roots.
    pub fn join_with_env(
        url: &str,
        token: &str,
        extra: &[&str],
        envs: &[(&str, &Path)],
    ) -> Participant {
        let mut child = Command::new(python())
            .arg(repo_root().join("tests/participant/participant.py"))
            .args(["--url", url, "--token", token])
            .args(extra)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .envs(envs.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot start the participant");
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = events.clone();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    sink.lock().unwrap().push(v);
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let err_sink = stderr.clone();
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let mut s = err_sink.lock().unwrap();
                if s.len() < 64 * 1024 {
                    s.push_str(&line);
                    s.push('\n');
                }
            }
        });
        let stdin = child.stdin.take();
        Participant {
            child,
            stdin,
            events,
            stderr,
        }
    }

    pub fn events(&self) -> Vec<Value> {
        self.events.lock().unwrap().clone()
    }

    /// Waits for an event named `name` for which `matches` holds, and returns it.
    pub fn wait_event(&self, name: &str, matches: impl Fn(&Value) -> bool) -> Value {
        let start = Instant::now();
        loop {
            if let Some(e) = self
                .events()
                .into_iter()
                .find(|e| e["event"] == name && matches(e))
            {
                return e;
            }
            assert!(
                start.elapsed() < PATIENCE,
                "participant never reported {name}; events: {:?}\nstderr:\n{}",
                self.events(),
                self.stderr.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn has_event(&self, name: &str) -> bool {
        self.events().iter().any(|e| e["event"] == name)
    }

    pub fn send(&mut self, command: &str) {
        use std::io::Write;
        let stdin = self.stdin.as_mut().expect("stdin closed");
        writeln!(stdin, "{command}").unwrap();
        stdin.flush().unwrap();
    }

    pub fn wait_exit(&mut self) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(start.elapsed() < PATIENCE, "participant did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Participant {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TLS terminator in front of LiveKit (socat), with a self-signed certificate, as an
/// administrator's reverse proxy would be.
pub struct TlsProxy {
    child: std::process::Child,
    pub port: u16,
}

impl TlsProxy {
    pub fn start(dir: &std::path::Path, upstream: u16) -> TlsProxy {
        let (cert, key) = self_signed(dir, &["lk.bedrud.test", "127.0.0.1"]);
        let port = free_port(false);
        let socat = ["/usr/bin/socat", "/bin/socat"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .expect("socat is not installed: apt-get install socat (scripts/setup.sh installs it)");
        let listen = format!(
            "OPENSSL-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork,cert={},key={},verify=0",
            cert.display(),
            key.display()
        );
        let child = Command::new(socat)
            .args([listen, format!("TCP:127.0.0.1:{upstream}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        TlsProxy { child, port }
    }
}

impl Drop for TlsProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Real WebRTC clients offer every non-loopback address they find. Outside a private network
/// namespace that would be the host's own network, so refuse to run there.
pub fn require_private_network(test: &str) {
    let foreign: Vec<String> = if_addrs::get_if_addrs()
        .unwrap()
        .into_iter()
        .filter(|i| {
            let ip = i.ip();
            let link_local =
                matches!(ip, std::net::IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80);
            let ours = matches!(ip, std::net::IpAddr::V4(v4) if v4.octets()[..3] == [10, 200, 0]);
            !(ip.is_loopback() || link_local || ours)
        })
        .map(|i| format!("{} {}", i.name, i.ip()))
        .collect();
    assert!(
        foreign.is_empty(),
        "the {test} tests must run in a private network namespace, but this one has {foreign:?}.\n\
         Run them with: scripts/netns-run.sh cargo test --test {test}   (scripts/test.sh does)"
    );
}

/// A bedrud with embedded LiveKit (the sandbox config plus `extra`), already ready.
pub fn ready_bedrud(extra: &str) -> (Bedrud, Sandbox) {
    let sb = Sandbox::new();
    sb.write_config(&(sb.embedded_config(LIVEKIT, "") + extra));
    let mut b = sb.start(&[]);
    b.wait_ready();
    (b, sb)
}

/// Mutes `identity`'s microphone as `token`'s holder. LiveKit lists a track a few milliseconds
/// after the client sees it published; until then the answer is 404 "no microphone track",
/// which is the answer a moderator would get too, so that one is waited out.
pub fn mute_when_listed(b: &mut Bedrud, room: &str, identity: &str, token: &str) -> Value {
    let url = b.url(&format!("/api/room/{room}/mute/{identity}"));
    b.wait_for("LiveKit to list the microphone track", |_| {
        match call("POST", &url, Some(token), None) {
            (200, r) => Some(r),
            (404, r)
                if r["error"]
                    .as_str()
                    .unwrap_or("")
                    .contains("no microphone track") =>
            {
                None
            }
            (st, r) => panic!("mute answered {st}: {r}"),
        }
    })
}

/// A livekit-server the test runs itself (external mode, clusters, benchmarks), with an empty
/// environment and its output discarded; killed when dropped.
pub struct LiveKitProcess(Child);

impl LiveKitProcess {
    pub fn start(config: &Path) -> LiveKitProcess {
        let child = Command::new(livekit_bin(LIVEKIT))
            .arg("--config")
            .arg(config)
            .env_clear()
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start livekit-server");
        LiveKitProcess(child)
    }

    /// Kills it now (a node dying mid-meeting) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for LiveKitProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Sends only the head of a POST with `Expect: 100-continue` (and `Authorization: auth` when
/// given) and returns the final answer: a server that refuses the body from its length must
/// answer without asking for it.
pub fn post_expecting_continue(port: u16, path: &str, auth: &str, len: usize) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {auth}\r\nContent-Type: application/json\r\n\
         Content-Length: {len}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    std::io::Read::read_to_string(&mut s, &mut answer).unwrap();
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, answer)
}

/// A new, empty database on the test PostgreSQL (`scripts/postgres.sh`), named `<prefix>_<uuid>`;
/// returns its URL. Fails saying how to start the server when it is not running.
pub fn fresh_pg_database(prefix: &str) -> String {
    let name = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
    let out = Command::new(repo_root().join("scripts/postgres.sh"))
        .args(["create-db", &name])
        .output()
        .expect("scripts/postgres.sh");
    assert!(
        out.status.success(),
        "the test PostgreSQL is not available ({}); start it with scripts/postgres.sh start (scripts/test.sh does)",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap()
        .trim()
        .to_string()
}

/// Runs `cmd` with `input` on its standard input (a password, say), capturing its output;
/// fails the test, with what it printed, if it does not succeed.
pub fn run_with_input(cmd: &mut Command, input: &[u8]) -> std::process::Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A child process killed when the test ends, whatever happens.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A throwaway Redis on a free loopback port, keeping nothing on disk; with `password`, it is
/// set in a 0600 config file (as bedrud will), never on the command line.
pub fn redis(dir: &Path, password: Option<&str>) -> (Proc, u16) {
    let server = ["/usr/bin/redis-server", "/usr/local/bin/redis-server"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("redis-server is not installed: apt-get install redis-server (scripts/setup.sh installs it)");
    let port = free_port(false);
    let config = dir.join(format!("redis-{port}.conf"));
    let mut text = format!(
        "port {port}\nbind 127.0.0.1\nsave \"\"\nappendonly no\ndir {}\n",
        dir.display()
    );
    if let Some(p) = password {
        text += &format!("requirepass {p}\n");
    }
    std::fs::write(&config, text).unwrap();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600)).unwrap();
    let child = Command::new(server)
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // LiveKit and egress give up at start when Redis does not answer yet.
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < PATIENCE,
            "redis-server never listened on {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    (Proc(child), port)
}
