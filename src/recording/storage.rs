//! Where finished recordings are kept: the local recordings folder (the default, see
//! [`super::files`]) or an S3-compatible bucket (`recording.s3`). With S3, egress uploads each
//! recording itself (bedrud hands it the bucket's settings in every request, so a worker needs
//! no S3 config of its own, embedded or external), and bedrud only checks, streams and deletes
//! objects. One rule in one place: the object key of a recording, how a stored location is
//! written in the database, and what S3's refusals mean for an administrator.

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use livekit_protocol as proto;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as Key;
use object_store::{
    BackoffConfig, ClientOptions, GetOptions, GetRange, ObjectStore, ObjectStoreExt, RetryConfig,
};

use crate::config::S3;

/// How long one S3 call (HEAD, LIST, DELETE, or a GET up to its first byte) may take. S3 and
/// its look-alikes answer these in milliseconds; longer means unreachable or overloaded.
const CALL_TIMEOUT: Duration = Duration::from_secs(15);
/// Connecting to the endpoint: a firewalled one should fail fast, not after the call timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A stored recording's `file` column for S3: `s3://<bucket>/<key>`. Local files are bare
/// names (`<id>.mp4`), so each row says where its file is even after the storage changed.
const S3_SCHEME: &str = "s3://";

#[derive(Debug, Clone, thiserror::Error)]
pub enum StorageError {
    /// The bucket cannot be used now; says why and which key to fix (never the secret).
    #[error("S3 storage (recording.s3) is unavailable: {cause}; fix: {fix}")]
    Unavailable { cause: String, fix: String },
    /// The object is not in the bucket.
    #[error("no object {key} in bucket {bucket}")]
    Missing { bucket: String, key: String },
    /// The recording was stored in an S3 bucket this bedrud is not configured for.
    #[error(
        "the recording is stored in S3 bucket {bucket} (key {key}), but {why}; restore that \
         recording.s3 setting to reach it"
    )]
    Elsewhere {
        bucket: String,
        key: String,
        why: &'static str,
    },
}

/// Where one recording's file is, from its row's `file` column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A name in the local recordings folder.
    Local(String),
    /// An object in an S3 bucket.
    S3 { bucket: String, key: String },
}

impl Location {
    pub fn parse(file: &str) -> Location {
        match file
            .strip_prefix(S3_SCHEME)
            .and_then(|rest| rest.split_once('/'))
        {
            Some((bucket, key)) => Location::S3 {
                bucket: bucket.to_string(),
                key: key.to_string(),
            },
            None => Location::Local(file.to_string()),
        }
    }

    /// What goes into the `file` column.
    pub fn to_column(&self) -> String {
        match self {
            Location::Local(name) => name.clone(),
            Location::S3 { bucket, key } => format!("{S3_SCHEME}{bucket}/{key}"),
        }
    }
}

/// The object key of recording `id`: `<recording.s3.prefix><id>.mp4` (bedrud's own id, so
/// nothing a user typed reaches a key).
pub fn object_key(prefix: &str, id: &str) -> String {
    format!("{prefix}{}", super::files::file_name(id))
}

/// The URL object_store should send requests to. Path style: the endpoint as given (the
/// bucket goes into the path). Virtual-hosted style on a custom endpoint: the bucket goes in
/// front of the host, as egress' AWS SDK does, because object_store takes such an endpoint to
/// hold the bucket already. `None`: AWS itself, whose URLs object_store builds from the region.
fn request_endpoint(s3: &S3) -> Option<String> {
    let endpoint = s3.endpoint.as_deref()?.trim_end_matches('/');
    if s3.force_path_style {
        return Some(endpoint.to_string());
    }
    let (scheme, host) = endpoint.split_once("://").unwrap_or(("https", endpoint));
    Some(format!("{scheme}://{}.{host}", s3.bucket))
}

/// One S3 bucket, as `recording.s3` describes it.
#[derive(Clone)]
pub struct Bucket {
    store: Arc<AmazonS3>,
    settings: S3,
}

impl std::fmt::Debug for Bucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `settings` holds the secret only as a masked `Secret`, but say less anyway.
        f.debug_struct("Bucket")
            .field("bucket", &self.settings.bucket)
            .finish_non_exhaustive()
    }
}

impl Bucket {
    /// A client for the bucket. Nothing is sent yet.
    pub fn new(s3: &S3) -> Result<Bucket, StorageError> {
        let endpoint = request_endpoint(s3);
        let mut builder = AmazonS3Builder::new()
            .with_region(&s3.region)
            .with_bucket_name(&s3.bucket)
            .with_access_key_id(&s3.access_key)
            .with_secret_access_key(s3.secret_key.expose())
            .with_virtual_hosted_style_request(!s3.force_path_style)
            // object_store retries for minutes by default; a request waiting on it (a start,
            // a download) should hear "unavailable" within seconds.
            .with_retry(RetryConfig {
                backoff: BackoffConfig::default(),
                max_retries: 2,
                retry_timeout: CALL_TIMEOUT,
            })
            // No whole-request timeout: a download streams for as long as the client reads;
            // each call's answer is bounded by CALL_TIMEOUT instead.
            .with_client_options(
                ClientOptions::new()
                    .with_timeout_disabled()
                    .with_connect_timeout(CONNECT_TIMEOUT)
                    .with_allow_http(
                        endpoint
                            .as_deref()
                            .is_some_and(|e| e.starts_with("http://")),
                    ),
            );
        if let Some(e) = &endpoint {
            builder = builder.with_endpoint(e);
        }
        let store = builder.build().map_err(|e| StorageError::Unavailable {
            cause: format!("cannot set up the S3 client: {e}"),
            fix: "check recording.s3.endpoint, recording.s3.region and recording.s3.bucket".into(),
        })?;
        Ok(Bucket {
            store: Arc::new(store),
            settings: s3.clone(),
        })
    }

    pub fn name(&self) -> &str {
        &self.settings.bucket
    }

    /// The key recording `id` is uploaded to.
    pub fn key(&self, id: &str) -> String {
        object_key(&self.settings.prefix, id)
    }

    /// Where recording `id` will be, as its row records it.
    pub fn location(&self, id: &str) -> Location {
        Location::S3 {
            bucket: self.settings.bucket.clone(),
            key: self.key(id),
        }
    }

    /// What egress needs to upload recording `id` here: the file output's `filepath` (the
    /// object key) and its S3 settings.
    pub fn egress_output(&self, id: &str) -> proto::EncodedFileOutput {
        let s = &self.settings;
        let upload = proto::S3Upload {
            access_key: s.access_key.clone(),
            secret: s.secret_key.expose().to_string(),
            region: s.region.clone(),
            endpoint: s.endpoint.clone().unwrap_or_default(),
            bucket: s.bucket.clone(),
            force_path_style: s.force_path_style,
            ..Default::default()
        };
        proto::EncodedFileOutput {
            file_type: proto::EncodedFileType::Mp4 as i32,
            filepath: self.key(id),
            // Egress would upload a JSON manifest beside the recording: one more object per
            // recording for bedrud to track and delete, holding nothing bedrud uses.
            disable_manifest: true,
            output: Some(proto::encoded_file_output::Output::S3(upload)),
        }
    }

    /// Whether the bucket answers with these credentials: lists at most one page under the
    /// prefix (`doctor`, and before a start, so that a recording is not made only to fail
    /// its upload).
    pub async fn probe(&self) -> Result<(), StorageError> {
        let prefix = Key::from(self.settings.prefix.trim_end_matches('/'));
        let first = async { self.store.list(Some(&prefix)).next().await.transpose() };
        self.bounded(first).await.map(|_| ())
    }

    /// The object's size; `None` when it does not exist.
    pub async fn size(&self, key: &str) -> Result<Option<u64>, StorageError> {
        match self.bounded(self.store.head(&Key::from(key))).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(StorageError::Missing { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The object's bytes (all, or `range`), streamed as S3 sends them: nothing is buffered
    /// beyond what the HTTP client holds.
    pub async fn read(
        &self,
        key: &str,
        range: Option<Range<u64>>,
    ) -> Result<object_store::GetResult, StorageError> {
        let options = GetOptions {
            range: range.map(GetRange::Bounded),
            ..Default::default()
        };
        self.bounded(self.store.get_opts(&Key::from(key), options))
            .await
    }

    /// Deletes the object; one already gone is fine (S3 answers a DELETE of a missing key
    /// with success anyway; some look-alikes answer 404).
    pub async fn delete(&self, key: &str) -> Result<(), StorageError> {
        match self.bounded(self.store.delete(&Key::from(key))).await {
            Ok(()) | Err(StorageError::Missing { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn bounded<T>(
        &self,
        call: impl std::future::Future<Output = object_store::Result<T>>,
    ) -> Result<T, StorageError> {
        match tokio::time::timeout(CALL_TIMEOUT, call).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(self.classify(e)),
            Err(_) => Err(StorageError::Unavailable {
                cause: format!("{} did not answer within {CALL_TIMEOUT:?}", self.endpoint()),
                fix: "check recording.s3.endpoint and that the S3 server is running and reachable \
                      from this host"
                    .into(),
            }),
        }
    }

    fn endpoint(&self) -> String {
        match &self.settings.endpoint {
            Some(e) => e.clone(),
            None => format!("AWS S3 ({})", self.settings.region),
        }
    }

    /// S3's answer in an administrator's terms, naming the `recording.s3.*` key to check.
    /// object_store's messages hold URLs and S3's error codes, never the credentials.
    fn classify(&self, e: object_store::Error) -> StorageError {
        let bucket = &self.settings.bucket;
        let said = e.to_string();
        match refusal(&e, &said) {
            Refusal::NoBucket => StorageError::Unavailable {
                cause: format!("bucket {bucket} does not exist at {}", self.endpoint()),
                fix: "create the bucket, or correct recording.s3.bucket".into(),
            },
            Refusal::Credentials => StorageError::Unavailable {
                cause: format!(
                    "{} refused bedrud's credentials for bucket {bucket} ({})",
                    self.endpoint(),
                    s3_code(&said).unwrap_or("access denied")
                ),
                fix: "check recording.s3.accessKey and recording.s3.secretKey (and that this \
                      key may list, read and delete in the bucket)"
                    .into(),
            },
            Refusal::NoObject => StorageError::Missing {
                bucket: bucket.clone(),
                key: match e {
                    object_store::Error::NotFound { path, .. } => path,
                    _ => String::new(),
                },
            },
            Refusal::Other => StorageError::Unavailable {
                cause: format!(
                    "bucket {bucket} at {} cannot be used: {}",
                    self.endpoint(),
                    brief(&said)
                ),
                fix: "check recording.s3.endpoint (reachable from this host), \
                      recording.s3.region, recording.s3.forcePathStyle and recording.s3.bucket"
                    .into(),
            },
        }
    }
}

/// What an S3 failure means for an administrator.
#[derive(Debug, PartialEq, Eq)]
enum Refusal {
    NoBucket,
    Credentials,
    NoObject,
    Other,
}

/// From S3's error code when its body was quoted (a listing's errors reach object_store as
/// generic ones, a 403 included), else from object_store's kind (a HEAD's answer has no body).
fn refusal(e: &object_store::Error, said: &str) -> Refusal {
    use object_store::Error as E;
    match s3_code(said) {
        Some("NoSuchBucket") => return Refusal::NoBucket,
        Some(
            "SignatureDoesNotMatch"
            | "InvalidAccessKeyId"
            | "AccessDenied"
            | "InvalidToken"
            | "ExpiredToken",
        ) => return Refusal::Credentials,
        _ => {}
    }
    match e {
        E::NotFound { .. } => Refusal::NoObject,
        E::PermissionDenied { .. } | E::Unauthenticated { .. } => Refusal::Credentials,
        _ => Refusal::Other,
    }
}

/// S3's error code (`SignatureDoesNotMatch`, `InvalidAccessKeyId`, `AccessDenied`…) from the XML
/// body object_store quotes. The rest of such a body (string to sign, canonical request) says
/// nothing an administrator needs.
fn s3_code(said: &str) -> Option<&str> {
    let start = said.find("<Code>")? + "<Code>".len();
    let len = said[start..].find("</Code>")?;
    Some(&said[start..start + len])
}

/// An error message cut to a readable length (some quote whole response bodies).
fn brief(said: &str) -> String {
    const MAX: usize = 300;
    match said.char_indices().nth(MAX) {
        Some((at, _)) => format!("{}…", &said[..at]),
        None => said.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    fn s3(endpoint: Option<&str>, path_style: bool) -> S3 {
        S3 {
            endpoint: endpoint.map(str::to_string),
            region: "us-east-1".into(),
            bucket: "rec".into(),
            prefix: "recordings/".into(),
            access_key: "AKID".into(),
            secret_key: Secret::new("s3cret-value"),
            force_path_style: path_style,
        }
    }

    #[test]
    fn keys_and_locations_round_trip() {
        assert_eq!(object_key("recordings/", "abc"), "recordings/abc.mp4");
        assert_eq!(object_key("", "abc"), "abc.mp4");
        let s3 = Location::S3 {
            bucket: "rec".into(),
            key: "recordings/abc.mp4".into(),
        };
        assert_eq!(s3.to_column(), "s3://rec/recordings/abc.mp4");
        assert_eq!(Location::parse(&s3.to_column()), s3);
        // Local rows (all rows before S3 existed) stay local.
        assert_eq!(
            Location::parse("abc.mp4"),
            Location::Local("abc.mp4".into())
        );
    }

    #[test]
    fn s3_refusals_are_said_briefly() {
        let body = "Error performing GET: Client error with status 403 Forbidden: <?xml \
                    version=\"1.0\"?><Error><Code>SignatureDoesNotMatch</Code><Message>The \
                    request signature …</Message><StringToSign>AWS4-HMAC-SHA256…";
        assert_eq!(s3_code(body), Some("SignatureDoesNotMatch"));
        assert_eq!(s3_code("connection refused"), None);
        assert_eq!(brief("short"), "short");
        let generic = |said: &str| object_store::Error::Generic {
            store: "S3",
            source: said.to_string().into(),
        };
        let forbidden = "403 Forbidden: <Error><Code>SignatureDoesNotMatch</Code></Error>";
        assert_eq!(
            refusal(&generic(forbidden), forbidden),
            Refusal::Credentials
        );
        let gone = "404: <Error><Code>NoSuchBucket</Code></Error>";
        assert_eq!(refusal(&generic(gone), gone), Refusal::NoBucket);
        let head = object_store::Error::NotFound {
            path: "recordings/a.mp4".into(),
            source: "404 Not Found".into(),
        };
        assert_eq!(refusal(&head, &head.to_string()), Refusal::NoObject);
        let refused = "error sending request: connection refused";
        assert_eq!(refusal(&generic(refused), refused), Refusal::Other);
        assert_eq!(brief(&"x".repeat(400)).chars().count(), 301);
    }

    #[test]
    fn endpoints_follow_the_addressing_style() {
        let path = s3(Some("http://127.0.0.1:7070"), true);
        assert_eq!(
            request_endpoint(&path).as_deref(),
            Some("http://127.0.0.1:7070")
        );
        let hosted = s3(Some("https://s3.example.test/"), false);
        assert_eq!(
            request_endpoint(&hosted).as_deref(),
            Some("https://rec.s3.example.test")
        );
        assert_eq!(request_endpoint(&s3(None, false)), None);
    }

    #[test]
    fn egress_gets_the_bucket_and_the_key_and_debug_hides_the_secret() {
        crate::install_tls_provider();
        let bucket = Bucket::new(&s3(Some("http://127.0.0.1:7070"), true)).unwrap();
        let out = bucket.egress_output("abc");
        assert_eq!(out.filepath, "recordings/abc.mp4");
        assert!(out.disable_manifest);
        let Some(proto::encoded_file_output::Output::S3(up)) = out.output else {
            panic!("no S3 upload in {out:?}");
        };
        assert_eq!(
            (
                up.bucket.as_str(),
                up.endpoint.as_str(),
                up.force_path_style
            ),
            ("rec", "http://127.0.0.1:7070", true)
        );
        assert_eq!(up.secret, "s3cret-value");
        assert!(!format!("{bucket:?}").contains("s3cret"));
    }
}
