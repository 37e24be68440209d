//! The recording chain bedrud will drive, built from its real parts and nothing of bedrud's:
//! Redis (with a password), livekit-server with a `redis:` block, the LiveKit Egress worker built
//! by scripts/install-egress.sh, and a real Python participant publishing a 440 Hz tone. Each
//! kind of recording bedrud relies on must finish with a file that holds that tone for as long as
//! egress says it recorded. Runs in a private network namespace (scripts/netns-run.sh): egress'
//! WebRTC stack, like the participant's, gathers no candidates on loopback.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::audio::{self, streams};
use common::*;
use livekit_api::access_token::{AccessToken, VideoGrants};
use livekit_api::services::egress::{
    EgressClient, EgressListFilter, EgressListOptions, EgressOutput, RoomCompositeOptions,
    TrackEgressOutput,
};
use livekit_protocol as proto;

/// How long each recording runs once egress reports it active.
const RECORD_FOR: Duration = Duration::from_secs(5);

fn egress_bin() -> PathBuf {
    let p = repo_root().join(format!(".tools/egress-{EGRESS}/egress"));
    assert!(
        p.is_file(),
        "the LiveKit Egress worker {EGRESS} is not built at {}.\n\
         Build it with: scripts/install-egress.sh   (scripts/test.sh does; needs Go, GStreamer's -dev packages and the vendored source)",
        p.display()
    );
    p
}

/// Egress writes every recording first under the fixed folder `/home/egress/tmp/<egress id>`
/// (not configurable in v1.14.0). The worker runs in a mount namespace of its own with a tmpfs
/// over `/home`, so that it gets that folder without touching the host's `/home` (nor the view
/// of it the other tests in this network namespace have).
const PRIVATE_EGRESS_TMP: &str = "mount -t tmpfs -o mode=0755 bedrud-egress-test /home \
     && mkdir -p /home/egress/tmp && exec \"$0\" --config \"$1\"";

struct Chain {
    _redis: Proc,
    _livekit: LiveKitProcess,
    egress: Proc,
    egress_log: PathBuf,
    ports: Ports,
    out: PathBuf,
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

        // Egress' resource guard counts whole CPUs (a room composite asks for 4 by default);
        // the costs are lowered so that a 2-core test machine accepts every request.
        let costs = [
            "room_composite_cpu_cost",
            "audio_room_composite_cpu_cost",
            "web_cpu_cost",
            "audio_web_cpu_cost",
            "participant_cpu_cost",
            "track_composite_cpu_cost",
            "track_cpu_cost",
        ]
        .map(|k| format!("  {k}: 0.1\n"))
        .concat();
        let egress_config = dir.join("egress.yaml");
        std::fs::write(
            &egress_config,
            format!(
                "api_key: APItest\napi_secret: {SECRET}\nws_url: ws://127.0.0.1:{lk}\n\
                 redis:\n  address: 127.0.0.1:{redis_port}\n  password: {password}\n\
                 health_port: {health}\ntemplate_port: {template}\nlogging:\n  level: info\ncpu_cost:\n{costs}",
                lk = ports.livekit,
                health = free_port(false),
                template = free_port(false),
            ),
        )
        .unwrap();
        let egress_log = dir.join("egress.log");
        let log = std::fs::File::create(&egress_log).unwrap();
        let bin = egress_bin();
        // The worker starts each recording as a new process of `egress` found through $PATH.
        let path = format!("{}:/usr/bin:/bin", bin.parent().unwrap().display());
        let egress = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "--", "sh", "-c"])
            .arg(PRIVATE_EGRESS_TMP)
            .arg(&bin)
            .arg(&egress_config)
            .env_clear()
            .env("PATH", path)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("cannot start egress");
        let out = dir.join("recordings");
        std::fs::create_dir(&out).unwrap();
        Chain {
            _redis: redis,
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

    fn log(&self) -> String {
        std::fs::read_to_string(&self.egress_log).unwrap_or_default()
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
        let start = Instant::now();
        loop {
            let opts = EgressListOptions {
                filter: EgressListFilter::Egress(egress_id.to_string()),
                active: false,
                page_token: None,
            };
            let items = self.client().list_egress(opts).await.unwrap();
            if let Some(info) = items.into_iter().next() {
                if done(info.status()) {
                    return info;
                }
                assert!(
                    start.elapsed() < PATIENCE,
                    "egress {egress_id} not {what} after {PATIENCE:?}: {info:?}\n{}",
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Lets a started egress record for [`RECORD_FOR`], stops it, and returns the finished
    /// file's path after checking what egress reports about it.
    async fn record(&self, started: proto::EgressInfo) -> (PathBuf, f64) {
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
        tokio::time::sleep(RECORD_FOR).await;
        self.client().stop_egress(&id).await.unwrap();
        let info = self
            .wait_status(&id, "finished", |s| {
                s >= proto::EgressStatus::EgressComplete
            })
            .await;
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
        (path, file.duration as f64 / 1e9)
    }
}

/// The file holds the tone for as long as egress says it recorded ([`RECORD_FOR`] here).
fn assert_tone(file: &Path, reported_secs: f64) {
    audio::assert_tone(file, reported_secs, RECORD_FOR);
}

#[test]
fn audio_recordings_of_a_real_participant_hold_its_tone() {
    require_private_network("egress");
    let dir = tempfile::tempdir().unwrap();
    let mut chain = Chain::start(dir.path());
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        chain.wait_worker().await;
        let room = "tone";
        let token = AccessToken::with_api_key("APItest", SECRET)
            .with_identity("alice")
            .with_grants(VideoGrants {
                room_join: true,
                room: room.into(),
                ..Default::default()
            })
            .to_jwt()
            .unwrap();
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
        let started = chain
            .client()
            .start_room_composite_egress(
                room,
                vec![EgressOutput::File(ogg("room.ogg"))],
                audio_only.clone(),
            )
            .await
            .unwrap();
        let (file, secs) = chain.record(started).await;
        assert_eq!(streams(&file), ["audio:opus"], "{}", file.display());
        assert_tone(&file, secs);

        // Room composite, audio only, to MP4: with Opus, because MP4's default AAC needs
        // GStreamer's `faac`, which Debian does not ship (livekit-api's default codec is Opus).
        let mp4 = proto::EncodedFileOutput {
            file_type: proto::EncodedFileType::Mp4 as i32,
            filepath: chain.out.join("room.mp4").display().to_string(),
            ..Default::default()
        };
        assert_eq!(audio_only.encoding.audio_codec, proto::AudioCodec::Opus);
        let started = chain
            .client()
            .start_room_composite_egress(room, vec![EgressOutput::File(mp4)], audio_only)
            .await
            .unwrap();
        let (file, secs) = chain.record(started).await;
        assert_eq!(streams(&file), ["audio:opus"], "{}", file.display());
        assert_tone(&file, secs);

        // One track as it was published (no re-encoding): the participant's Opus in OGG.
        let direct = proto::DirectFileOutput {
            filepath: chain.out.join("track.ogg").display().to_string(),
            ..Default::default()
        };
        let started = chain
            .client()
            .start_track_egress(room, TrackEgressOutput::File(Box::new(direct)), &track_sid)
            .await
            .unwrap();
        let (file, secs) = chain.record(started).await;
        assert_eq!(streams(&file), ["audio:opus"], "{}", file.display());
        assert_tone(&file, secs);
        drop(alice);
    });
}
