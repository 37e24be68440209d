//! The packages under a real, booted systemd: a copy of a clean Debian root booted by
//! systemd-nspawn in its own private network, then the .deb installed, started, stopped, killed,
//! hung, upgraded and purged the way an administrator does it, with `apt-get` and `systemctl`
//! inside; the unit's sandbox checked on the running process itself; and the .rpm installed,
//! started, upgraded and erased by `rpm` inside such a container (docs/packaging.md says why
//! the root is Debian's). Figures are printed with --nocapture.

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::*;

/// Bound for one command run inside the container (an `apt-get install` included).
const COMMAND_BOUND: &str = "180";
/// Bound for the container's boot, and for its power-off at the end.
const BOOT_BOUND: Duration = Duration::from_secs(90);
const POWEROFF_BOUND: Duration = Duration::from_secs(30);
/// The watchdog timeout the test sets with a drop-in (the unit's 30 s would make the run long).
const TEST_WATCHDOG_SEC: u64 = 3;
/// `systemctl reload bedrud`: the unit's ExecReload= sends SIGHUP and bedrud answers with the
/// reload protocol; the test expects the reload to succeed with the same main process.
const RELOAD_SUPPORTED: bool = true;

/// A booted copy of the clean Debian root: systemd-nspawn runs the root's systemd as PID 1 in
/// new PID, mount, UTS, IPC and network namespaces (`--private-network`: nothing but its own
/// loopback). `--register=no --keep-unit`: there is no host systemd or bus to register with.
/// Dropping it powers the container off, and kills it if it does not go in time.
pub struct Booted {
    root: PathBuf,
    nspawn: Child,
    /// The container's systemd, as seen from the host.
    init: u32,
    console: PathBuf,
    _dir: tempfile::TempDir,
}

impl Booted {
    /// Boots a copy of `.tools/NAME` (scripts/debian-root.sh) with nothing but its own loopback.
    pub fn boot(name: &str) -> Booted {
        Booted::boot_with(name, &["--private-network".to_string()])
    }

    /// Boots a copy of `.tools/NAME` with `network` as nspawn's network options (e.g.
    /// `--network-interface=IF`, which implies `--private-network`).
    pub fn boot_with(name: &str, network: &[String]) -> Booted {
        assert!(
            nix::unistd::geteuid().is_root(),
            "the booted package tests run systemd-nspawn and must run as root"
        );
        let nspawn = tool("systemd-nspawn", "systemd-container");
        tool("nsenter", "util-linux");
        tool("timeout", "coreutils");
        let (dir, root) = copy_clean_root(name, "usr/lib/systemd/systemd");
        let console = dir.path().join("console.log");
        let log = std::fs::File::create(&console).unwrap();
        let mut cmd = Command::new(nspawn);
        // Should the test itself be killed (no Drop), nspawn gets SIGTERM, which it turns into a
        // halt of the container. The signal follows the spawning thread: the test's own.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
                nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM)
                    .map_err(std::io::Error::from)
            });
        }
        let child = cmd
            .args(["--register=no", "--keep-unit"])
            .args(network)
            .args(["--console=read-only", "-D"])
            .arg(&root)
            .arg("-b")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        // From here on, Drop ends the container whatever fails.
        let mut b = Booted {
            root,
            nspawn: child,
            init: 0,
            console,
            _dir: dir,
        };
        let start = Instant::now();
        while b.init == 0 {
            // nspawn's child becomes the container's init once it has exec'd systemd.
            if let Some(pid) = children(b.nspawn.id()).into_iter().find(|pid| {
                std::fs::read_to_string(format!("/proc/{pid}/comm"))
                    .ok()
                    .as_deref()
                    == Some("systemd\n")
            }) {
                b.init = pid;
                break;
            }
            let exited = b.nspawn.try_wait().unwrap();
            assert!(
                exited.is_none(),
                "systemd-nspawn exited ({exited:?}) before it started the container:\n{}",
                b.console_log()
            );
            assert!(
                start.elapsed() < BOOT_BOUND,
                "no container init:\n{}",
                b.console_log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        // is-system-running --wait returns once the boot is over: "running", or "degraded" if
        // some unit failed (listed, for the record, but it does not concern bedrud).
        // "offline" until systemd has opened its private socket.
        let mut state = String::new();
        while start.elapsed() < BOOT_BOUND && matches!(state.as_str(), "" | "offline" | "unknown") {
            std::thread::sleep(Duration::from_millis(50));
            let out = b.sh(&format!(
                "timeout {} systemctl is-system-running --wait",
                BOOT_BOUND.as_secs()
            ));
            state = String::from_utf8_lossy(&out.stdout).trim().to_string();
        }
        assert!(
            state == "running" || state == "degraded",
            "the container did not finish booting ({state}):\n{}",
            b.console_log()
        );
        if state == "degraded" {
            eprintln!(
                "booted: degraded: {}",
                b.sh_ok("systemctl --failed --no-pager")
            );
        }
        eprintln!("booted: container up in {:?}", start.elapsed());
        b
    }

    fn console_log(&self) -> String {
        std::fs::read_to_string(&self.console).unwrap_or_default()
    }

    pub fn path(&self, p: &str) -> PathBuf {
        self.root.join(p.trim_start_matches('/'))
    }

    pub fn read(&self, p: &str) -> String {
        std::fs::read_to_string(self.path(p)).unwrap_or_else(|e| panic!("{p}: {e}"))
    }

    /// Copies a package into the root's /var/tmp (/tmp is the container's own tmpfs) and
    /// returns its path as seen from inside.
    pub fn copy_in(&self, file: &Path) -> String {
        let inside = format!("/var/tmp/{}", file.file_name().unwrap().to_string_lossy());
        std::fs::copy(file, self.path(&inside)).unwrap();
        inside
    }

    /// Runs `script` with /bin/sh in all the container's namespaces, as its root, in a clean
    /// environment; bounded by COMMAND_BOUND.
    pub fn sh(&self, script: &str) -> Output {
        self.sh_within(COMMAND_BOUND, script)
    }

    /// [`Booted::sh`] with its own bound, in seconds.
    pub fn sh_within(&self, bound: &str, script: &str) -> Output {
        Command::new("timeout")
            .args(["--kill-after=5", bound, "nsenter", "-a", "-r", "-w"])
            .args(["-t", &self.init.to_string()])
            .args(["/usr/bin/env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin"])
            .args([
                "DEBIAN_FRONTEND=noninteractive",
                "LC_ALL=C.UTF-8",
                "SYSTEMD_PAGER=",
            ])
            .args(["/bin/sh", "-c", script])
            .output()
            .unwrap()
    }

    pub fn sh_ok(&self, script: &str) -> String {
        self.sh_ok_within(COMMAND_BOUND, script)
    }

    /// [`Booted::sh_ok`] with its own bound, in seconds.
    pub fn sh_ok_within(&self, bound: &str, script: &str) -> String {
        let out = self.sh_within(bound, script);
        assert!(
            out.status.success(),
            "`{script}` failed in the booted root:\n{}\n{}",
            text(&out),
            self.sh("journalctl -u bedrud --no-pager -n 60 -o short-monotonic")
                .stdout
                .escape_ascii()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs a program of the test's own file system (e.g. `ip`) in the container's network
    /// namespace only, as the host side sets up the container's link; fails the test if it fails.
    pub fn in_network(&self, program: &str, args: &[&str]) -> String {
        run_ok(
            Command::new("nsenter")
                .args(["-t", &self.init.to_string(), "-n", program])
                .args(args),
        )
    }

    /// The uid of a user of the root.
    pub fn uid(&self, user: &str) -> u32 {
        let passwd = self.read("/etc/passwd");
        passwd
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{user}:")))
            .and_then(|rest| rest.split(':').nth(1))
            .and_then(|uid| uid.parse().ok())
            .unwrap_or_else(|| panic!("no {user} user in /etc/passwd:\n{passwd}"))
    }

    /// One property of bedrud.service (`systemctl show -p`).
    pub fn show(&self, property: &str) -> String {
        self.sh_ok(&format!("systemctl show -p {property} --value bedrud"))
            .trim()
            .to_string()
    }

    pub fn main_pid(&self) -> u32 {
        self.show("MainPID").parse().unwrap()
    }

    /// The status line of `GET /ready` on `port`, from inside the container (bash's /dev/tcp:
    /// the minbase root has no HTTP client); "" when nothing answers.
    pub fn ready_status(&self, port: u16) -> String {
        let out = self.sh(&format!(
            "timeout 10 bash -c 'exec 3<>/dev/tcp/127.0.0.1/{port} && \
             printf \"GET /ready HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n\" >&3 && \
             head -n 1 <&3'"
        ));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Container PIDs of the running livekit-server processes.
    pub fn livekit_pids(&self) -> Vec<u32> {
        self.sh_ok(
            "for d in /proc/[0-9]*; do [ \"$(cat $d/comm 2>/dev/null)\" = livekit-server ] && \
             echo ${d#/proc/}; done; true",
        )
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect()
    }

    /// Whether container PID `pid` is still a running process (a zombie counts as gone).
    pub fn alive(&self, pid: u32) -> bool {
        let stat = self.sh(&format!("cat /proc/{pid}/stat"));
        let stat = String::from_utf8_lossy(&stat.stdout);
        let state = stat.rsplit(") ").next().and_then(|s| s.chars().next());
        !(stat.is_empty() || state == Some('Z') || state == Some('X'))
    }

    /// Polls `what` until it holds, for at most `bound`; returns how long it took.
    pub fn wait_for(
        &self,
        bound: Duration,
        what: &str,
        mut done: impl FnMut() -> bool,
    ) -> Duration {
        let start = Instant::now();
        while !done() {
            assert!(
                start.elapsed() < bound,
                "{what}: not within {bound:?}\n{}",
                String::from_utf8_lossy(
                    &self.sh("systemctl status bedrud --no-pager -n 40").stdout
                )
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        start.elapsed()
    }

    /// bedrud's journal entries since `cursor` (all of them when None), as JSON objects.
    pub fn journal(&self, after: Option<&str>) -> Vec<Value> {
        let after = after
            .map(|c| format!("--after-cursor='{c}'"))
            .unwrap_or_default();
        self.sh_ok(&format!("journalctl -u bedrud -o json --no-pager {after}"))
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The journal's current end, to read only what comes after.
    pub fn cursor(&self) -> String {
        let out = self.sh_ok("journalctl -n 0 --show-cursor --no-pager");
        out.lines()
            .find_map(|l| l.strip_prefix("-- cursor: "))
            .unwrap_or_else(|| panic!("no cursor in {out}"))
            .trim()
            .to_string()
    }
}

impl Drop for Booted {
    fn drop(&mut self) {
        if self.init != 0 {
            let _ = self.sh("systemctl poweroff --no-block");
        } else {
            // No init found: nspawn turns SIGTERM into a halt request for the container.
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(self.nspawn.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        let start = Instant::now();
        while start.elapsed() < POWEROFF_BOUND {
            if let Ok(Some(_)) = self.nspawn.try_wait() {
                eprintln!("booted: powered off in {:?}", start.elapsed());
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // Killing a PID namespace's init kills everything in it.
        eprintln!("booted: the container did not power off in time; killing it");
        if self.init != 0 {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(self.init as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = self.nspawn.kill();
        let _ = self.nspawn.wait();
    }
}

/// Host PIDs of the children of `parent`.
fn children(parent: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // Fields after "(comm) ": state, ppid, …
            stat.rsplit(") ")
                .next()
                .and_then(|rest| rest.split_whitespace().nth(1))
                .and_then(|ppid| ppid.parse::<u32>().ok())
                == Some(parent)
        })
        .collect()
}

/// The exposure `docs/packaging.md` states for the packaged unit (its table row for
/// `systemd/bedrud.service`, "**1.5 OK**").
fn documented_exposure() -> String {
    let doc = std::fs::read_to_string(repo_root().join("docs/packaging.md")).unwrap();
    let row = doc
        .lines()
        .find(|l| l.starts_with("| [`systemd/bedrud.service`]"))
        .expect("docs/packaging.md has an exposure row for systemd/bedrud.service");
    row.split("**")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap_or_else(|| panic!("no **N.N OK** in {row}"))
        .to_string()
}

fn field<'a>(entry: &'a Value, key: &str) -> &'a str {
    entry.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// The figures the test measured, printed at the end (run with --nocapture to see them).
struct Figures(Vec<String>);

impl Figures {
    fn note(&mut self, what: &str, value: impl std::fmt::Debug) {
        let line = format!("{what}: {value:?}");
        eprintln!("booted: {line}");
        self.0.push(line);
    }
}

/// How long the unit took from exec to READY=1 (systemd's own timestamps, in µs).
fn startup(b: &Booted) -> Duration {
    let exec: u64 = b.show("ExecMainStartTimestampMonotonic").parse().unwrap();
    let active: u64 = b.show("ActiveEnterTimestampMonotonic").parse().unwrap();
    Duration::from_micros(active.saturating_sub(exec))
}

#[test]
fn deb_under_a_booted_systemd_starts_stops_restarts_and_is_sandboxed() {
    require_private_network("packages");
    let mut figures = Figures(Vec::new());
    let test_start = Instant::now();
    let b = Booted::boot("debian-root");
    // A user's files, which the service must not see (ProtectHome=yes).
    b.sh_ok("mkdir -p /home/alice && echo private > /home/alice/notes");

    // apt-get install starts the service (debhelper's postinst) and blocks until systemd has
    // the service started: for Type=notify that is READY=1, which bedrud sends once its API
    // listens and LiveKit answers. So /ready must answer 200 at once, with no retry.
    let first = b.copy_in(&deb(1));
    let t = Instant::now();
    b.sh_ok(&format!("apt-get install -y {first}"));
    figures.note("apt-get install", t.elapsed());
    assert_eq!(b.show("ActiveState"), "active");
    assert_eq!(b.show("Type"), "notify");
    let ready = b.ready_status(PACKAGED_PORT);
    assert!(
        ready.contains(" 200"),
        "`systemctl is-active` said active before /ready answered 200: {ready:?}"
    );
    figures.note("exec to READY=1 (install)", startup(&b));

    // systemctl status shows bedrud's STATUS= line.
    let status_text = b.show("StatusText");
    assert!(!status_text.is_empty(), "bedrud sent no STATUS=");
    let status = b.sh_ok("systemctl status bedrud --no-pager; true");
    assert!(
        status.contains(&format!("Status: \"{status_text}\"")),
        "{status}"
    );
    figures.note("STATUS", &status_text);

    // The journal: bedrud's structured fields, and LiveKit's own lines at their own levels.
    let journal = b.journal(None);
    let ours = journal
        .iter()
        .find(|e| field(e, "MESSAGE").starts_with("LiveKit is ready"))
        .unwrap_or_else(|| panic!("no 'LiveKit is ready' entry: {journal:?}"));
    assert_eq!(field(ours, "SYSLOG_IDENTIFIER"), "bedrud");
    // tracing-journald's mapping: error 3, warn 4, info 5 (notice), debug 6.
    assert_eq!(field(ours, "PRIORITY"), "5", "info");
    assert!(field(ours, "TARGET").starts_with("bedrud"), "{ours}");
    assert!(field(ours, "CODE_FILE").ends_with(".rs"), "{ours}");
    // The event's own fields, with tracing-journald's F_ prefix.
    assert!(!field(ours, "F_PID").is_empty(), "{ours}");
    let livekit: Vec<&Value> = journal
        .iter()
        .filter(|e| field(e, "TARGET") == "livekit")
        .collect();
    assert!(!livekit.is_empty(), "no LiveKit lines in the journal");
    let starting = livekit
        .iter()
        .find(|e| field(e, "MESSAGE").contains("starting LiveKit server"))
        .unwrap_or_else(|| panic!("no 'starting LiveKit server' line: {livekit:?}"));
    assert_eq!(field(starting, "PRIORITY"), "5", "LiveKit logs it at info");
    let priorities: BTreeSet<&str> = livekit.iter().map(|e| field(e, "PRIORITY")).collect();
    figures.note("LiveKit journal priorities", &priorities);

    // The sandbox, seen from inside the service's own mount namespace.
    let pid = b.main_pid();
    let inside = |script: &str| b.sh(&format!("nsenter -t {pid} -m -- {script}"));
    for dir in ["/usr", "/etc", "/usr/lib/bedrud"] {
        let w = inside(&format!("touch {dir}/bedrud-probe"));
        assert!(
            !w.status.success() && text(&w).contains("Read-only file system"),
            "writing under {dir} from the service's namespace: {}",
            text(&w)
        );
    }
    // The control: the state folder is writable, as the bedrud user, in the same namespace.
    let w =
        inside("setpriv --reuid=bedrud --regid=bedrud --clear-groups touch /var/lib/bedrud/probe");
    assert!(w.status.success(), "{}", text(&w));
    b.sh_ok(&format!("nsenter -t {pid} -m -- rm /var/lib/bedrud/probe"));
    let home = inside("ls -A /home /root");
    assert!(
        !text(&home).contains("alice"),
        "/home is visible to the service: {}",
        text(&home)
    );
    assert!(
        b.sh_ok("ls /home").contains("alice"),
        "the control: alice is there"
    );
    let livekit_pid = *b.livekit_pids().first().expect("LiveKit runs");
    let limits = b.sh_ok(&format!("grep 'open files' /proc/{pid}/limits"));
    figures.note(
        "open files limit",
        limits.split_whitespace().collect::<Vec<_>>(),
    );
    for p in [pid, livekit_pid] {
        let st = b.sh_ok(&format!("cat /proc/{p}/status"));
        for key in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
            let line = st
                .lines()
                .find(|l| l.starts_with(&format!("{key}:")))
                .unwrap();
            assert!(
                line.ends_with("0000000000000000"),
                "pid {p} has capabilities: {line}"
            );
        }
        assert!(st.contains("NoNewPrivs:\t1"), "{st}");
        assert!(st.contains("Seccomp:\t2"), "a syscall filter: {st}");
        assert!(
            st.contains(&format!("Uid:\t{0}\t{0}", b.uid("bedrud"))),
            "{st}"
        );
    }
    let security = b.sh_ok("systemd-analyze security bedrud --no-pager");
    let exposure = security
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for bedrud.service: ")
                .nth(1)
        })
        .unwrap_or_else(|| panic!("{security}"));
    figures.note("systemd-analyze security", exposure);
    assert_eq!(
        exposure.split_whitespace().next(),
        Some(documented_exposure().as_str()),
        "docs/packaging.md states another exposure:\n{security}"
    );

    // Reload.
    let cursor = b.cursor();
    let reload = b.sh("systemctl reload bedrud");
    if RELOAD_SUPPORTED {
        assert!(reload.status.success(), "{}", text(&reload));
        assert_eq!(b.main_pid(), pid, "a reload keeps the process");
        // RELOADING=1 may reach systemd after kill returned: READY=1 then ends the reload.
        b.wait_for(
            PATIENCE,
            "the reload logged and the unit active again",
            || {
                let said = b.journal(Some(&cursor));
                let logged = said
                    .iter()
                    .any(|e| field(e, "MESSAGE").starts_with("config reloaded (SIGHUP)"));
                logged && b.show("ActiveState") == "active"
            },
        );
    } else {
        assert!(
            !reload.status.success() && text(&reload).contains("not applicable"),
            "the unit has no ExecReload= yet, so systemd refuses: {}",
            text(&reload)
        );
        assert_eq!(b.main_pid(), pid);
    }

    // Stop: LiveKit drains and exits, bedrud exits 0, the generated config goes. The config
    // lives in the service's private /tmp (PrivateTmp=), under the container's /tmp.
    let find_config = "find /tmp /var/tmp /run -name 'bedrud-livekit-*.yaml'";
    assert!(
        b.sh_ok(find_config).contains("bedrud.service"),
        "the control: the running LiveKit's config is in the service's private /tmp"
    );
    let cursor = b.cursor();
    let t = Instant::now();
    b.sh_ok("systemctl stop bedrud");
    figures.note("systemctl stop", t.elapsed());
    assert_eq!(b.show("ActiveState"), "inactive");
    assert_eq!(b.show("Result"), "success");
    assert_eq!(b.show("ExecMainStatus"), "0", "bedrud exits 0 on SIGTERM");
    assert!(!b.alive(livekit_pid), "LiveKit outlived the stop");
    assert_eq!(
        b.sh_ok(find_config).trim(),
        "",
        "a LiveKit config was left behind"
    );
    let stopping = b.journal(Some(&cursor));
    assert!(
        stopping
            .iter()
            .any(|e| field(e, "MESSAGE") == "LiveKit stopped"),
        "{stopping:?}"
    );
    assert!(
        !stopping
            .iter()
            .any(|e| field(e, "MESSAGE").contains("forcing it to stop")),
        "LiveKit did not drain in its grace period: {stopping:?}"
    );

    // Start and restart: each returns once ready.
    b.sh_ok("systemctl start bedrud");
    assert!(b.ready_status(PACKAGED_PORT).contains(" 200"));
    let before = b.main_pid();
    b.sh_ok("systemctl restart bedrud");
    assert!(b.ready_status(PACKAGED_PORT).contains(" 200"));
    assert_ne!(b.main_pid(), before, "restart started a new process");
    figures.note("exec to READY=1 (restart)", startup(&b));

    // kill -9 of bedrud: its LiveKit goes with it (bedrud is not there to stop it: the kernel's
    // parent-death signal does; KillMode=mixed would leave it to systemd's SIGKILL only after
    // TimeoutStopSec), and Restart=on-failure starts the unit again.
    let restarts: u32 = b.show("NRestarts").parse().unwrap();
    let pid = b.main_pid();
    let livekit_pid = *b.livekit_pids().first().expect("LiveKit runs");
    b.sh_ok(&format!("kill -9 {pid}"));
    let gone = b.wait_for(
        Duration::from_secs(10),
        "LiveKit gone after kill -9 of bedrud",
        || !b.alive(livekit_pid),
    );
    figures.note("LiveKit gone after kill -9 of bedrud", gone);
    b.wait_for(PATIENCE, "restarted by Restart=on-failure", || {
        b.show("NRestarts").parse::<u32>().unwrap() == restarts + 1
            && b.show("ActiveState") == "active"
    });
    assert_ne!(b.main_pid(), pid);
    assert!(b.ready_status(PACKAGED_PORT).contains(" 200"));

    // The watchdog: a bedrud that stops answering (SIGSTOP) is killed and restarted. The test
    // shortens WatchdogSec with a runtime drop-in (the unit's 30 s would make the run long).
    // systemd follows the watchdog's SIGABRT with a SIGCONT, so even a stopped bedrud aborts at
    // once: a restart takes WatchdogSec at most, plus RestartSec and the start-up.
    b.sh_ok(&format!(
        "mkdir -p /run/systemd/system/bedrud.service.d && \
         printf '[Service]\\nWatchdogSec={TEST_WATCHDOG_SEC}s\\n' \
         > /run/systemd/system/bedrud.service.d/watchdog.conf && systemctl daemon-reload && \
         systemctl restart bedrud"
    ));
    assert_eq!(b.show("WatchdogUSec"), format!("{TEST_WATCHDOG_SEC}s"));
    let restarts: u32 = b.show("NRestarts").parse().unwrap();
    let pid = b.main_pid();
    let cursor = b.cursor();
    // Longer than a watchdog period, to show that a healthy bedrud keeps pinging.
    std::thread::sleep(Duration::from_secs(TEST_WATCHDOG_SEC * 2));
    assert_eq!(
        b.main_pid(),
        pid,
        "a healthy bedrud was killed by the watchdog"
    );
    let t = Instant::now();
    b.sh_ok(&format!("kill -STOP {pid}"));
    b.wait_for(PATIENCE, "restarted after the watchdog timeout", || {
        b.show("NRestarts").parse::<u32>().unwrap() == restarts + 1
            && b.show("ActiveState") == "active"
    });
    figures.note("SIGSTOP to active again (watchdog)", t.elapsed());
    let log = b.journal(Some(&cursor));
    assert!(
        log.iter()
            .any(|e| field(e, "MESSAGE").contains("Watchdog timeout")),
        "{log:?}"
    );
    assert!(
        log.iter()
            .any(|e| field(e, "MESSAGE").contains("status=6/ABRT")),
        "the stopped bedrud died of the watchdog's SIGABRT: {log:?}"
    );
    assert!(b.ready_status(PACKAGED_PORT).contains(" 200"));
    b.sh_ok("rm -r /run/systemd/system/bedrud.service.d && systemctl daemon-reload");

    figures.note("booted test", test_start.elapsed());
    drop(b);
    eprintln!("booted: figures:\n  {}", figures.0.join("\n  "));
}

#[test]
fn deb_under_a_booted_systemd_binds_443_upgrades_and_purges() {
    require_private_network("packages");
    let test_start = Instant::now();
    let b = Booted::boot("debian-root");
    let first = b.copy_in(&deb(1));
    b.sh_ok(&format!("apt-get install -y {first}"));
    assert!(b.ready_status(PACKAGED_PORT).contains(" 200"));

    // Port 443 without the drop-in: the start fails, naming the capability. (In the
    // container's own network namespace ports below 1024 are privileged, as on a server.)
    let config = b.read("/etc/bedrud/config.yaml");
    let low = config.replacen("port: 8090", "port: 443", 1);
    assert_ne!(low, config, "the packaged config has port: 8090");
    std::fs::write(b.path("/etc/bedrud/config.yaml"), &low).unwrap();
    let cursor = b.cursor();
    let failed = b.sh("systemctl restart bedrud");
    assert!(
        !failed.status.success(),
        "bedrud started on 443 with no capability"
    );
    b.sh_ok("systemctl stop bedrud; systemctl reset-failed bedrud");
    let log = b.journal(Some(&cursor));
    assert!(
        log.iter()
            .any(|e| field(e, "MESSAGE").contains("CAP_NET_BIND_SERVICE")),
        "{log:?}"
    );
    // The drop-in added as the docs and the error say: `systemctl edit bedrud`, its lines
    // pasted (here the editor copies the example file; `script` gives systemctl edit the
    // terminal it insists on), then restart.
    b.sh_ok(
        "SYSTEMD_EDITOR='cp /usr/share/doc/bedrud/examples/low-port.conf' \
         script -qec 'systemctl edit bedrud' /dev/null && systemctl restart bedrud",
    );
    let ready = b.ready_status(443);
    assert!(ready.contains(" 200"), "/ready on 443: {ready:?}");
    assert!(b.show("DropInPaths").contains("override.conf"));
    // Back to the packaged state: the drop-in removed the way systemctl offers, port 8090.
    std::fs::write(b.path("/etc/bedrud/config.yaml"), &config).unwrap();
    b.sh_ok("systemctl revert bedrud && systemctl restart bedrud");
    assert!(b.ready_status(PACKAGED_PORT).contains(" 200"));

    // Upgrade with the service running: an edited config is kept, the service restarted.
    let edited = config.replacen(
        "defaultMaxParticipants: 50",
        "defaultMaxParticipants: 12   # edited by the administrator",
        1,
    );
    assert_ne!(edited, config);
    std::fs::write(b.path("/etc/bedrud/config.yaml"), &edited).unwrap();
    let pid = b.main_pid();
    let second = b.copy_in(&deb(2));
    b.sh_ok(&format!("apt-get install -y {second}"));
    assert_eq!(
        b.sh_ok("dpkg-query -W -f '${Version}' bedrud"),
        format!("{VERSION}-2")
    );
    assert_eq!(b.read("/etc/bedrud/config.yaml"), edited);
    assert_eq!(b.show("ActiveState"), "active");
    assert_ne!(b.main_pid(), pid, "the upgrade restarted bedrud");
    assert!(b.ready_status(PACKAGED_PORT).contains(" 200"));

    // Purge with the service running: stopped, and nothing of it left.
    let livekit_pid = *b.livekit_pids().first().expect("LiveKit runs");
    let pid = b.main_pid();
    b.sh_ok("apt-get purge -y bedrud");
    assert!(
        !b.alive(pid) && !b.alive(livekit_pid),
        "purge left bedrud running"
    );
    let load = b.sh_ok("systemctl show -p LoadState --value bedrud");
    assert_eq!(
        load.trim(),
        "not-found",
        "systemd still knows bedrud.service"
    );
    for gone in [
        "/usr/bin/bedrud",
        "/usr/lib/bedrud",
        "/usr/lib/systemd/system/bedrud.service",
        "/etc/systemd/system/multi-user.target.wants/bedrud.service",
        "/etc/systemd/system/bedrud.service.d",
        "/etc/bedrud",
        "/var/lib/bedrud",
        "/run/bedrud",
    ] {
        let left = b.sh(&format!("test -e {gone}"));
        assert!(!left.status.success(), "{gone} is left after purge");
    }
    assert_eq!(
        b.sh_ok("find /tmp /var/tmp /run -name 'bedrud-livekit-*.yaml'")
            .trim(),
        ""
    );
    eprintln!("booted: upgrade/purge test: {:?}", test_start.elapsed());
}

/// The .rpm under a booted systemd. No RPM distribution's root can be made here (see
/// docs/packaging.md), so this boots the Debian root with Debian's rpm in it: rpm's database is
/// empty (--nodeps), but the scriptlets run inside the booted container and talk to its systemd.
#[test]
fn rpm_under_a_booted_systemd_starts_upgrades_and_erases() {
    require_private_network("packages");
    let test_start = Instant::now();
    let b = Booted::boot("debian-root-rpm");
    b.sh_ok("rpm --initdb");
    let first = b.copy_in(&rpm(1));
    b.sh_ok(&format!("rpm -i --nodeps {first}"));
    // %post enables the unit by the preset policy (Debian's: enable) and, as Fedora's
    // %systemd_post, does not start it.
    assert_eq!(b.sh_ok("systemctl is-enabled bedrud").trim(), "enabled");
    assert_eq!(b.show("ActiveState"), "inactive");
    b.sh_ok("systemctl start bedrud");
    let ready = b.ready_status(PACKAGED_PORT);
    assert!(
        ready.contains(" 200"),
        "/ready right after start: {ready:?}"
    );
    assert!(!b.show("StatusText").is_empty(), "bedrud sent no STATUS=");
    let st = b.sh_ok(&format!("cat /proc/{}/status", b.main_pid()));
    assert!(st.contains("CapEff:\t0000000000000000"), "{st}");
    assert!(st.contains("CapBnd:\t0000000000000000"), "{st}");

    // Upgrade with the service running: %postun restarts it; the edited config is kept.
    let edited = b.read("/etc/bedrud/config.yaml") + "# edited by the administrator\n";
    std::fs::write(b.path("/etc/bedrud/config.yaml"), &edited).unwrap();
    let pid = b.main_pid();
    let second = b.copy_in(&rpm(2));
    b.sh_ok(&format!("rpm -U --nodeps {second}"));
    assert_eq!(
        b.sh_ok("rpm -q bedrud").trim(),
        format!("bedrud-{VERSION}-2.x86_64")
    );
    assert_eq!(b.read("/etc/bedrud/config.yaml"), edited);
    b.wait_for(PATIENCE, "active again after the upgrade", || {
        b.show("ActiveState") == "active"
    });
    assert_ne!(b.main_pid(), pid, "the upgrade restarted bedrud");
    assert!(b.ready_status(PACKAGED_PORT).contains(" 200"));

    // Erase with the service running: %preun stops and disables it.
    let pid = b.main_pid();
    let livekit_pid = *b.livekit_pids().first().expect("LiveKit runs");
    b.sh_ok("rpm -e bedrud");
    assert!(
        !b.alive(pid) && !b.alive(livekit_pid),
        "rpm -e left bedrud running"
    );
    assert_eq!(b.show("LoadState"), "not-found");
    for gone in [
        "/usr/bin/bedrud",
        "/usr/lib/bedrud",
        "/etc/systemd/system/multi-user.target.wants/bedrud.service",
        "/run/bedrud",
    ] {
        assert!(
            !b.sh(&format!("test -e {gone}")).status.success(),
            "{gone} is left"
        );
    }
    assert_eq!(b.read("/etc/bedrud/config.yaml.rpmsave"), edited);
    eprintln!("booted: rpm test: {:?}", test_start.elapsed());
}
