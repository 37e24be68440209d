//! Where bedrud's secrets come from — one resolver for each, told whether it may create:
//! the embedded LiveKit API key pair (config → static LiveKit config → `<dataDir>/livekit-keys.yaml`)
//! and the access-token signing secret (config → `<dataDir>/jwt-secret`).
//!
//! `serve` and `secrets init` may generate what is missing ([`Access::Create`]); every read-only
//! command ([`Access::ReadOnly`]) only reads, and says what is missing instead.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use rand::distr::{Alphanumeric, SampleString};
use serde::{Deserialize, Serialize};

use crate::config::{Config, Credentials, StaticConfigError};
use crate::secret::Secret;

pub const FILE_NAME: &str = "livekit-keys.yaml";

#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    #[error("cannot create data folder {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{key} is not set and this host has not generated it yet ({} does not exist): \
         run `bedrud secrets init` or start bedrud once, or set {key} in the config",
        path.display()
    )]
    Missing { key: &'static str, path: PathBuf },
    #[error(transparent)]
    StaticConfig(#[from] StaticConfigError),
    #[error(
        "livekit.apiKey / livekit.apiSecret: set them to one of the keys of {} \
         (it has {count} keys, bedrud can only guess with exactly one)",
        path.display()
    )]
    StaticKeys { path: PathBuf, count: usize },
}

/// Whether resolving a secret may generate and store it on this host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// `serve`, `secrets init`: generate what is missing, once per host.
    Create,
    /// Every other command: read only; a missing secret is an error that says so.
    ReadOnly,
}

/// Where a resolved secret came from; never carries the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The config file sets it, so nothing is stored on the host.
    Configured,
    /// The static LiveKit config (`livekit.configPath`) holds the key pair.
    StaticLiveKitConfig(PathBuf),
    /// Generated just now, in this file.
    Generated(PathBuf),
    /// Generated earlier, read from this file.
    Stored(PathBuf),
}

/// The embedded LiveKit API key pair: the configured one; else, with a static LiveKit config,
/// the single key in that file; else the one stored for this host (generated if `access` allows).
pub fn livekit_credentials(
    config: &Config,
    access: Access,
) -> Result<(Credentials, Origin), KeysError> {
    if let Some(c) = &config.livekit.credentials {
        return Ok((c.clone(), Origin::Configured));
    }
    let static_config = config
        .embedded()
        .and_then(|e| Some((e.static_config.clone()?, e.static_yaml()?)));
    if let Some((path, doc)) = static_config {
        return Ok((
            static_credentials(&doc?, &path)?,
            Origin::StaticLiveKitConfig(path),
        ));
    }
    let dir = &config.server.data_dir;
    let stored = load(dir)?;
    match (stored, access) {
        (Some(c), _) => Ok((c, Origin::Stored(path(dir)))),
        (None, Access::ReadOnly) => Err(KeysError::Missing {
            key: "livekit.apiKey/apiSecret",
            path: path(dir),
        }),
        (None, Access::Create) => Ok((generate(dir)?, Origin::Generated(path(dir)))),
    }
}

/// The secret that signs bedrud's own access tokens: the configured one, else the one stored
/// for this host (`<dataDir>/jwt-secret`, mode 0600; generated if `access` allows).
pub fn jwt_secret(config: &Config, access: Access) -> Result<(Secret, Origin), KeysError> {
    if let Some(s) = &config.auth.jwt_secret {
        return Ok((s.clone(), Origin::Configured));
    }
    let dir = &config.server.data_dir;
    let p = jwt_secret_path(dir);
    match (load_jwt_secret(&p)?, access) {
        (Some(s), _) => Ok((s, Origin::Stored(p))),
        (None, Access::ReadOnly) => Err(KeysError::Missing {
            key: "auth.jwtSecret",
            path: p,
        }),
        (None, Access::Create) => {
            create_data_dir(dir)?;
            let secret = Alphanumeric.sample_string(&mut rand::rng(), 64);
            write_private(&p, &secret).map_err(|e| KeysError::Write {
                path: p.clone(),
                source: e,
            })?;
            Ok((Secret::new(secret), Origin::Generated(p)))
        }
    }
}

fn static_credentials(doc: &yaml_serde::Value, path: &Path) -> Result<Credentials, KeysError> {
    let keys: Vec<(&str, &str)> = match doc.get("keys") {
        Some(yaml_serde::Value::Mapping(m)) => m
            .iter()
            .filter_map(|(k, v)| Some((k.as_str()?, v.as_str()?)))
            .collect(),
        _ => Vec::new(),
    };
    match keys.as_slice() {
        [(key, secret)] => Ok(Credentials {
            api_key: key.to_string(),
            api_secret: Secret::new(*secret),
        }),
        _ => Err(KeysError::StaticKeys {
            path: path.to_path_buf(),
            count: keys.len(),
        }),
    }
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct KeyFile {
    api_key: String,
    api_secret: String,
}

pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(FILE_NAME)
}

/// The stored credentials, if this host has generated them before.
fn load(data_dir: &Path) -> Result<Option<Credentials>, KeysError> {
    let p = path(data_dir);
    let text = match std::fs::read_to_string(&p) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(read_error(&p, e.to_string())),
    };
    // The parse error is not shown: it could quote the secret.
    let k: KeyFile = yaml_serde::from_str(&text)
        .map_err(|_| read_error(&p, "not a valid key file (apiKey, apiSecret)".into()))?;
    Ok(Some(Credentials {
        api_key: k.api_key,
        api_secret: Secret::new(k.api_secret),
    }))
}

fn read_error(p: &Path, reason: String) -> KeysError {
    KeysError::Read {
        path: p.to_path_buf(),
        reason,
    }
}

/// Generates a new key pair and stores it (0600, in a 0700 data folder).
fn generate(data_dir: &Path) -> Result<Credentials, KeysError> {
    create_data_dir(data_dir)?;
    let mut rng = rand::rng();
    let file = KeyFile {
        api_key: format!("API{}", Alphanumeric.sample_string(&mut rng, 12)),
        api_secret: Alphanumeric.sample_string(&mut rng, 48),
    };
    store(data_dir, &file).map_err(|e| KeysError::Write {
        path: path(data_dir),
        source: e,
    })?;
    Ok(Credentials {
        api_key: file.api_key,
        api_secret: Secret::new(file.api_secret),
    })
}

fn store(data_dir: &Path, k: &KeyFile) -> std::io::Result<()> {
    let text = yaml_serde::to_string(k).map_err(std::io::Error::other)?;
    write_private(&path(data_dir), &text)
}

/// Written to a 0600 temp file and renamed into place, so a crash never leaves half a key.
pub(crate) fn write_private(target: &Path, text: &str) -> std::io::Result<()> {
    let dir = target.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".bedrud-secret")
        .tempfile_in(dir)?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o600))?;
    tmp.write_all(text.as_bytes())?;
    tmp.as_file().sync_all()?;
    tmp.persist(target).map_err(|e| e.error)?;
    Ok(())
}

/// The stored signing secret, if this host has generated one.
fn load_jwt_secret(p: &Path) -> Result<Option<Secret>, KeysError> {
    match std::fs::read_to_string(p) {
        Ok(s) if s.trim().len() >= crate::config::MIN_SECRET_LEN => Ok(Some(Secret::new(s.trim()))),
        Ok(_) => {
            let why = "shorter than 32 characters; delete it to generate a new one";
            Err(read_error(p, why.into()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(read_error(p, e.to_string())),
    }
}

/// Generates the secrets a config leaves empty, once per host: the package runs this at install
/// so that the first start already has them, and running it again changes nothing. For each
/// secret, where it comes from; `None` = not needed (LiveKit brings its own keys).
pub fn init(config: &Config) -> Result<[(&'static str, Option<Origin>); 2], KeysError> {
    let own_keys = config.embedded().is_none_or(|e| e.static_config.is_some());
    let livekit = match config.livekit.credentials.is_none() && own_keys {
        true => None,
        false => Some(livekit_credentials(config, Access::Create)?.1),
    };
    let jwt = jwt_secret(config, Access::Create)?.1;
    Ok([
        ("livekit.apiKey/apiSecret", livekit),
        ("auth.jwtSecret", Some(jwt)),
    ])
}

fn jwt_secret_path(data_dir: &Path) -> PathBuf {
    data_dir.join("jwt-secret")
}

fn create_data_dir(data_dir: &Path) -> Result<(), KeysError> {
    crate::host::private::create_dir(data_dir).map_err(|e| KeysError::DataDir {
        path: data_dir.to_path_buf(),
        source: e,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_in(dir: &Path, extra: &str) -> Config {
        let text = format!("server:\n  dataDir: {}\n{extra}", dir.display());
        let source = crate::config::Source::File(dir.join("config.yaml"));
        crate::config::parse(&text, &source, &crate::config::Env::default()).unwrap()
    }

    fn mode_of(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn generated_once_then_reused_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let config = config_in(&data, "");
        let (first, origin) = livekit_credentials(&config, Access::Create).unwrap();
        assert_eq!(origin, Origin::Generated(path(&data)));
        assert!(first.api_secret.char_len() >= crate::config::MIN_SECRET_LEN);
        let (again, origin) = livekit_credentials(&config, Access::ReadOnly).unwrap();
        assert_eq!(origin, Origin::Stored(path(&data)));
        assert_eq!(first.api_key, again.api_key);
        assert_eq!(first.api_secret, again.api_secret);
        assert_eq!(mode_of(&path(&data)), 0o600);
        assert_eq!(mode_of(&data), 0o700);
    }

    #[test]
    fn jwt_secret_is_generated_once_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let config = config_in(dir.path(), "");
        let (a, _) = jwt_secret(&config, Access::Create).unwrap();
        let (b, origin) = jwt_secret(&config, Access::Create).unwrap();
        assert_eq!(a, b);
        assert_eq!(origin, Origin::Stored(dir.path().join("jwt-secret")));
        assert!(a.char_len() >= 32);
        assert_eq!(mode_of(&dir.path().join("jwt-secret")), 0o600);
    }

    #[test]
    fn read_only_says_what_is_missing_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let config = config_in(&data, "");
        let e = livekit_credentials(&config, Access::ReadOnly).unwrap_err();
        assert!(matches!(e, KeysError::Missing { .. }), "{e}");
        let msg = e.to_string();
        assert!(
            msg.contains("bedrud secrets init") && msg.contains(FILE_NAME),
            "{msg}"
        );
        let e = jwt_secret(&config, Access::ReadOnly).unwrap_err();
        assert!(
            e.to_string().starts_with("auth.jwtSecret is not set"),
            "{e}"
        );
        assert!(!data.exists(), "a read-only lookup creates nothing");
    }

    #[test]
    fn a_static_livekit_config_brings_its_single_key() {
        let dir = tempfile::tempdir().unwrap();
        let one = dir.path().join("one.yaml");
        std::fs::write(
            &one,
            "keys:\n  APIstatic: 0123456789abcdef0123456789abcdef\n",
        )
        .unwrap();
        let config = config_in(
            &dir.path().join("data"),
            &format!("livekit:\n  configPath: {}\n", one.display()),
        );
        let (c, origin) = livekit_credentials(&config, Access::ReadOnly).unwrap();
        assert_eq!(
            (c.api_key.as_str(), origin),
            ("APIstatic", Origin::StaticLiveKitConfig(one))
        );
        let two = dir.path().join("two.yaml");
        std::fs::write(
            &two,
            "keys:\n  a: 0123456789abcdef0123456789abcdef\n  b: 0123456789abcdef0123456789abcdef\n",
        )
        .unwrap();
        let config = config_in(
            &dir.path().join("data"),
            &format!("livekit:\n  configPath: {}\n", two.display()),
        );
        let e = livekit_credentials(&config, Access::Create).unwrap_err();
        assert!(
            e.to_string().contains("it has 2 keys") && !e.to_string().contains("0123456789"),
            "{e}"
        );
        assert!(!dir.path().join("data").exists());
    }

    #[test]
    fn init_generates_missing_secrets_once_and_never_touches_configured_ones() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("state");
        let [(_, lk), (_, jwt)] = init(&config_in(&data, "")).unwrap();
        assert_eq!(lk, Some(Origin::Generated(path(&data))));
        assert_eq!(jwt, Some(Origin::Generated(data.join("jwt-secret"))));
        let before = std::fs::read(path(&data)).unwrap();

        let [(_, lk), (_, jwt)] = init(&config_in(&data, "")).unwrap();
        assert_eq!(lk, Some(Origin::Stored(path(&data))));
        assert_eq!(jwt, Some(Origin::Stored(data.join("jwt-secret"))));
        assert_eq!(std::fs::read(path(&data)).unwrap(), before);

        let other = dir.path().join("other");
        let set = "auth:\n  jwtSecret: 0123456789abcdef0123456789abcdef\nlivekit:\n  apiKey: APIx\n  apiSecret: 0123456789abcdef0123456789abcdef\n";
        let [(_, lk), (_, jwt)] = init(&config_in(&other, set)).unwrap();
        assert_eq!(
            (lk, jwt),
            (Some(Origin::Configured), Some(Origin::Configured))
        );
        assert!(
            !other.exists(),
            "nothing is stored when the config sets both"
        );
    }

    #[test]
    fn a_corrupt_key_file_is_an_error_that_does_not_quote_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(path(dir.path()), "apiSecret: [oops-secret-value").unwrap();
        let msg = load(dir.path()).unwrap_err().to_string();
        assert!(
            msg.contains(FILE_NAME) && !msg.contains("oops-secret-value"),
            "{msg}"
        );
    }
}
