//! Recording rooms with LiveKit Egress: start and stop, the state egress reports (webhooks and
//! reconciliation both go through [`Recorder::refresh`]), `process_recording` (check and keep
//! the finished file or object), deletion and retention. Where files are kept (the local
//! folder or S3) is [`storage`]'s business.
//!
//! Egress' own answer (`ListEgress` for one egress id) is the one source of truth: a webhook
//! only says "look again", so repeated, reordered or lost webhooks all end in the same state.

pub mod egress;
pub mod files;
pub mod storage;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use livekit_protocol as proto;
use tokio::sync::watch;

use crate::config::{Config, Credentials};
use crate::livekit::client::{LiveKitClient, LkError};
use crate::livekit::status::LiveKitStatus;
use crate::store::{NewRecording, Outcome, Recording, RecordingStatus, Store, StoreError};
pub use egress::EgressError;
pub use storage::StorageError;
use storage::{Bucket, Location};

/// A recording still `starting` without an egress id this long after it was created was being
/// started by a bedrud that stopped meanwhile: egress never heard of it.
const ABANDONED_START: Duration = Duration::from_secs(120);

/// How long egress may report a recording `EGRESS_STARTING` before bedrud gives up on it. A
/// start normally turns active within a second (audio) or about 15 s (a composite with video
/// on a loaded 2-core machine: Xvfb, Chromium, the template joining the room); one video start
/// in ~21 runs stayed starting for good (90 s and more), holding the room's one recording slot.
/// Four times the slowest start seen, so a slow but healthy start is never cut.
const STUCK_STARTING: Duration = Duration::from_secs(60);

/// Whether a recording created at `created_ms` that egress still reports starting at `now_ms`
/// has been starting for too long (see [`STUCK_STARTING`]).
fn stuck_starting(created_ms: i64, now_ms: i64) -> bool {
    now_ms.saturating_sub(created_ms) > STUCK_STARTING.as_millis() as i64
}

/// How long after egress finished a recording bedrud keeps trying to check it while S3 cannot
/// be asked (down, unreachable, refusing bedrud's credentials): every reconciliation pass tries
/// again, and only then is it failed. A webhook acknowledged during an S3 outage must not cost
/// a recording that egress did upload. LiveKit keeps an ended egress' report for 24 h
/// (`CleanEndedEgress`), far longer. The room's one recording slot stays taken meanwhile, which
/// costs nothing while S3 is down: a new recording could not be uploaded either.
const PROCESS_RETRY_FOR: Duration = Duration::from_secs(3600);

/// Whether a recording egress finished at `ended_ms` has waited too long at `now_ms` for S3
/// to answer (see [`PROCESS_RETRY_FOR`]).
fn give_up_checking(ended_ms: i64, now_ms: i64) -> bool {
    now_ms.saturating_sub(ended_ms) > PROCESS_RETRY_FOR.as_millis() as i64
}

/// What `process_recording` concluded.
enum Processed {
    /// How the recording ended.
    Done(Outcome),
    /// Nothing yet: where the recording should be could not be asked (why). Tried again at the
    /// next reconciliation pass.
    Later(String),
}

#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    #[error("recording is not enabled on this server (recording.enabled)")]
    Disabled,
    #[error("this room is already being recorded")]
    AlreadyRecording(Box<Recording>),
    #[error("a recording in progress cannot be deleted: stop it first")]
    InProgress,
    #[error("cannot prepare the recordings folder {0}: {1}")]
    Folder(String, String),
    #[error("cannot delete the recording file {0}: {1}")]
    Delete(String, String),
    #[error(transparent)]
    Egress(#[from] EgressError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub struct Recorder {
    store: Store,
    egress: egress::Egress,
    /// To see whether an active recording's egress participant is still in its room.
    livekit: LiveKitClient,
    /// Egress ids whose participant was missing at the last reconciliation pass.
    missing: std::sync::Mutex<std::collections::HashSet<String>>,
    config: watch::Receiver<Arc<Config>>,
    /// The processes embedded mode runs for recording (`recording: None` otherwise): a
    /// composite with video is refused up front while bedrud's PulseAudio is not running.
    status: watch::Receiver<LiveKitStatus>,
    /// One `process_recording` at a time in this process (a webhook and reconciliation may
    /// both see the same end); the store's conditional updates guard across instances.
    settling: tokio::sync::Mutex<()>,
    /// `recording.s3` as bedrud started with (`None`: local files). Built once: changing it
    /// takes a restart (see `reload::keys`), like the worker it goes with.
    s3: Result<Option<Bucket>, StorageError>,
}

/// Where egress is asked to put a new recording.
enum Target<'a> {
    /// The local `.incoming/` folder.
    Folder(PathBuf),
    /// The S3 bucket (egress uploads).
    Bucket(&'a Bucket),
}

/// Where a finished recording's file is.
pub enum Stored {
    /// In the local recordings folder.
    File(PathBuf),
    /// In S3: the bucket and the object's key.
    Object(Bucket, String),
}

fn ns_to_ms(ns: i64) -> Option<i64> {
    (ns > 0).then_some(ns / 1_000_000)
}

impl Recorder {
    pub fn new(
        store: Store,
        livekit: LiveKitClient,
        livekit_host: &str,
        credentials: &Credentials,
        config: watch::Receiver<Arc<Config>>,
        status: watch::Receiver<LiveKitStatus>,
    ) -> Recorder {
        let s3 = config
            .borrow()
            .recording
            .s3
            .as_ref()
            .map(Bucket::new)
            .transpose();
        Recorder {
            store,
            egress: egress::Egress::new(livekit_host, credentials),
            livekit,
            missing: Default::default(),
            config,
            status,
            settling: Default::default(),
            s3,
        }
    }

    /// The S3 bucket recordings go to; `None` when they are kept locally.
    fn bucket(&self) -> Result<Option<&Bucket>, StorageError> {
        self.s3.as_ref().map(Option::as_ref).map_err(Clone::clone)
    }

    fn config(&self) -> Arc<Config> {
        self.config.borrow().clone()
    }

    pub fn egress(&self) -> &egress::Egress {
        &self.egress
    }

    /// Where a complete recording's file is, if it has one. Each row says where it was kept,
    /// so local recordings stay reachable after S3 was configured.
    pub fn stored(&self, r: &Recording) -> Result<Option<Stored>, RecordingError> {
        let Some(file) = r.file.as_deref() else {
            return Ok(None);
        };
        match Location::parse(file) {
            Location::Local(name) => Ok(Some(Stored::File(
                self.config().recordings_dir().join(name),
            ))),
            Location::S3 { bucket, key } => match self.bucket()? {
                Some(b) if b.name() == bucket => Ok(Some(Stored::Object(b.clone(), key))),
                other => Err(StorageError::Elsewhere {
                    bucket,
                    key,
                    why: if other.is_some() {
                        "recording.s3.bucket names another bucket"
                    } else {
                        "recording.s3 is not set"
                    },
                }
                .into()),
            },
        }
    }

    /// Refuses when recording is off or its storage could not be set up (read anew each
    /// time: a reload may change it).
    pub fn ensure_enabled(&self) -> Result<(), RecordingError> {
        if !self.config().recording.enabled {
            return Err(RecordingError::Disabled);
        }
        self.bucket()?;
        Ok(())
    }

    /// Starts recording `room`: takes the room's slot in the store first (so two starts cannot
    /// both reach egress), then asks egress; the slot is given back if egress refuses. A
    /// composite with video that bedrud's own worker cannot record (its PulseAudio not
    /// running) is refused before anything changes.
    pub async fn start(
        &self,
        room: &str,
        started_by: &str,
        layout: &str,
        audio_only: bool,
    ) -> Result<Recording, RecordingError> {
        self.ensure_enabled()?;
        if !audio_only {
            let pulse = self
                .status
                .borrow()
                .recording
                .as_ref()
                .map(|r| r.pulse.clone());
            if let Some(refused) = egress::video_refusal(pulse.as_ref()) {
                tracing::warn!(%room, "recording with video refused: {refused}");
                return Err(refused.into());
            }
        }
        // The bucket is tried before anything is recorded: a meeting recorded only to fail
        // its upload at the end would be lost.
        let target = match self.bucket()? {
            Some(bucket) => {
                bucket.probe().await?;
                Target::Bucket(bucket)
            }
            None => {
                let dir = self.config().recordings_dir();
                Target::Folder(files::prepare(&dir).map_err(|e| {
                    RecordingError::Folder(dir.display().to_string(), e.to_string())
                })?)
            }
        };
        let new = NewRecording {
            room: room.to_string(),
            started_by: started_by.to_string(),
            layout: layout.to_string(),
            audio_only,
        };
        let rec = match self.store.insert_recording(new).await {
            Ok(r) => r,
            Err(StoreError::Conflict(_)) => {
                return match self.store.recording_in_progress(room).await? {
                    Some(r) => Err(RecordingError::AlreadyRecording(Box::new(r))),
                    None => Err(StoreError::Conflict("the room's recording slot").into()),
                }
            }
            Err(e) => return Err(e.into()),
        };
        let output = match target {
            Target::Folder(incoming) => proto::EncodedFileOutput {
                file_type: proto::EncodedFileType::Mp4 as i32,
                filepath: incoming
                    .join(files::file_name(&rec.id))
                    .display()
                    .to_string(),
                // No JSON manifest left beside the file in `.incoming/` (bedrud uses none).
                disable_manifest: true,
                ..Default::default()
            },
            Target::Bucket(bucket) => bucket.egress_output(&rec.id),
        };
        match self.egress.start(room, layout, audio_only, output).await {
            Ok(info) => {
                self.store
                    .set_recording_egress(&rec.id, &info.egress_id)
                    .await?;
                tracing::info!(%room, recording = %rec.id, egress = %info.egress_id, "recording started");
                self.apply(info).await?;
                Ok(self.store.recording(&rec.id).await?.unwrap_or(rec))
            }
            Err(e) => {
                self.store.delete_recording(&rec.id).await?;
                tracing::warn!(%room, "recording could not start: {e}");
                Err(e.into())
            }
        }
    }

    /// Stops the room's recording. Harmless when none is in progress: answers the room's
    /// latest recording as it is (`None` when the room was never recorded).
    pub async fn stop(&self, room: &str) -> Result<Option<Recording>, RecordingError> {
        let Some(rec) = self.store.recording_in_progress(room).await? else {
            return Ok(self
                .store
                .recordings_of_room(room)
                .await?
                .into_iter()
                .next());
        };
        let Some(egress_id) = rec.egress_id.clone() else {
            // Still being started by another request; it can be stopped once egress answered.
            return Ok(Some(rec));
        };
        match self.egress.stop(room, &egress_id).await {
            Ok(info) => self.apply(info).await?,
            // Already ending or ended (or unknown): egress' own state says which.
            Err(EgressError::NotFound(_) | EgressError::Refused(_)) => {
                self.refresh(&egress_id).await?
            }
            Err(e) => return Err(e.into()),
        }
        Ok(self.store.recording(&rec.id).await?)
    }

    /// Brings the recording of `egress_id` up to date with what egress reports (after a
    /// webhook, and in reconciliation). Not bedrud's egress: nothing to do.
    pub async fn refresh(&self, egress_id: &str) -> Result<(), RecordingError> {
        let Some(rec) = self.store.recording_by_egress(egress_id).await? else {
            return Ok(());
        };
        if !rec.status.in_progress() {
            return Ok(());
        }
        match self.egress.info(&rec.room, egress_id).await? {
            Some(info) => self.apply(info).await,
            None => {
                let why = "egress no longer knows this recording (its worker or LiveKit's Redis \
                           lost it)";
                self.finish(&rec, &Outcome::Failed(why.into()), None).await
            }
        }
    }

    /// Applies egress' report of one of bedrud's recordings.
    async fn apply(&self, info: proto::EgressInfo) -> Result<(), RecordingError> {
        let Some(rec) = self.store.recording_by_egress(&info.egress_id).await? else {
            return Ok(());
        };
        let started = ns_to_ms(info.started_at);
        use proto::EgressStatus as S;
        match info.status() {
            S::EgressStarting => {
                if stuck_starting(rec.created_at, crate::store::now_ms()) {
                    let why = format!(
                        "egress did not start recording within {}s (it still reported \
                         EGRESS_STARTING); bedrud stopped it",
                        STUCK_STARTING.as_secs()
                    );
                    // Failed first (so the room's slot is free even if the stop fails), then
                    // egress is told to give up; its later reports find the row finished.
                    self.finish(&rec, &Outcome::Failed(why), None).await?;
                    if let Err(e) = self.egress.stop(&rec.room, &info.egress_id).await {
                        tracing::warn!(room = %rec.room, recording = %rec.id, "stopping the stuck egress failed: {e}");
                    }
                }
            }
            S::EgressActive => {
                self.store
                    .advance_recording(&rec.id, RecordingStatus::Active, started)
                    .await?;
            }
            S::EgressEnding => {
                self.store
                    .advance_recording(&rec.id, RecordingStatus::Ending, started)
                    .await?;
            }
            S::EgressComplete | S::EgressLimitReached => {
                match self.process_recording(&rec, &info).await {
                    Processed::Done(outcome) => self.finish(&rec, &outcome, started).await?,
                    Processed::Later(why) => self.check_later(&rec, &info, why, started).await?,
                }
            }
            S::EgressFailed | S::EgressAborted => {
                let mut why = if info.error.is_empty() {
                    format!("egress ended the recording as {:?}", info.status())
                } else {
                    format!("egress failed: {}", info.error)
                };
                // Egress uploads to S3 from the worker's host, with the settings bedrud sent.
                let s3 = matches!(self.bucket(), Ok(Some(_)));
                if s3 && info.error.to_ascii_lowercase().contains("upload") {
                    why.push_str(
                        "; fix: check that recording.s3.bucket exists, that the egress workers \
                         reach recording.s3.endpoint, and that recording.s3.accessKey may write",
                    );
                }
                self.finish(&rec, &Outcome::Failed(why), started).await?;
            }
        }
        Ok(())
    }

    async fn finish(
        &self,
        rec: &Recording,
        outcome: &Outcome,
        started: Option<i64>,
    ) -> Result<(), RecordingError> {
        if self
            .store
            .finish_recording(&rec.id, outcome, started, crate::store::now_ms())
            .await?
        {
            match outcome {
                Outcome::Complete { size, .. } => {
                    tracing::info!(room = %rec.room, recording = %rec.id, size, "recording complete")
                }
                Outcome::Failed(why) => {
                    tracing::warn!(room = %rec.room, recording = %rec.id, "recording failed: {why}")
                }
            }
        }
        Ok(())
    }

    /// A completed recording S3 could not be asked about: stays `ending` for the next
    /// reconciliation pass to check again, unless it has waited [`PROCESS_RETRY_FOR`] already.
    async fn check_later(
        &self,
        rec: &Recording,
        info: &proto::EgressInfo,
        why: String,
        started: Option<i64>,
    ) -> Result<(), RecordingError> {
        let now = crate::store::now_ms();
        // Egress always reports when it ended a completed recording; were it missing, the
        // retries would end with LiveKit forgetting the egress (see `refresh`).
        let ended = ns_to_ms(info.ended_at).unwrap_or(now);
        if give_up_checking(ended, now) {
            let minutes = PROCESS_RETRY_FOR.as_secs() / 60;
            let why = format!("{why} (still, {minutes} min after egress finished it)");
            return self.finish(rec, &Outcome::Failed(why), started).await;
        }
        tracing::warn!(
            room = %rec.room,
            recording = %rec.id,
            "the finished recording cannot be checked yet; trying again at the next \
             reconciliation pass: {why}"
        );
        self.store
            .advance_recording(&rec.id, RecordingStatus::Ending, started)
            .await?;
        Ok(())
    }

    /// `process_recording`: after egress completed, check the file or object it reports
    /// (there, not empty, the size egress reported) and keep it (local files move into the
    /// recordings folder). Anything missing is a failure with its reason; S3 not answering is
    /// no answer yet.
    async fn process_recording(&self, rec: &Recording, info: &proto::EgressInfo) -> Processed {
        let _one = self.settling.lock().await;
        let Some(file) = info.file_results.first() else {
            return Processed::Done(Outcome::Failed(
                "egress completed but reported no file".into(),
            ));
        };
        match self.bucket() {
            Ok(Some(bucket)) => return check_object(bucket, rec, info, file).await,
            Ok(None) => {}
            Err(e) => return Processed::Done(Outcome::Failed(e.to_string())),
        }
        let dir = self.config().recordings_dir();
        let name = files::file_name(&rec.id);
        let (location, size) = (file.location.clone(), file.size);
        let settled = {
            let name = name.clone();
            tokio::task::spawn_blocking(move || files::settle(&dir, &name, &location, size)).await
        };
        Processed::Done(match settled {
            Ok(Ok(size)) => Outcome::Complete {
                file: name,
                size: i64::try_from(size).unwrap_or(i64::MAX),
                duration_ms: ns_to_ms(file.duration).unwrap_or(0),
            },
            Ok(Err(e)) => Outcome::Failed(e.to_string()),
            Err(e) => Outcome::Failed(format!("checking the file failed: {e}")),
        })
    }

    /// Deletes a finished recording: its file or object, then its row.
    pub async fn delete(&self, rec: &Recording) -> Result<(), RecordingError> {
        if rec.status.in_progress() {
            return Err(RecordingError::InProgress);
        }
        match self.stored(rec)? {
            Some(Stored::File(path)) => files::remove(&path)
                .map_err(|e| RecordingError::Delete(path.display().to_string(), e.to_string()))?,
            Some(Stored::Object(bucket, key)) => bucket.delete(&key).await?,
            None => {}
        }
        self.store.delete_recording(&rec.id).await?;
        Ok(())
    }

    /// Reconciliation: every recording bedrud thinks in progress is compared with egress (a
    /// lost `egress_ended` is recovered here). Returns how many changed.
    pub async fn reconcile(&self) -> Result<u64, RecordingError> {
        let mut changed = 0;
        for rec in self.store.recordings_in_progress().await? {
            match &rec.egress_id {
                Some(id) => {
                    self.refresh(id).await?;
                    self.check_worker(&rec, id).await?;
                }
                None => {
                    let age = crate::store::now_ms() - rec.created_at;
                    if age > ABANDONED_START.as_millis() as i64 {
                        let why = "the start never completed (bedrud stopped while starting it)";
                        self.finish(&rec, &Outcome::Failed(why.into()), None)
                            .await?;
                    }
                }
            }
            let now = self.store.recording(&rec.id).await?.map(|r| r.status);
            if now != Some(rec.status) {
                changed += 1;
            }
        }
        Ok(changed)
    }

    /// A worker that died mid-recording (killed, out of memory, its host gone) never reports
    /// the end: LiveKit keeps answering `EGRESS_ACTIVE`. The recording's participant (identity =
    /// egress id, hidden) leaves the room when its handler dies, so an active recording whose
    /// participant is missing at two passes in a row is failed, and egress is asked to stop it.
    async fn check_worker(&self, rec: &Recording, egress_id: &str) -> Result<(), RecordingError> {
        let Some(now) = self.store.recording(&rec.id).await? else {
            return Ok(());
        };
        if now.status != RecordingStatus::Active {
            self.forget_missing(egress_id);
            return Ok(());
        }
        let present = match self.livekit.active_participants(&rec.room).await {
            Ok(ps) => ps.iter().any(|p| p.identity == egress_id),
            Err(LkError::NotFound(_)) => false,
            // LiveKit itself unreachable: no conclusion about the worker.
            Err(_) => return Ok(()),
        };
        if present {
            self.forget_missing(egress_id);
            return Ok(());
        }
        let again = !self
            .missing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(egress_id.to_string());
        if again {
            self.forget_missing(egress_id);
            let why = "the egress worker stopped recording without reporting it (its participant \
                       left the room while egress still says active): the worker probably died; \
                       check its log";
            self.finish(&now, &Outcome::Failed(why.into()), None)
                .await?;
            // Let LiveKit forget it too; with the worker gone this may well fail.
            let _ = self.egress.stop(&rec.room, egress_id).await;
        }
        Ok(())
    }

    fn forget_missing(&self, egress_id: &str) {
        self.missing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(egress_id);
    }

    /// Retention (`recording.retainDays`, read anew each time so a reload applies): deletes
    /// finished recordings older than that. Returns how many it deleted.
    pub async fn sweep(&self) -> Result<u64, RecordingError> {
        let Some(retain) = self.config().recording.retain else {
            return Ok(0);
        };
        let cutoff = crate::store::now_ms() - i64::try_from(retain.as_millis()).unwrap_or(i64::MAX);
        let mut deleted = 0;
        for rec in self.store.finished_recordings_before(cutoff).await? {
            self.delete(&rec).await?;
            tracing::info!(room = %rec.room, recording = %rec.id, "recording deleted (recording.retainDays)");
            deleted += 1;
        }
        Ok(deleted)
    }
}

/// `process_recording` for S3: the object egress uploaded is there (a HEAD), not empty, and as
/// large as egress reported; its location is what the row keeps. S3 not answering (or
/// refusing bedrud) says nothing about the object: [`Processed::Later`].
async fn check_object(
    bucket: &Bucket,
    rec: &Recording,
    info: &proto::EgressInfo,
    file: &proto::FileInfo,
) -> Processed {
    let key = bucket.key(&rec.id);
    let outcome = match bucket.size(&key).await {
        Ok(Some(size)) => checked_object(bucket, rec, &key, size, file),
        Ok(None) => {
            // A worker with a backup storage of its own puts the file there when the upload
            // to bedrud's bucket failed.
            let backup = if info.backup_storage_used {
                " (egress used its backup storage: the upload to recording.s3 failed)"
            } else {
                ""
            };
            Outcome::Failed(format!(
                "egress reported the recording at {}, but bucket {} has no object {key}{backup}",
                file.location,
                bucket.name()
            ))
        }
        Err(e @ StorageError::Unavailable { .. }) => {
            return Processed::Later(format!("cannot check the uploaded recording: {e}"));
        }
        Err(e) => Outcome::Failed(format!("checking the uploaded recording failed: {e}")),
    };
    Processed::Done(outcome)
}

/// The object S3 has, of `size` bytes, against what egress reported uploading.
fn checked_object(
    bucket: &Bucket,
    rec: &Recording,
    key: &str,
    size: u64,
    file: &proto::FileInfo,
) -> Outcome {
    if size == 0 {
        return Outcome::Failed(format!("the recording object {key} is empty"));
    }
    if file.size > 0 && size != file.size as u64 {
        return Outcome::Failed(format!(
            "the recording object {key} has {size} bytes, egress reported {}",
            file.size
        ));
    }
    Outcome::Complete {
        file: bucket.location(&rec.id).to_column(),
        size: i64::try_from(size).unwrap_or(i64::MAX),
        duration_ms: ns_to_ms(file.duration).unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checking_a_finished_recording_is_retried_for_an_hour() {
        let ended = 1_700_000_000_000;
        assert!(!give_up_checking(ended, ended));
        assert!(!give_up_checking(ended, ended + 3_600_000));
        assert!(give_up_checking(ended, ended + 3_600_001));
        // A clock that went back is no reason to give up.
        assert!(!give_up_checking(ended, ended - 5_000));
    }

    #[test]
    fn a_start_is_stuck_only_after_the_limit() {
        let created = 1_000_000;
        let limit = STUCK_STARTING.as_millis() as i64;
        assert!(!stuck_starting(created, created));
        assert!(!stuck_starting(created, created + 20_000));
        assert!(!stuck_starting(created, created + limit));
        assert!(stuck_starting(created, created + limit + 1));
        assert!(stuck_starting(created, created + 90_000));
        // A clock that went back never makes a start look stuck.
        assert!(!stuck_starting(created, created - 5_000));
    }
}
