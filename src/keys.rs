//! Secrets bedrud generates when `config.yaml` gives none: the embedded LiveKit API key pair
//! (`<dataDir>/livekit-keys.yaml`) and the access-token signing secret (`<dataDir>/jwt-secret`).

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use rand::distr::{Alphanumeric, SampleString};
use serde::{Deserialize, Serialize};

use crate::config::Credentials;
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
pub fn load(data_dir: &Path) -> Result<Option<Credentials>, KeysError> {
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

/// Loads the stored credentials, generating and storing new ones the first time.
pub fn load_or_generate(data_dir: &Path) -> Result<(Credentials, bool), KeysError> {
    if let Some(c) = load(data_dir)? {
        return Ok((c, false));
    }
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
    Ok((
        Credentials {
            api_key: file.api_key,
            api_secret: Secret::new(file.api_secret),
        },
        true,
    ))
}

fn store(data_dir: &Path, k: &KeyFile) -> std::io::Result<()> {
    let text = yaml_serde::to_string(k).map_err(std::io::Error::other)?;
    write_private(&path(data_dir), &text)
}

/// Written to a 0600 temp file and renamed into place, so a crash never leaves half a key.
fn write_private(target: &Path, text: &str) -> std::io::Result<()> {
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

/// The secret that signs bedrud's own access tokens, generated once per host when the config
/// gives none (`<dataDir>/jwt-secret`, mode 0600).
pub fn jwt_secret(data_dir: &Path) -> Result<Secret, KeysError> {
    let p = jwt_secret_path(data_dir);
    match std::fs::read_to_string(&p) {
        Ok(s) if s.trim().len() >= crate::config::MIN_SECRET_LEN => {
            return Ok(Secret::new(s.trim()))
        }
        Ok(_) => {
            let why = "shorter than 32 characters; delete it to generate a new one";
            return Err(read_error(&p, why.into()));
        }
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(read_error(&p, e.to_string()))
        }
        Err(_) => {}
    }
    create_data_dir(data_dir)?;
    let secret = Alphanumeric.sample_string(&mut rand::rng(), 64);
    write_private(&p, &secret).map_err(|e| KeysError::Write { path: p, source: e })?;
    Ok(Secret::new(secret))
}

/// What `bedrud secrets init` found or did for one secret; never carries the value.
#[derive(Debug, PartialEq, Eq)]
pub enum InitOutcome {
    /// The config file sets it, so nothing is stored on the host.
    Configured,
    /// Generated just now, in this file.
    Generated(PathBuf),
    /// Generated earlier; kept as it is.
    Kept(PathBuf),
    /// Not needed in this mode (external LiveKit, or a static LiveKit config, brings its own keys).
    NotNeeded,
}

/// Generates the secrets a config leaves empty, once per host: the package runs this at install
/// so that the first start already has them, and running it again changes nothing.
pub fn init(config: &crate::config::Config) -> Result<[(&'static str, InitOutcome); 2], KeysError> {
    let dir = &config.server.data_dir;
    let livekit = if config.livekit.credentials.is_some() {
        InitOutcome::Configured
    } else if config.embedded().is_none_or(|e| e.static_config.is_some()) {
        InitOutcome::NotNeeded
    } else {
        match load_or_generate(dir)? {
            (_, true) => InitOutcome::Generated(path(dir)),
            (_, false) => InitOutcome::Kept(path(dir)),
        }
    };
    let jwt = if config.auth.jwt_secret.is_some() {
        InitOutcome::Configured
    } else {
        let p = jwt_secret_path(dir);
        let existed = p.exists();
        jwt_secret(dir)?;
        if existed {
            InitOutcome::Kept(p)
        } else {
            InitOutcome::Generated(p)
        }
    };
    Ok([
        ("livekit.apiKey/apiSecret", livekit),
        ("auth.jwtSecret", jwt),
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

    #[test]
    fn generated_once_then_reused_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let (first, created) = load_or_generate(&data).unwrap();
        assert!(created);
        assert!(first.api_secret.char_len() >= crate::config::MIN_SECRET_LEN);
        let (again, created) = load_or_generate(&data).unwrap();
        assert!(!created);
        assert_eq!(first.api_key, again.api_key);
        assert_eq!(first.api_secret, again.api_secret);
        let mode = std::fs::metadata(path(&data)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let dmode = std::fs::metadata(&data).unwrap().permissions().mode();
        assert_eq!(dmode & 0o777, 0o700);
    }

    #[test]
    fn jwt_secret_is_generated_once_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let a = jwt_secret(dir.path()).unwrap();
        let b = jwt_secret(dir.path()).unwrap();
        assert_eq!(a, b);
        assert!(a.char_len() >= 32);
        let mode = std::fs::metadata(dir.path().join("jwt-secret"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    fn config_in(dir: &Path, extra: &str) -> crate::config::Config {
        let text = format!("server:\n  dataDir: {}\n{extra}", dir.display());
        let source = crate::config::Source::File(dir.join("config.yaml"));
        crate::config::parse(&text, &source, &crate::config::Env::default()).unwrap()
    }

    #[test]
    fn init_generates_missing_secrets_once_and_never_touches_configured_ones() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("state");
        let [(_, lk), (_, jwt)] = init(&config_in(&data, "")).unwrap();
        assert_eq!(lk, InitOutcome::Generated(path(&data)));
        assert_eq!(jwt, InitOutcome::Generated(data.join("jwt-secret")));
        let before = std::fs::read(path(&data)).unwrap();

        let [(_, lk), (_, jwt)] = init(&config_in(&data, "")).unwrap();
        assert_eq!(lk, InitOutcome::Kept(path(&data)));
        assert_eq!(jwt, InitOutcome::Kept(data.join("jwt-secret")));
        assert_eq!(std::fs::read(path(&data)).unwrap(), before);

        let other = dir.path().join("other");
        let set = "auth:\n  jwtSecret: 0123456789abcdef0123456789abcdef\nlivekit:\n  apiKey: APIx\n  apiSecret: 0123456789abcdef0123456789abcdef\n";
        let [(_, lk), (_, jwt)] = init(&config_in(&other, set)).unwrap();
        assert_eq!(
            (lk, jwt),
            (InitOutcome::Configured, InitOutcome::Configured)
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
