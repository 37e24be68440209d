//! bedrud-recording under a booted systemd: a copy of the clean Debian root booted by
//! systemd-nspawn with one veth link into the test's network namespace (egress' and LiveKit's
//! WebRTC stacks gather no candidates on loopback alone), `bedrud` and `bedrud-recording`
//! installed offline with apt, recording enabled the way an administrator does it (edit
//! /etc/bedrud/config.yaml, `systemctl restart bedrud`), and a real participant's 440 Hz tone
//! recorded through bedrud's API by the packaged, sandboxed unit: audio only, then the room
//! composite with video (PulseAudio, Xvfb and Chromium under the unit). Figures are printed with
//! --nocapture.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::booted::Booted;
use super::*;

/// The veth pair nspawn makes (`--network-veth`): `ve-<machine>` stays in the test's network
/// namespace (made by scripts/netns-run.sh), `host0` is the container's. Both addresses are
/// /32s inside netns-run's 10.200.0.0/24 (the only non-loopback addresses
/// `require_private_network` accepts, and the other tests of this binary check it while this
/// one runs), joined by a host route each way, more specific than netns-run's own /24.
/// (Not a pair of the test's own moved in with `--network-interface=`: nspawn 252 then fails
/// with `Failed to get device …: No data available`, most likely because it looks devices up
/// through /sys, which netns-run does not remount for its namespace.)
const MACHINE: &str = "bedrud-rec";
const HOST_END: &str = "ve-bedrud-rec";
const CONTAINER_END: &str = "host0";
const HOST_IP: &str = "10.200.0.101";
const CONTAINER_IP: &str = "10.200.0.102";
/// `apt-get install` of the two packages and their 371 dependencies: 2.5 min at load 10.
const INSTALL_BOUND: &str = "900";
const RECORD_FOR: Duration = Duration::from_secs(5);

/// The container's veth link, addressed from outside with the host's `ip` (the minbase root has
/// no iproute2). Dropped, it removes the host end (and so the pair), should the container's
/// end not have gone with the container.
struct Veth {
    ip: PathBuf,
}

impl Veth {
    /// nspawn's options for the link.
    fn nspawn_options() -> Vec<String> {
        vec![format!("--machine={MACHINE}"), "--network-veth".into()]
    }

    /// Addresses both ends of the booted container's link, with a route each way and a default
    /// route inside, as a server has one (bedrud takes LiveKit's node IP from the interface
    /// holding the default route).
    fn configure(b: &Booted) -> Veth {
        let veth = Veth {
            ip: tool("ip", "iproute2"),
        };
        let ip = veth.ip.to_str().unwrap();
        let host = |args: &[&str]| run_ok(Command::new(ip).args(args));
        host(&["addr", "add", &format!("{HOST_IP}/32"), "dev", HOST_END]);
        host(&["link", "set", HOST_END, "up"]);
        let to_container = format!("{CONTAINER_IP}/32");
        host(&[
            "route",
            "add",
            &to_container,
            "dev",
            HOST_END,
            "src",
            HOST_IP,
        ]);
        let to_host = format!("{HOST_IP}/32");
        b.in_network(ip, &["link", "set", CONTAINER_END, "up"]);
        b.in_network(
            ip,
            &[
                "addr",
                "add",
                &format!("{CONTAINER_IP}/32"),
                "dev",
                CONTAINER_END,
            ],
        );
        b.in_network(ip, &["route", "add", &to_host, "dev", CONTAINER_END]);
        b.in_network(
            ip,
            &[
                "route",
                "add",
                "default",
                "via",
                HOST_IP,
                "dev",
                CONTAINER_END,
            ],
        );
        veth
    }
}

impl Drop for Veth {
    fn drop(&mut self) {
        let _ = Command::new(&self.ip)
            .args(["link", "del", HOST_END])
            .stderr(Stdio::null())
            .status();
    }
}

/// bedrud's API as the test reaches it over the veth.
fn api(path: &str) -> String {
    format!("http://{CONTAINER_IP}:{PACKAGED_PORT}{path}")
}

/// The last lines of bedrud's journal, for failure messages.
fn journal_tail(b: &Booted) -> String {
    String::from_utf8_lossy(
        &b.sh("journalctl -u bedrud --no-pager -n 80 -o short-monotonic")
            .stdout,
    )
    .into_owned()
}

/// One recording through bedrud's API, as a moderator does it: start with `body`, wait until
/// it is active, record for RECORD_FOR, stop, wait until it is complete, and download it into
/// `dir`. Returns the finished recording's JSON and the downloaded file.
fn record(
    b: &Booted,
    token: &str,
    room: &str,
    body: Value,
    dir: &Path,
    figures: &mut Vec<String>,
) -> (Value, PathBuf, f64) {
    let what = body.to_string();
    let poll = |id: &str, until: &str, done: &dyn Fn(&Value) -> bool| -> Value {
        let start = Instant::now();
        loop {
            let (st, r) = call(
                "GET",
                &api(&format!("/api/recordings/{id}")),
                Some(token),
                None,
            );
            assert_eq!(st, 200, "{r}");
            if done(&r) {
                return r;
            }
            assert!(
                start.elapsed() < PATIENCE,
                "recording {what} not {until} after {PATIENCE:?}: {r}\n{}",
                journal_tail(b)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let asked = Instant::now();
    let (st, rec) = call(
        "POST",
        &api(&format!("/api/room/{room}/recording/start")),
        Some(token),
        Some(&body),
    );
    assert_eq!(st, 201, "start {what}: {rec}\n{}", journal_tail(b));
    let id = rec["id"].as_str().unwrap().to_string();
    let active = poll(&id, "active", &|r| r["status"] != "starting");
    assert_eq!(active["status"], "active", "{active}\n{}", journal_tail(b));
    let to_active = asked.elapsed();
    std::thread::sleep(RECORD_FOR);
    let stopping = Instant::now();
    let (st, r) = call(
        "POST",
        &api(&format!("/api/room/{room}/recording/stop")),
        Some(token),
        None,
    );
    assert_eq!(st, 200, "{r}");
    let done = poll(&id, "finished", &|r| {
        r["status"] == "complete" || r["status"] == "failed"
    });
    assert_eq!(done["status"], "complete", "{done}\n{}", journal_tail(b));
    let span = asked.elapsed().as_secs_f64();
    let line = format!(
        "recording {what}: start request → active {:.2} s, stop request → complete {:.2} s",
        to_active.as_secs_f64(),
        stopping.elapsed().as_secs_f64()
    );
    eprintln!("booted: {line}");
    figures.push(line);

    // Kept by the unit, in its state folder, private to its user (UMask=0077).
    let stored = format!("/var/lib/bedrud/recordings/{id}.mp4");
    let (uid, _, mode) = owner_and_mode_in(b, &stored);
    assert_eq!(uid, b.uid("bedrud"), "{stored}");
    assert_eq!(mode & 0o077, 0, "{stored} is readable by others: {mode:o}");
    let (st, _, bytes) = get_bytes(&api(&format!("/api/recordings/{id}/download")), token, None);
    assert_eq!(st, 200);
    assert_eq!(Some(bytes.len() as i64), done["size"].as_i64(), "{done}");
    assert_eq!(bytes, std::fs::read(b.path(&stored)).unwrap());
    let file = dir.join(format!("{id}.mp4"));
    std::fs::write(&file, bytes).unwrap();
    (done, file, span)
}

fn owner_and_mode_in(b: &Booted, p: &str) -> (u32, u32, u32) {
    let m = std::fs::metadata(b.path(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
    (m.uid(), m.gid(), m.mode() & 0o7777)
}

fn secs(ms: &Value) -> f64 {
    ms.as_i64().unwrap_or(0) as f64 / 1000.0
}

/// The processes of bedrud.service's cgroup: (name, uid, CapEff).
fn unit_processes(b: &Booted) -> Vec<(String, u32, String)> {
    let out = b.sh_ok(
        "for d in /proc/[0-9]*; do grep -qs 'bedrud.service' $d/cgroup && \
         grep -hsE '^(Name|Uid|CapEff):' $d/status | tr '\\n' ' ' && echo; done; true",
    );
    out.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let after = |key: &str| {
                let i = f.iter().position(|w| *w == key).unwrap_or_else(|| {
                    panic!("no {key} in {l}");
                });
                f[i + 1].to_string()
            };
            (
                after("Name:"),
                after("Uid:").parse().unwrap(),
                after("CapEff:"),
            )
        })
        .collect()
}

#[test]
fn recording_deb_under_a_booted_systemd_records_a_room_through_the_api() {
    require_private_network("packages");
    let test_start = Instant::now();
    let mut figures = Vec::new();
    let b = Booted::boot_with("debian-root", &Veth::nspawn_options());
    let veth = Veth::configure(&b);
    // Every installed Debian system has an /etc/hosts naming localhost (the installer, cloud
    // images and container runtimes write one); a debootstrap minbase root has none. egress
    // needs it: its template server listens on `localhost:<template_port>`, the page Chromium
    // loads for a composite with video (without it: `page load error:
    // net::ERR_CONNECTION_REFUSED`).
    std::fs::write(
        b.path("/etc/hosts"),
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n",
    )
    .unwrap();

    // Both packages, offline: their dependencies from the downloaded .debs in apt's cache.
    copy_recording_dependencies(&b.path("/var/cache/apt/archives"));
    let bedrud = b.copy_in(&deb(1));
    let recording = b.copy_in(&recording_deb());
    let t = Instant::now();
    // dpkg's --force-unsafe-io: no fsync per unpacked file, which makes little difference to
    // the result in a throwaway root but a large one to the time of 371 packages.
    b.sh_ok_within(
        INSTALL_BOUND,
        &format!(
            "apt-get install -y --no-install-recommends -o Dpkg::Options::=--force-unsafe-io \
             {bedrud} {recording}"
        ),
    );
    let line = format!("apt-get install of both packages: {:?}", t.elapsed());
    eprintln!("booted: {line}");
    figures.push(line);
    assert!(b.ready_status(PACKAGED_PORT).contains(" 200"));
    assert!(
        b.show("DropInPaths").contains("recording.conf"),
        "the recording drop-in is not applied to bedrud.service"
    );
    assert!(
        !b.show("StatusText").contains("recording"),
        "recording is off until the administrator turns it on: {}",
        b.show("StatusText")
    );

    // What an administrator does: recording.enabled: true, then a restart.
    let config = b.read("/etc/bedrud/config.yaml");
    let (head, tail) = config
        .split_once("\nrecording:\n")
        .expect("the packaged config has a recording: section");
    let enabled = tail.replacen("  enabled: false", "  enabled: true", 1);
    assert_ne!(enabled, tail, "the recording section has enabled: false");
    std::fs::write(
        b.path("/etc/bedrud/config.yaml"),
        format!("{head}\nrecording:\n{enabled}"),
    )
    .unwrap();
    let t = Instant::now();
    b.sh_ok("systemctl restart bedrud");
    let everything = "recording: worker ready, Redis ready, PulseAudio ready";
    b.wait_for(PATIENCE, "the STATUS= line to show recording ready", || {
        b.show("StatusText").contains(everything)
    });
    let line = format!("restart to '{everything}': {:?}", t.elapsed());
    eprintln!("booted: {line}");
    figures.push(line);
    assert!(
        b.show("StatusText")
            .contains(&format!("node IP {CONTAINER_IP}")),
        "LiveKit offers the container's address: {}",
        b.show("StatusText")
    );

    // Redis, the worker and PulseAudio run inside the unit, as bedrud, with no capability.
    let procs = unit_processes(&b);
    let bedrud_uid = b.uid("bedrud");
    for name in [
        "bedrud",
        "livekit-server",
        "redis-server",
        "egress",
        "pulseaudio",
    ] {
        assert!(
            procs.iter().any(|(n, _, _)| n == name),
            "no {name} in bedrud.service: {procs:?}"
        );
    }
    for (name, uid, caps) in &procs {
        assert_eq!(*uid, bedrud_uid, "{name} does not run as bedrud: {procs:?}");
        assert_eq!(caps, "0000000000000000", "{name} has capabilities");
    }
    // The generated Redis password never reaches an argument or the journal.
    let redis_settings = b.read("/var/lib/bedrud/recording-redis.yaml");
    let settings: Value = yaml_serde::from_str(&redis_settings).unwrap();
    let password = settings["password"].as_str().expect("a Redis password");
    assert!(password.len() >= 32);
    let cmdlines = b.sh_ok("cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' '; true");
    assert!(
        !cmdlines.contains(password),
        "the Redis password is in a process's arguments"
    );
    let journal = b.sh_ok("journalctl --no-pager -o cat");
    assert!(
        !journal.contains(password),
        "the Redis password is in the journal"
    );

    // A moderator (the room's creator) and a real participant publishing the tone and a camera,
    // connected to the URL bedrud hands out, across the veth.
    let user =
        json!({"email": "alice@bedrud.test", "password": "correct horse battery", "name": "alice"});
    let (st, r) = call("POST", &api("/api/auth/register"), None, Some(&user));
    assert_eq!(st, 201, "{r}");
    let token = r["accessToken"].as_str().unwrap().to_string();
    let room = "tone";
    let (st, r) = call(
        "POST",
        &api("/api/room/create"),
        Some(&token),
        Some(&json!({"name": room})),
    );
    assert_eq!(st, 201, "{r}");
    let (st, join) = call(
        "POST",
        &api("/api/room/join"),
        Some(&token),
        Some(&json!({"roomName": room})),
    );
    assert_eq!(st, 200, "{join}");
    let url = join["livekitHost"].as_str().unwrap();
    // LiveKit's signalling through bedrud's own listener (its /livekit proxy), on the address
    // the client used; the media then goes to LiveKit's node IP.
    assert_eq!(url, format!("ws://{CONTAINER_IP}:{PACKAGED_PORT}/livekit"));
    let alice = Participant::join(
        url,
        join["token"].as_str().unwrap(),
        &["--try-camera", "--camera-colour", "00c800"],
    );
    alice.wait_event("published", |e| e["source"] == "microphone");
    alice.wait_event("published", |e| e["source"] == "camera");

    let dir = tempfile::tempdir().unwrap();
    // Audio only.
    let (done, file, _) = record(
        &b,
        &token,
        room,
        json!({"audioOnly": true}),
        dir.path(),
        &mut figures,
    );
    assert_eq!(audio::streams(&file), ["audio:opus"], "{done}");
    audio::assert_tone(&file, secs(&done["durationMs"]), RECORD_FOR);

    // The room composite with video: Chromium joins the room in Xvfb and its sound goes through
    // bedrud's PulseAudio, all under the unit's sandbox.
    let (done, file, span) = record(
        &b,
        &token,
        room,
        json!({"audioOnly": false}),
        dir.path(),
        &mut figures,
    );
    let mut kinds = audio::streams(&file);
    kinds.sort();
    assert_eq!(kinds, ["audio:opus", "video:h264"], "{done}");
    // Chromium's window was captured: a picture, and frames throughout (30 a second, whatever
    // the load, in tests/egress.rs; here at least half of them).
    let probe = run_ok(
        Command::new(audio::tool("ffprobe"))
            .args(["-v", "error", "-select_streams", "v:0", "-count_packets"])
            .args(["-show_entries", "stream=width,height,nb_read_packets"])
            .args(["-of", "csv=p=0"])
            .arg(&file),
    );
    let video: Vec<u64> = probe
        .trim()
        .split(',')
        .map(|v| v.parse().unwrap_or_else(|_| panic!("ffprobe: {probe}")))
        .collect();
    let frames_expected = 15.0 * secs(&done["durationMs"]);
    assert!(
        video.len() == 3 && video[0] > 0 && video[1] > 0 && video[2] as f64 >= frames_expected,
        "width, height, frames: {video:?} for {done}"
    );
    figures.push(format!("video: width, height, frames {video:?}"));
    // The sound went through Chromium and PulseAudio: one second may drop out.
    audio::assert_tone_from(
        &file,
        secs(&done["durationMs"]),
        RECORD_FOR,
        audio::Source::Web { span_secs: span },
    );

    // The participant leaves; `systemctl stop` then ends bedrud and everything it runs for
    // recording, cleanly. (LiveKit's drain may run out its stopGracePeriod, 20 s: the video
    // composite's Chromium participant, stopped without leaving, stays in the room until its
    // ICE connection times out; then bedrud forces LiveKit to stop, as designed.)
    let mut alice = alice;
    alice.send("leave");
    // Her exit, as the meeting tests wait for it: the Python SDK's own "disconnected" event may
    // not come for a leave it was asked for (its `Room.disconnect` emits it only if its state
    // was not already flipped by the native side): missed once here, after her tracks were
    // unpublished.
    assert!(
        alice.wait_exit().success(),
        "the participant failed to leave"
    );
    let cursor = b.cursor();
    let t = Instant::now();
    b.sh_ok("systemctl stop bedrud");
    let line = format!("systemctl stop with recording: {:?}", t.elapsed());
    eprintln!("booted: {line}");
    figures.push(line);
    assert_eq!(b.show("Result"), "success");
    assert_eq!(b.show("ExecMainStatus"), "0", "bedrud exits 0 on SIGTERM");
    let stopping: String = b
        .journal(Some(&cursor))
        .iter()
        .filter_map(|e| e.get("MESSAGE").and_then(Value::as_str))
        .map(|m| format!("{m}\n"))
        .collect();
    assert!(stopping.contains("LiveKit stopped"), "{stopping}");
    figures.push(format!(
        "LiveKit forced to stop after its drain: {}",
        stopping.contains("forcing it to stop")
    ));
    assert!(unit_processes(&b).is_empty(), "{:?}", unit_processes(&b));

    let line = format!("booted recording test: {:?}", test_start.elapsed());
    figures.push(line);
    drop(b);
    drop(veth);
    eprintln!("booted: figures:\n  {}", figures.join("\n  "));
}
