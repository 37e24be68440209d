//! The packages, installed for real: the .deb into a clean Debian root made by debootstrap
//! (install, run, upgrade, remove, purge), the .rpm into an RPM root, and lintian and rpmlint on
//! both; and both under a real systemd booted by systemd-nspawn (packages/booted.rs). Needs root,
//! the built packages and a private network namespace: scripts/test.sh builds them
//! (scripts/package.sh) and runs this through scripts/netns-run.sh.

// The booted-systemd tests, in their own file (tests/packages/ is not a test target of its own).
#[path = "packages/booted.rs"]
mod booted;
// A booted root with both packages that records a room through bedrud's API.
#[path = "packages/booted_recording.rs"]
mod booted_recording;
mod common;

use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Instant;

use common::*;

const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The API port of the packaged config.yaml.
const PACKAGED_PORT: u16 = 8090;

fn package(name: &str) -> PathBuf {
    let p = repo_root().join("target/packages").join(name);
    assert!(
        p.is_file(),
        "{} is missing. Build the packages with: scripts/package.sh deb && scripts/package.sh deb \
         --revision 2 && scripts/package.sh rpm && scripts/package.sh rpm --revision 2, and \
         scripts/package.sh deb --recording && scripts/package.sh rpm --recording \
         (scripts/test.sh does)",
        p.display()
    );
    p
}

fn deb(revision: u32) -> PathBuf {
    package(&format!("bedrud_{VERSION}-{revision}_amd64.deb"))
}

fn rpm(revision: u32) -> PathBuf {
    package(&format!("bedrud-{VERSION}-{revision}.x86_64.rpm"))
}

fn recording_deb() -> PathBuf {
    package(&format!("bedrud-recording_{VERSION}-1_amd64.deb"))
}

fn recording_rpm() -> PathBuf {
    package(&format!("bedrud-recording-{VERSION}-1.x86_64.rpm"))
}

fn tool(name: &str, package: &str) -> PathBuf {
    which(name).unwrap_or_else(|| {
        panic!("{name} is not installed: apt-get install {package} (scripts/setup.sh does)")
    })
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?} failed:\n{}", text(&out));
    text(&out)
}

/// A throwaway copy of the clean Debian root `.tools/NAME` (scripts/debian-root.sh), which
/// must have `proof`: (its folder, the root).
fn copy_clean_root(name: &str, proof: &str) -> (tempfile::TempDir, PathBuf) {
    let clean = repo_root().join(".tools").join(name);
    assert!(
        clean.join(proof).is_file(),
        "no clean Debian root at {}. Make it with: scripts/debian-root.sh (needs debootstrap \
         and the Debian mirror; scripts/setup.sh does)",
        clean.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    run_ok(Command::new("cp").arg("-a").arg(&clean).arg(&root));
    (dir, root)
}

/// A throwaway copy of the clean Debian root (scripts/debian-root.sh), with /proc and /dev/pts
/// mounted while it exists. Commands run in it with chroot, in a clean environment.
struct DebianRoot {
    root: PathBuf,
    mounts: Vec<PathBuf>,
    _dir: tempfile::TempDir,
}

impl DebianRoot {
    fn new() -> DebianRoot {
        assert!(
            nix::unistd::geteuid().is_root(),
            "the package tests install packages into a chroot and must run as root"
        );
        let (dir, root) = copy_clean_root("debian-root", "usr/bin/systemd-sysusers");
        let mut r = DebianRoot {
            root,
            mounts: Vec::new(),
            _dir: dir,
        };
        r.mount(&["-t", "proc", "proc"], "proc");
        r.mount(&["--bind", "/dev/pts"], "dev/pts");
        r
    }

    fn mount(&mut self, args: &[&str], at: &str) {
        let target = self.root.join(at);
        run_ok(Command::new("mount").args(args).arg(&target));
        self.mounts.push(target);
    }

    fn path(&self, p: &str) -> PathBuf {
        self.root.join(p.trim_start_matches('/'))
    }

    fn read(&self, p: &str) -> String {
        std::fs::read_to_string(self.path(p)).unwrap_or_else(|e| panic!("{p}: {e}"))
    }

    /// Copies a package into the root's /tmp and returns its path as seen from inside.
    fn copy_in(&self, file: &Path) -> String {
        let inside = format!("/tmp/{}", file.file_name().unwrap().to_string_lossy());
        std::fs::copy(file, self.path(&inside)).unwrap();
        inside
    }

    fn sh(&self, script: &str) -> Output {
        Command::new("chroot")
            .arg(&self.root)
            .args(["/usr/bin/env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin"])
            .args(["DEBIAN_FRONTEND=noninteractive", "LC_ALL=C.UTF-8"])
            .args(["/bin/sh", "-c", script])
            .output()
            .unwrap()
    }

    /// Runs `script` with /bin/sh inside the root, as root; fails the test if it fails.
    fn sh_ok(&self, script: &str) -> String {
        let out = self.sh(script);
        assert!(
            out.status.success(),
            "`{script}` failed in the Debian root:\n{}",
            text(&out)
        );
        text(&out)
    }

    /// Every path in the root, except the package manager's own records, caches and logs.
    fn tree(&self) -> BTreeSet<String> {
        const VOLATILE: [&str; 9] = [
            "proc",
            "dev",
            "tmp",
            "run",
            "var/lib/dpkg",
            "var/lib/apt",
            "var/lib/rpm",
            "var/cache",
            "var/log",
        ];
        let mut all = BTreeSet::new();
        let mut todo = vec![self.root.clone()];
        while let Some(dir) = todo.pop() {
            for entry in std::fs::read_dir(&dir).unwrap().flatten() {
                let path = entry.path();
                let rel = path
                    .strip_prefix(&self.root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                if VOLATILE.contains(&rel.as_str()) {
                    continue;
                }
                if entry.file_type().unwrap().is_dir() {
                    todo.push(path);
                }
                all.insert(rel);
            }
        }
        all
    }

    /// (uid, gid) of a user of the root.
    fn ids(&self, user: &str) -> (u32, u32) {
        let passwd = self.read("/etc/passwd");
        let line = passwd
            .lines()
            .find(|l| l.starts_with(&format!("{user}:")))
            .unwrap_or_else(|| panic!("no {user} user in /etc/passwd:\n{passwd}"));
        let f: Vec<&str> = line.split(':').collect();
        (f[2].parse().unwrap(), f[3].parse().unwrap())
    }

    fn owner_and_mode(&self, p: &str) -> (u32, u32, u32) {
        let m = std::fs::metadata(self.path(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
        (m.uid(), m.gid(), m.mode() & 0o7777)
    }
}

impl Drop for DebianRoot {
    fn drop(&mut self) {
        for m in self.mounts.iter().rev() {
            let _ = Command::new("umount").arg("-l").arg(m).status();
        }
    }
}

/// What systemd gives the service: its user, umask, file limit and environment, read from the
/// installed unit so that the test runs bedrud the way `systemctl start bedrud` would.
struct ServiceEnv {
    user: String,
    umask: String,
    nofile: String,
    env: Vec<String>,
    exec_start: Vec<String>,
}

impl ServiceEnv {
    fn from_unit(unit: &str) -> ServiceEnv {
        let values = |key: &str| -> Vec<String> {
            let prefix = format!("{key}=");
            unit.lines()
                .filter_map(|l| l.strip_prefix(&prefix))
                .map(str::to_string)
                .collect()
        };
        let one = |key: &str| {
            values(key)
                .pop()
                .unwrap_or_else(|| panic!("the unit has no {key}="))
        };
        let user = one("User");
        let mut env = vec![
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin".to_string(),
            format!("USER={user}"),
            format!("LOGNAME={user}"),
            format!("STATE_DIRECTORY=/var/lib/{}", one("StateDirectory")),
            format!("RUNTIME_DIRECTORY=/run/{}", one("RuntimeDirectory")),
            format!(
                "CONFIGURATION_DIRECTORY=/etc/{}",
                one("ConfigurationDirectory")
            ),
        ];
        for assignments in values("Environment") {
            env.extend(assignments.split_whitespace().map(str::to_string));
        }
        ServiceEnv {
            umask: one("UMask"),
            nofile: one("LimitNOFILE"),
            exec_start: one("ExecStart")
                .split_whitespace()
                .map(str::to_string)
                .collect(),
            user,
            env,
        }
    }

    /// `args` (ExecStart's by default) run in `root` as the service would run.
    fn command(&self, root: &DebianRoot, args: Option<&[&str]>) -> Command {
        // systemd raises the file limit as root. Where even root may not (a container without
        // CAP_SYS_RESOURCE, like this test machine), the service would get the hard limit.
        const SCRIPT: &str = r#"ulimit -n "$1" 2>/dev/null || ulimit -n "$(ulimit -Hn)"
umask "$2" && shift 2 && exec "$@""#;
        let mut c = Command::new("sh");
        c.args(["-c", SCRIPT, "sh"]);
        c.args([&self.nofile, &self.umask]);
        c.arg("chroot")
            .arg(format!("--userspec={0}:{0}", self.user))
            .arg(&root.root)
            .args(["/usr/bin/env", "-i"])
            .args(&self.env);
        match args {
            Some(a) => c.args(a),
            None => c.args(&self.exec_start),
        };
        c
    }
}

/// Starts the installed bedrud as the unit would, waits for `/ready`, checks its LiveKit runs
/// as the bedrud user, then stops it with SIGTERM as `systemctl stop` does.
fn run_the_service_until_ready(r: &DebianRoot, svc: &ServiceEnv) {
    let (uid, gid) = r.ids(&svc.user);
    let run_dir = r.path("/run/bedrud");
    std::fs::create_dir_all(&run_dir).unwrap();
    nix::unistd::chown(&run_dir, Some(uid.into()), Some(gid.into())).unwrap();

    let log = r.path("/tmp/bedrud-serve.log");
    let mut child: Child = svc
        .command(r, None)
        .stdout(Stdio::from(std::fs::File::create(&log).unwrap()))
        .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{PACKAGED_PORT}/ready");
    let start = Instant::now();
    loop {
        if let Some((200, _)) = get_json(&url) {
            break;
        }
        let exited = child.try_wait().unwrap();
        let logs = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(
            exited.is_none(),
            "bedrud exited ({exited:?}) before /ready:\n{logs}"
        );
        assert!(
            start.elapsed() < PATIENCE,
            "/ready never answered 200:\n{logs}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // Only those of this root: the booted tests run the same LiveKit in their containers.
    let livekit: Vec<u32> = livekit_processes_mentioning("/usr/lib/bedrud/livekit-server")
        .into_iter()
        .filter(|pid| std::fs::read_link(format!("/proc/{pid}/root")).ok() == Some(r.root.clone()))
        .collect();
    assert_eq!(
        livekit.len(),
        1,
        "one packaged livekit-server should run: {livekit:?}"
    );
    let livekit_uid = std::fs::metadata(format!("/proc/{}", livekit[0]))
        .unwrap()
        .uid();
    assert_eq!(livekit_uid, uid, "LiveKit runs as the bedrud user");

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = child.wait().unwrap();
    let logs = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        status.success(),
        "bedrud did not stop cleanly ({status}):\n{logs}"
    );
    wait_gone(livekit[0], "the packaged livekit-server");
}

/// Right after install: the user, a private config, secrets made on this host, the unit
/// enabled, verified by systemd-analyze, and the man page.
fn check_fresh_install(r: &DebianRoot) {
    let (uid, gid) = r.ids("bedrud");
    assert_eq!(r.owner_and_mode("/etc/bedrud/config.yaml"), (0, gid, 0o640));
    assert_eq!(r.owner_and_mode("/var/lib/bedrud"), (uid, gid, 0o750));
    for secret in [
        "/var/lib/bedrud/livekit-keys.yaml",
        "/var/lib/bedrud/jwt-secret",
    ] {
        assert_eq!(r.owner_and_mode(secret), (uid, gid, 0o600), "{secret}");
    }
    let shipped = r.sh_ok("dpkg -L bedrud");
    assert!(
        !shipped.contains("livekit-keys") && !shipped.contains("jwt-secret"),
        "secrets must be generated on the host, never shipped:\n{shipped}"
    );
    let config = r.read("/etc/bedrud/config.yaml");
    assert!(config.contains("apiSecret: \"\"") && config.contains("jwtSecret: \"\""));
    assert!(
        r.path("/etc/systemd/system/multi-user.target.wants/bedrud.service")
            .is_symlink(),
        "the package enables bedrud.service"
    );
    let verify = r.sh("systemd-analyze verify /usr/lib/systemd/system/bedrud.service");
    assert!(
        verify.status.success(),
        "systemd-analyze verify:\n{}",
        text(&verify)
    );
    assert!(
        !text(&verify).contains("bedrud.service"),
        "{}",
        text(&verify)
    );
    let man = r.sh_ok("MANWIDTH=100 man -P cat bedrud");
    for section in [
        "SYNOPSIS",
        "FILES",
        "/etc/bedrud/config.yaml",
        "EXIT STATUS",
    ] {
        assert!(man.contains(section), "man bedrud lacks {section}:\n{man}");
    }
}

#[test]
fn deb_installs_runs_upgrades_and_purges_in_a_clean_debian_root() {
    require_private_network("packages");
    let r = DebianRoot::new();
    let before = r.tree();
    let passwd_before = r.read("/etc/passwd");

    // Install, answering nothing.
    let first = r.copy_in(&deb(1));
    r.sh_ok(&format!("apt-get install -y {first}"));
    check_fresh_install(&r);
    let installed = r.tree();
    assert!(
        installed.difference(&before).any(|p| p == "usr/bin/bedrud"),
        "the snapshot sees what a package adds"
    );

    // The generated configuration passes, read as the service reads it; then the service runs.
    let svc = ServiceEnv::from_unit(&r.read("/usr/lib/systemd/system/bedrud.service"));
    let check = run_ok(&mut svc.command(&r, Some(&["/usr/bin/bedrud", "config", "check"])));
    assert!(check.contains("OK (embedded LiveKit)"), "{check}");
    run_the_service_until_ready(&r, &svc);

    // An administrator's edit survives an upgrade to a newer build, and so do the secrets.
    let config = r.read("/etc/bedrud/config.yaml");
    let edited = config.replacen(
        "defaultMaxParticipants: 50",
        "defaultMaxParticipants: 12   # edited by the administrator",
        1,
    );
    assert_ne!(
        edited, config,
        "the packaged config has defaultMaxParticipants: 50"
    );
    std::fs::write(r.path("/etc/bedrud/config.yaml"), &edited).unwrap();
    let keys = r.read("/var/lib/bedrud/livekit-keys.yaml");
    let second = r.copy_in(&deb(2));
    r.sh_ok(&format!("apt-get install -y {second}"));
    let version = r.sh_ok("dpkg-query -W -f '${Version}' bedrud");
    assert_eq!(version, format!("{VERSION}-2"));
    assert_eq!(r.read("/etc/bedrud/config.yaml"), edited);
    assert_eq!(r.read("/var/lib/bedrud/livekit-keys.yaml"), keys);
    assert_eq!(r.owner_and_mode("/etc/bedrud/config.yaml").2, 0o640);
    run_ok(&mut svc.command(&r, Some(&["/usr/bin/bedrud", "config", "check"])));

    // Remove keeps configuration and state; purge removes them.
    r.sh_ok("apt-get remove -y bedrud");
    assert!(!r.path("/usr/bin/bedrud").exists() && !r.path("/usr/lib/bedrud").exists());
    assert_eq!(r.read("/etc/bedrud/config.yaml"), edited);
    assert_eq!(r.read("/var/lib/bedrud/livekit-keys.yaml"), keys);
    r.sh_ok("apt-get purge -y bedrud");
    let after = r.tree();
    let added: Vec<&String> = after.difference(&before).collect();
    let removed: Vec<&String> = before.difference(&after).collect();
    assert!(added.is_empty(), "purge left these behind: {added:?}");
    assert!(
        removed.is_empty(),
        "purge removed what was there before: {removed:?}"
    );
    // The system user stays, as Debian keeps every package's users (see packaging/deb/postrm).
    let passwd_after = r.read("/etc/passwd");
    let new_lines: Vec<&str> = passwd_after
        .lines()
        .filter(|l| !passwd_before.lines().any(|b| b == *l))
        .collect();
    assert_eq!(new_lines.len(), 1, "{new_lines:?}");
    assert!(new_lines[0].starts_with("bedrud:"), "{new_lines:?}");
}

#[test]
fn a_port_below_1024_fails_with_the_drop_in_to_add() {
    require_private_network("packages");
    // Were low ports open to everyone here, bedrud would start and this test would never end.
    let first_free = std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .unwrap_or_else(|_| "1024".into());
    assert!(
        first_free.trim().parse::<u16>().unwrap_or(1024) > 443,
        "this network namespace lets anyone bind port 443 (ip_unprivileged_port_start = {first_free})"
    );
    let r = DebianRoot::new();
    let first = r.copy_in(&deb(1));
    r.sh_ok(&format!("apt-get install -y {first}"));
    let config = r
        .read("/etc/bedrud/config.yaml")
        .replacen("port: 8090", "port: 443", 1);
    std::fs::write(r.path("/etc/bedrud/config.yaml"), config).unwrap();
    let svc = ServiceEnv::from_unit(&r.read("/usr/lib/systemd/system/bedrud.service"));
    let out = svc.command(&r, None).output().unwrap();
    assert!(
        !out.status.success(),
        "bedrud must not start on port 443 without the capability"
    );
    let msg = text(&out);
    assert!(
        msg.contains("CAP_NET_BIND_SERVICE") && msg.contains("server.port"),
        "the error should name the key and the capability:\n{msg}"
    );
    let drop_in = msg
        .split_whitespace()
        .map(|w| w.trim_matches(|c: char| c == ',' || c == '`'))
        .find(|w| w.ends_with("low-port.conf"))
        .unwrap_or_else(|| panic!("the error should name the drop-in to add:\n{msg}"));
    let drop_in = r.read(drop_in);
    assert!(
        drop_in.contains("AmbientCapabilities=CAP_NET_BIND_SERVICE"),
        "{drop_in}"
    );
    // Installed the way the message says, the drop-in is valid for the unit.
    let dir = r.path("/etc/systemd/system/bedrud.service.d");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("low-port.conf"), &drop_in).unwrap();
    let verify = r.sh("systemd-analyze verify bedrud.service");
    assert!(verify.status.success(), "{}", text(&verify));
    assert!(
        !text(&verify).contains("bedrud.service"),
        "{}",
        text(&verify)
    );
}

#[test]
fn rpm_installs_upgrades_and_erases_in_an_rpm_root() {
    let rpm_tool = tool("rpm", "rpm");
    // The RPM root is a Debian root: it has the /bin/sh, systemd-sysusers and setpriv the
    // scriptlets need, but its RPM database is empty, so dependencies cannot be resolved
    // (--nodeps). Everything else is rpm's real install, upgrade and erase, scriptlets included.
    let r = DebianRoot::new();
    let rpm_in = |args: &[&str]| {
        let mut c = Command::new(&rpm_tool);
        c.arg("--root").arg(&r.root).args(args);
        c
    };
    run_ok(&mut rpm_in(&["--initdb"]));
    let wants = "/etc/systemd/system/multi-user.target.wants/bedrud.service";

    let out = run_ok(rpm_in(&["-i", "--nodeps"]).arg(rpm(1)));
    assert!(
        out.contains("generated in /var/lib/bedrud/livekit-keys.yaml"),
        "{out}"
    );
    let (uid, gid) = r.ids("bedrud");
    assert_eq!(r.owner_and_mode("/etc/bedrud/config.yaml"), (0, gid, 0o640));
    assert_eq!(
        r.owner_and_mode("/var/lib/bedrud/jwt-secret"),
        (uid, gid, 0o600)
    );
    assert!(r.path("/usr/share/man/man1/bedrud.1.gz").is_file());
    assert!(
        r.path(wants).is_symlink(),
        "%post applies the preset (Debian's: enable)"
    );

    let edited = r.read("/etc/bedrud/config.yaml") + "# edited by the administrator\n";
    std::fs::write(r.path("/etc/bedrud/config.yaml"), &edited).unwrap();
    let keys = r.read("/var/lib/bedrud/livekit-keys.yaml");
    run_ok(rpm_in(&["-U", "--nodeps"]).arg(rpm(2)));
    let q = run_ok(&mut rpm_in(&["-q", "bedrud"]));
    assert_eq!(q.trim(), format!("bedrud-{VERSION}-2.x86_64"));
    assert_eq!(r.read("/etc/bedrud/config.yaml"), edited);
    assert_eq!(r.read("/var/lib/bedrud/livekit-keys.yaml"), keys);

    run_ok(&mut rpm_in(&["-e", "bedrud"]));
    assert!(!rpm_in(&["-q", "bedrud"]).output().unwrap().status.success());
    for gone in [
        "/usr/bin/bedrud",
        "/usr/lib/bedrud",
        "/usr/lib/systemd/system/bedrud.service",
    ] {
        assert!(!r.path(gone).exists(), "{gone} is still there after rpm -e");
    }
    assert!(!r.path(wants).exists(), "%preun disables the unit");
    // RPM keeps an edited config as .rpmsave and never deletes state.
    assert_eq!(r.read("/etc/bedrud/config.yaml.rpmsave"), edited);
    assert_eq!(r.read("/var/lib/bedrud/livekit-keys.yaml"), keys);
}

#[test]
fn lintian_reports_no_errors_or_warnings() {
    let lintian = tool("lintian", "lintian");
    let out = Command::new(lintian)
        .arg("--show-overrides")
        .arg(deb(1))
        .arg(recording_deb())
        .output()
        .unwrap();
    let report = text(&out);
    // Proof that lintian read the package: it reports the overrides it applied. (Its exit
    // status is no guide here: --show-overrides counts an overridden error as a failure.)
    assert!(
        report.contains("O: bedrud: embedded-library libyaml")
            && report.contains("O: bedrud-recording: hardening-no-pie"),
        "lintian did not check the package:\n{report}"
    );
    let problems: Vec<&str> = report
        .lines()
        .filter(|l| l.starts_with("E:") || l.starts_with("W:"))
        .collect();
    assert!(
        problems.is_empty(),
        "lintian (overrides, each explained, in packaging/lintian-overrides):\n{report}"
    );
}

#[test]
fn rpmlint_reports_no_errors_or_warnings() {
    let rpmlint = tool("rpmlint", "rpmlint");
    let out = Command::new(rpmlint)
        .arg("-c")
        .arg(repo_root().join("packaging/rpmlint.toml"))
        .arg(rpm(1))
        .arg(recording_rpm())
        .output()
        .unwrap();
    let report = text(&out);
    assert!(
        report.contains("2 packages and 0 specfiles checked; 0 errors, 0 warnings"),
        "rpmlint (filters, each explained, in packaging/rpmlint.toml):\n{report}"
    );
}

/// The GStreamer elements egress builds bedrud's recordings from: Opus audio from the room's
/// tracks (depayloaded, decoded, mixed, encoded) into OGG or MP4, and the room composite with
/// video (X11 capture of Chromium's window, PulseAudio's sound, H.264 by x264), plus the video
/// decoders of a track composite. The list `grep`s out of egress' pipeline code (pkg/pipeline);
/// `faac` (AAC) is left out: Debian has no such element, so bedrud records MP4 with Opus.
const EGRESS_ELEMENTS: [&str; 29] = [
    "appsrc",
    "queue",
    "tee",
    "capsfilter",
    "filesink",
    "rtpopusdepay",
    "opusdec",
    "opusenc",
    "audioconvert",
    "audioresample",
    "audiorate",
    "audiomixer",
    "oggmux",
    "mp4mux",
    "webmmux",
    "splitmuxsink",
    "rtph264depay",
    "rtpvp8depay",
    "rtpvp9depay",
    "h264parse",
    "avdec_h264",
    "vp8dec",
    "x264enc",
    "videoconvert",
    "videoscale",
    "videorate",
    "ximagesrc",
    "pulsesrc",
    "mpegtsmux",
];

/// The downloaded .debs of bedrud-recording's dependencies (scripts/debian-root.sh), put into
/// the root's apt cache so that apt installs them offline.
fn offer_recording_dependencies(r: &DebianRoot) {
    copy_recording_dependencies(&r.path("/var/cache/apt/archives"));
}

/// Copies the downloaded .debs of bedrud-recording's dependencies into `cache`, a root's
/// /var/cache/apt/archives.
fn copy_recording_dependencies(cache: &Path) {
    let debs = repo_root().join(".tools/recording-debs");
    assert!(
        debs.join("depends").is_file(),
        "bedrud-recording's dependencies are not downloaded at {}. Download them with: \
         scripts/debian-root.sh (needs the Debian mirror; scripts/setup.sh does)",
        debs.display()
    );
    for entry in std::fs::read_dir(&debs).unwrap().flatten() {
        if entry.path().extension().is_some_and(|e| e == "deb") {
            std::fs::copy(entry.path(), cache.join(entry.file_name())).unwrap();
        }
    }
}

#[test]
fn recording_deb_installs_through_its_dependencies_and_its_worker_runs() {
    require_private_network("packages");
    let r = DebianRoot::new();
    offer_recording_dependencies(&r);
    let bedrud = r.copy_in(&deb(1));
    let recording = r.copy_in(&recording_deb());
    // Only what the packages depend on: no recommends and nothing named by hand. Offline: the
    // namespace has no route out, so apt finds everything in the cache or fails. (Not
    // --no-download: apt 2.6 then refuses the local .deb paths.)
    r.sh_ok(&format!(
        "apt-get install -y --no-install-recommends {bedrud} {recording}"
    ));
    let fields = r.sh_ok("dpkg-query -W -f '${Version} ${Suggests}' bedrud");
    assert_eq!(fields, format!("{VERSION}-1 bedrud-recording"));
    let depends = r.sh_ok("dpkg-query -W -f '${Version} ${Depends}' bedrud-recording");
    assert!(
        depends.starts_with(&format!("{VERSION}-1 "))
            && depends.contains(&format!("bedrud (>= {VERSION})"))
            && depends.contains("libgstreamer1.0-0"),
        "{depends}"
    );

    // The worker, where recsup's lookup expects it, runs and finds every library it links.
    assert_eq!(r.owner_and_mode("/usr/lib/bedrud/egress"), (0, 0, 0o755));
    let version = r.sh_ok("/usr/lib/bedrud/egress --version");
    assert_eq!(version.trim(), format!("egress version {EGRESS}"));
    let ldd = r.sh_ok("ldd /usr/lib/bedrud/egress");
    assert!(
        ldd.contains("libgstreamer-1.0.so.0 => /") && !ldd.contains("not found"),
        "{ldd}"
    );
    // Every element its pipelines use, and the programs of the room composite with video.
    let script = format!(
        "for e in {}; do gst-inspect-1.0 --exists \"$e\" || echo \"missing element: $e\"; done; \
         for p in redis-server chromium Xvfb pulseaudio; do command -v \"$p\" >/dev/null || \
         echo \"missing program: $p\"; done",
        EGRESS_ELEMENTS.join(" ")
    );
    let missing = r.sh_ok(&script);
    assert!(missing.trim().is_empty(), "{missing}");

    // The drop-in belongs to bedrud.service and keeps it valid.
    let verify = r.sh("systemd-analyze verify bedrud.service");
    assert!(verify.status.success(), "{}", text(&verify));
    assert!(
        !text(&verify).contains("bedrud.service"),
        "{}",
        text(&verify)
    );
    let drop_in = r.read("/usr/lib/systemd/system/bedrud.service.d/recording.conf");
    assert!(
        drop_in.contains("BindPaths=/var/lib/bedrud/egress-tmp:/home/egress/tmp"),
        "{drop_in}"
    );

    // Removing the recorder leaves bedrud whole; purging it leaves nothing of its own.
    r.sh_ok("apt-get purge -y bedrud-recording");
    for gone in [
        "/usr/lib/bedrud/egress",
        "/usr/lib/systemd/system/bedrud.service.d",
        "/usr/share/doc/bedrud-recording",
    ] {
        assert!(!r.path(gone).exists(), "{gone} is still there after purge");
    }
    assert!(r.path("/usr/lib/bedrud/livekit-server").is_file());
    r.sh_ok("dpkg-query -W -f '${Status}' bedrud | grep -q 'install ok installed'");
}

#[test]
fn recording_rpm_installs_and_erases_beside_bedrud_in_an_rpm_root() {
    let rpm_tool = tool("rpm", "rpm");
    // As in the bedrud .rpm test: a Debian root with an empty RPM database (--nodeps); the
    // dependencies themselves are the .deb test's and tests/packaging.rs' business.
    let r = DebianRoot::new();
    let rpm_in = |args: &[&str]| {
        let mut c = Command::new(&rpm_tool);
        c.arg("--root").arg(&r.root).args(args);
        c
    };
    run_ok(&mut rpm_in(&["--initdb"]));
    run_ok(rpm_in(&["-i", "--nodeps"]).arg(rpm(1)).arg(recording_rpm()));
    let requires = run_ok(&mut rpm_in(&["-q", "--requires", "bedrud-recording"]));
    for needed in [
        format!("bedrud = {VERSION}"),
        "libgstreamer-1.0.so.0()(64bit)".into(),
        "gstreamer1-plugins-good".into(),
        "redis".into(),
        "chromium".into(),
    ] {
        assert!(
            requires.lines().any(|l| l.trim() == needed),
            "{needed}:\n{requires}"
        );
    }
    let suggests = run_ok(&mut rpm_in(&["-q", "--suggests", "bedrud"]));
    assert_eq!(suggests.trim(), "bedrud-recording");
    assert_eq!(r.owner_and_mode("/usr/lib/bedrud/egress"), (0, 0, 0o755));
    let drop_in = "/usr/lib/systemd/system/bedrud.service.d/recording.conf";
    assert_eq!(r.owner_and_mode(drop_in), (0, 0, 0o644));
    assert_eq!(
        r.read(drop_in),
        std::fs::read_to_string(repo_root().join("packaging/recording/recording.conf")).unwrap()
    );

    // Erasing the recorder leaves bedrud and its unit enabled; its own folders go.
    let wants = "/etc/systemd/system/multi-user.target.wants/bedrud.service";
    assert!(r.path(wants).is_symlink());
    run_ok(&mut rpm_in(&["-e", "bedrud-recording"]));
    for gone in [
        "/usr/lib/bedrud/egress",
        "/usr/lib/systemd/system/bedrud.service.d",
        "/usr/share/licenses/bedrud-recording",
    ] {
        assert!(!r.path(gone).exists(), "{gone} is still there after rpm -e");
    }
    assert!(r.path("/usr/lib/bedrud/livekit-server").is_file());
    assert!(r.path(wants).is_symlink(), "bedrud stays enabled");
}
