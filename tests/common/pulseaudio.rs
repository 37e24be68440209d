//! A private PulseAudio daemon for the egress worker: the room composite with video plays the
//! room's audio in Chromium into a PulseAudio sink egress creates per recording (`pactl
//! load-module module-null-sink`) and records that sink's monitor. Egress does not start the
//! daemon itself; it expects one to run. This is the recipe docs/recording.md gives a supervisor.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{Proc, PATIENCE};

/// A running PulseAudio; drop it to stop it.
pub struct PulseAudio {
    pub proc: Proc,
    /// Its socket, for `PULSE_SERVER=unix:<socket>` in the egress worker's environment (egress'
    /// `pactl`, Chromium and GStreamer's `pulsesrc` all read it).
    pub socket: PathBuf,
    pub log: PathBuf,
}

impl PulseAudio {
    /// Starts PulseAudio with its socket, state and log in a new 0700 folder `dir/pulse`.
    /// `-n` skips the system's default.pa (no hardware, no session modules, no D-Bus); the
    /// one module loaded is the native socket, anonymous because the folder is private (only
    /// the same user reaches it). It never exits while idle, and runs in the foreground so that
    /// it dies with its owner.
    pub fn start(dir: &Path) -> PulseAudio {
        let bin = ["/usr/bin/pulseaudio", "/usr/local/bin/pulseaudio"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .expect("pulseaudio is not installed: apt-get install pulseaudio pulseaudio-utils (scripts/install-egress.sh installs it)");
        let home = dir.join("pulse");
        std::fs::create_dir_all(&home).unwrap();
        std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700)).unwrap();
        let socket = home.join("native");
        let log = home.join("pulseaudio.log");
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(bin)
            .args([
                "-n",
                "--daemonize=no",
                "--exit-idle-time=-1",
                "--disallow-exit",
                "--use-pid-file=no",
                "--log-target=stderr",
                "-L",
            ])
            .arg(format!(
                "module-native-protocol-unix socket={} auth-anonymous=1",
                socket.display()
            ))
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            // Its cookie, runtime and state files: in the private folder, not the user's home.
            .env("HOME", &home)
            .env("XDG_RUNTIME_DIR", &home)
            .env("XDG_CONFIG_HOME", &home)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("cannot start pulseaudio");
        let mut pulse = PulseAudio {
            proc: Proc(child),
            socket,
            log,
        };
        let start = Instant::now();
        while std::os::unix::net::UnixStream::connect(&pulse.socket).is_err() {
            if let Ok(Some(st)) = pulse.proc.0.try_wait() {
                panic!("pulseaudio exited ({st}):\n{}", pulse.log());
            }
            assert!(
                start.elapsed() < PATIENCE,
                "pulseaudio not listening on {} after {PATIENCE:?}:\n{}",
                pulse.socket.display(),
                pulse.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        pulse
    }

    /// The value of `PULSE_SERVER` that reaches this daemon.
    pub fn server(&self) -> String {
        format!("unix:{}", self.socket.display())
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}
