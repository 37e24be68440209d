//! The recording chain bedrud will drive, built from its real parts and nothing of bedrud's:
//! Redis (with a password), livekit-server with a `redis:` block, a PulseAudio daemon, the LiveKit
//! Egress worker built by scripts/install-egress.sh (with its web template; it starts Xvfb and
//! Chromium itself for the room composite with video), and a real Python participant publishing a
//! 440 Hz tone and a green camera picture. Each kind of recording bedrud relies on must finish
//! with a file that holds that tone (and picture) for as long as egress says it recorded. Runs in
//! a private network namespace (scripts/netns-run.sh): egress' WebRTC stack, like the
//! participant's and Chromium's, gathers no candidates on loopback.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::audio::{assert_length, assert_tone_from, streams, Source};
use common::egress::{wait_status, write_worker_config};
use common::procs::{proc_stat, process_tree, ProcStat};
use common::pulseaudio::PulseAudio;
use common::video::{frame_pixels, share_of, video_stream, CAMERA_RGB};
use common::*;
use livekit_api::services::egress::{
    encoding, EgressClient, EgressOutput, RoomCompositeOptions, TrackEgressOutput,
};
use livekit_protocol as proto;

/// How long each recording runs once egress reports it active: 5 s, or
/// `$BEDRUD_EGRESS_RECORD_SECS` (the figures in docs/recording.md are taken over 10 s).
fn record_for() -> Duration {
    let secs = std::env::var("BEDRUD_EGRESS_RECORD_SECS")
        .ok()
        .map(|v| {
            v.parse()
                .expect("BEDRUD_EGRESS_RECORD_SECS: a number of seconds")
        })
        .unwrap_or(5);
    Duration::from_secs(secs)
}

/// One chain at a time: each runs a worker, and the video composite a Chromium, an Xvfb and an
/// H.264 encoder besides, on a 2-core machine shared with other test binaries.
static ONE_CHAIN: Mutex<()> = Mutex::new(());

struct Chain {
    _redis: Proc,
    pulse: PulseAudio,
    _livekit: LiveKitProcess,
    egress: Proc,
    egress_log: PathBuf,
    ports: Ports,
    out: PathBuf,
}

/// The worker and everything it started: see [`procs::kill_tree`] (seen: an Xvfb outliving a
/// failed test when only the worker was killed).
impl Drop for Chain {
    fn drop(&mut self) {
        procs::kill_tree(self.egress.0.id());
    }
}

impl Chain {
    fn start(dir: &Path) -> Chain {
        let password = "test-redis-password-0123456789";
        let (redis, redis_port) = redis(dir, Some(password));
        let ports = Ports::new();
        let redis_block =
            format!("redis:\n  address: 127.0.0.1:{redis_port}\n  password: {password}\n");
        let lk_config = dir.join("livekit.yaml");
        std::fs::write(&lk_config, livekit_yaml(&ports, "APItest") + &redis_block).unwrap();
        let livekit = LiveKitProcess::start(&lk_config);
        let pulse = PulseAudio::start(dir);

        // `BEDRUD_EGRESS_LOG=debug` for egress' pipeline and Chromium details.
        let level = std::env::var("BEDRUD_EGRESS_LOG").unwrap_or_else(|_| "info".into());
        let egress_config = write_worker_config(dir, ports.livekit, redis_port, password, &level);
        let egress_log = dir.join("egress.log");
        let log = std::fs::File::create(&egress_log).unwrap();
        let bin = egress_bin();
        // The worker starts each recording as a new process of `egress` found through $PATH.
        // Xvfb, Chromium (`chromium`, looked up by chromedp) and `pactl` are found there too.
        let path = format!("{}:/usr/bin:/bin", bin.parent().unwrap().display());
        let egress = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "--", "sh", "-c"])
            .arg(PRIVATE_EGRESS_TMP)
            .arg(&bin)
            .arg(&egress_config)
            .env_clear()
            .env("PATH", path)
            .env("HOME", "/home/egress")
            .env("PULSE_SERVER", pulse.server())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("cannot start egress");
        let out = dir.join("recordings");
        std::fs::create_dir(&out).unwrap();
        Chain {
            _redis: redis,
            pulse,
            _livekit: livekit,
            egress: Proc(egress),
            egress_log,
            ports,
            out,
        }
    }

    fn api_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.ports.livekit)
    }

    /// The worker's log, and PulseAudio's when it has something to say.
    fn log(&self) -> String {
        let egress = std::fs::read_to_string(&self.egress_log).unwrap_or_default();
        match self.pulse.log() {
            pulse if pulse.trim().is_empty() => egress,
            pulse => format!("{egress}\n--- pulseaudio:\n{pulse}"),
        }
    }

    fn client(&self) -> EgressClient {
        EgressClient::with_api_key(&self.api_url(), "APItest", SECRET)
    }

    /// Waits until the worker takes requests: it logs "service ready" once it has subscribed
    /// to LiveKit's start requests on Redis (its health port answers a little earlier).
    async fn wait_worker(&mut self) {
        let start = Instant::now();
        while !self.log().contains("service ready") {
            if let Ok(Some(st)) = self.egress.0.try_wait() {
                panic!("egress exited ({st}):\n{}", self.log());
            }
            assert!(
                start.elapsed() < PATIENCE,
                "egress not ready after {PATIENCE:?}:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits for `egress_id` to reach a status `done` accepts; returns its info.
    async fn wait_status(
        &self,
        egress_id: &str,
        what: &str,
        done: impl Fn(proto::EgressStatus) -> bool,
    ) -> proto::EgressInfo {
        wait_status(&self.client(), egress_id, what, done, || self.log()).await
    }

    /// Sends the start request `start`, lets the egress record for [`record_for`], stops it,
    /// and returns the finished file's path and the duration egress reports, after checking
    /// what egress reports about it. Prints what it took and what the worker used meanwhile
    /// (`what` names the recording): the figures of docs/recording.md, never asserted.
    async fn record<E: std::fmt::Debug>(
        &self,
        what: &str,
        start: impl std::future::Future<Output = Result<proto::EgressInfo, E>>,
    ) -> (PathBuf, f64, f64) {
        let requested = Instant::now();
        let started = start.await.unwrap();
        let answered = requested.elapsed();
        let id = started.egress_id;
        self.wait_status(&id, "active", |s| {
            assert!(
                s < proto::EgressStatus::EgressEnding,
                "egress {id} ended before it was stopped ({s:?}):\n{}",
                self.log()
            );
            s == proto::EgressStatus::EgressActive
        })
        .await;
        let active = requested.elapsed();
        let usage = Usage::start(self.egress.0.id(), self.pulse.proc.0.id());
        tokio::time::sleep(record_for()).await;
        let usage = usage.finish();
        let stopping = Instant::now();
        self.client().stop_egress(&id).await.unwrap();
        let info = self
            .wait_status(&id, "finished", |s| {
                s >= proto::EgressStatus::EgressComplete
            })
            .await;
        let span = requested.elapsed().as_secs_f64();
        eprintln!(
            "figures: {what}: start request → answer {:.2} s, → EGRESS_ACTIVE {:.2} s; \
             stop request → EGRESS_COMPLETE {:.2} s; while recording: {usage}; {}",
            answered.as_secs_f64(),
            active.as_secs_f64(),
            stopping.elapsed().as_secs_f64(),
            std::fs::read_to_string("/proc/loadavg")
                .unwrap_or_default()
                .trim()
        );
        assert_eq!(
            info.status(),
            proto::EgressStatus::EgressComplete,
            "egress {id} did not complete: {:?}\n{}",
            info.error,
            self.log()
        );
        let file = info
            .file_results
            .first()
            .unwrap_or_else(|| panic!("egress {id} reports no file: {info:?}"));
        let path = PathBuf::from(&file.location);
        assert!(
            path.starts_with(&self.out),
            "without S3 the location is the worker's local path, as requested: {file:?}"
        );
        let size = std::fs::metadata(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .len();
        assert_eq!(size as i64, file.size, "size egress reported for {path:?}");
        (path, file.duration as f64 / 1e9, span)
    }
}

/// CPU time and memory of the egress worker's processes (the service, its handlers and what they
/// start: Xvfb, Chromium and Chromium's helpers) and of PulseAudio, sampled from /proc every
/// 0.5 s on a thread while a recording runs.
struct Usage {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    sampler: std::thread::JoinHandle<String>,
}

impl Usage {
    fn start(worker: u32, pulse: u32) -> Usage {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let sampler = std::thread::spawn(move || {
            // SAFETY: sysconf has no preconditions.
            let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
            let ticks = |procs: &[ProcStat]| {
                procs
                    .iter()
                    .map(|p| (p.pid, p.ticks))
                    .collect::<std::collections::HashMap<_, _>>()
            };
            let began = Instant::now();
            let first = ticks(&process_tree(worker));
            let pulse_first = proc_stat(pulse).map_or(0, |p| p.ticks);
            let (mut rss, mut pss, mut last) = (0, 0, Vec::new());
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                last = process_tree(worker);
                rss = rss.max(last.iter().map(|p| p.rss_kb).sum());
                pss = pss.max(last.iter().map(|p| p.pss_kb).sum());
                std::thread::sleep(Duration::from_millis(500));
            }
            let secs = began.elapsed().as_secs_f64();
            // Processes that started meanwhile count from 0; those that ended are not seen.
            let used: u64 = ticks(&last)
                .iter()
                .map(|(pid, t)| t - first.get(pid).copied().unwrap_or(0).min(*t))
                .sum();
            let pulse_used = proc_stat(pulse).map_or(0, |p| p.ticks) - pulse_first;
            let mut names: Vec<String> = last.iter().map(|p| p.name.clone()).collect();
            names.sort();
            names.dedup_by(|a, b| a == b);
            format!(
                "worker CPU {:.0} % of one core, RSS (summed) {} MB, PSS {} MB, {} processes ({}); \
                 PulseAudio CPU {:.1} %",
                used as f64 / hz / secs * 100.0,
                rss / 1024,
                pss / 1024,
                last.len(),
                names.join(", "),
                pulse_used as f64 / hz / secs * 100.0
            )
        });
        Usage { stop, sampler }
    }

    fn finish(self) -> String {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.sampler.join().unwrap()
    }
}

#[test]
fn audio_recordings_of_a_real_participant_hold_its_tone() {
    require_private_network("egress");
    let _one = ONE_CHAIN.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let mut chain = Chain::start(dir.path());
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        chain.wait_worker().await;
        let room = "tone";
        let token = livekit_token("alice", room);
        let ws = format!("ws://127.0.0.1:{}", chain.ports.livekit);
        let alice = Participant::join(&ws, &token, &[]);
        let published = alice.wait_event("published", |e| e["source"] == "microphone");
        let track_sid = published["sid"].as_str().unwrap().to_string();

        // Room composite, audio only, to OGG (Opus).
        let ogg = |name: &str| proto::EncodedFileOutput {
            file_type: proto::EncodedFileType::Ogg as i32,
            filepath: chain.out.join(name).display().to_string(),
            ..Default::default()
        };
        let audio_only = RoomCompositeOptions {
            audio_only: true,
            ..Default::default()
        };
        let (file, secs, _) = chain
            .record(
                "room composite, audio only, OGG",
                chain.client().start_room_composite_egress(
                    room,
                    vec![EgressOutput::File(ogg("room.ogg"))],
                    audio_only.clone(),
                ),
            )
            .await;
        assert_eq!(streams(&file), ["audio:opus"], "{}", file.display());
        assert_tone_from(&file, secs, record_for(), Source::Sdk);

        // Room composite, audio only, to MP4: with Opus, because MP4's default AAC needs
        // GStreamer's `faac`, which Debian does not ship (livekit-api's default codec is Opus).
        let mp4 = proto::EncodedFileOutput {
            file_type: proto::EncodedFileType::Mp4 as i32,
            filepath: chain.out.join("room.mp4").display().to_string(),
            ..Default::default()
        };
        assert_eq!(audio_only.encoding.audio_codec, proto::AudioCodec::Opus);
        let (file, secs, _) = chain
            .record(
                "room composite, audio only, MP4 (Opus)",
                chain.client().start_room_composite_egress(
                    room,
                    vec![EgressOutput::File(mp4)],
                    audio_only,
                ),
            )
            .await;
        assert_eq!(streams(&file), ["audio:opus"], "{}", file.display());
        assert_tone_from(&file, secs, record_for(), Source::Sdk);

        // One track as it was published (no re-encoding): the participant's Opus in OGG.
        let direct = proto::DirectFileOutput {
            filepath: chain.out.join("track.ogg").display().to_string(),
            ..Default::default()
        };
        let (file, secs, _) = chain
            .record(
                "track egress, OGG",
                chain.client().start_track_egress(
                    room,
                    TrackEgressOutput::File(Box::new(direct)),
                    &track_sid,
                ),
            )
            .await;
        assert_eq!(streams(&file), ["audio:opus"], "{}", file.display());
        assert_tone_from(&file, secs, record_for(), Source::Sdk);
        drop(alice);
    });
}

/// The room composite with video, as bedrud records a meeting: the egress template in Chromium
/// (under Xvfb, its sound into PulseAudio) shows the participant's camera and plays its
/// microphone; egress encodes the screen to H.264 and the sound to Opus in an MP4.
#[test]
fn video_room_composite_of_a_real_participant_shows_and_sounds_it() {
    require_private_network("egress");
    for program in ["chromium", "Xvfb", "pactl"] {
        assert!(
            which(program).is_some(),
            "{program} is not installed, and the room composite with video needs it: \
             apt-get install chromium xvfb pulseaudio pulseaudio-utils (scripts/install-egress.sh installs them)"
        );
    }
    let _one = ONE_CHAIN.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let mut chain = Chain::start(dir.path());
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        chain.wait_worker().await;
        let room = "picture";
        let token = livekit_token("alice", room);
        let ws = format!("ws://127.0.0.1:{}", chain.ports.livekit);
        let colour = CAMERA_RGB.map(|c| format!("{c:02x}")).concat();
        let alice = Participant::join(&ws, &token, &["--try-camera", "--camera-colour", &colour]);
        alice.wait_event("published", |e| e["source"] == "microphone");
        alice.wait_event("published", |e| e["source"] == "camera");

        let mp4 = proto::EncodedFileOutput {
            file_type: proto::EncodedFileType::Mp4 as i32,
            filepath: chain.out.join("room-video.mp4").display().to_string(),
            ..Default::default()
        };
        // 720p30 (H.264 main) with Opus: the MP4 default AAC needs `faac`, which Debian lacks.
        let options = RoomCompositeOptions {
            layout: "grid".into(),
            encoding: encoding::H264_720P_30,
            ..Default::default()
        };
        assert_eq!(options.encoding.audio_codec, proto::AudioCodec::Opus);
        let (file, secs, span) = chain
            .record(
                "room composite with video, MP4 (H.264 720p30 + Opus)",
                chain.client().start_room_composite_egress(
                    room,
                    vec![EgressOutput::File(mp4)],
                    options,
                ),
            )
            .await;
        let mut kinds = streams(&file);
        kinds.sort();
        assert_eq!(kinds, ["audio:opus", "video:h264"], "{}", file.display());

        let video = video_stream(&file);
        eprintln!("{}: {video:?}, egress reported {secs:.2} s", file.display());
        assert_eq!(
            (video.codec.as_str(), video.width, video.height),
            ("h264", 1280, 720)
        );
        assert!(video.frames > 0, "{}: no video frames", file.display());
        let web = Source::Web { span_secs: span };
        assert_length(&file, "video", video.secs, secs, web);
        assert!(
            video.secs >= record_for().as_secs_f64() - 2.0,
            "{}: only {:.2} s of video for {:?} of recording",
            file.display(),
            video.secs,
            record_for()
        );
        // The template's grid shows the one participant's camera over most of the picture: the
        // published green must dominate a frame from the last part of the recording (the
        // first frames may show the page before the track was subscribed).
        let pixels = frame_pixels(&file, video.secs - 1.5);
        let green = share_of(&pixels, CAMERA_RGB);
        assert!(
            green >= 0.5,
            "{}: only {:.0} % of the frame at {:.1} s is the camera's green",
            file.display(),
            green * 100.0,
            video.secs - 1.5
        );
        // And it moves: a second earlier the white bar was elsewhere (it crosses the picture
        // in about 3 s), so a frozen picture fails here.
        let before = frame_pixels(&file, video.secs - 2.5);
        let changed = pixels
            .iter()
            .zip(&before)
            .filter(|(a, b)| (0..3).any(|c| (a[c] as i32 - b[c] as i32).abs() > 60))
            .count() as f64
            / pixels.len() as f64;
        assert!(
            changed >= 0.05,
            "{}: the picture did not move between {:.1} s and {:.1} s ({:.1} % of it changed)",
            file.display(),
            video.secs - 2.5,
            video.secs - 1.5,
            changed * 100.0
        );
        eprintln!(
            "{}: camera green over {:.0} % of the frame, {:.0} % of it changed in 1 s",
            file.display(),
            green * 100.0,
            changed * 100.0
        );
        assert_tone_from(&file, secs, record_for(), web);
        drop(alice);
    });
}
