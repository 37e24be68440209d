//! bedrud in-process, for the API tests that never reach LiveKit (accounts, rooms, webhooks,
//! hostile clients…): the real `Application`, built from a real config, on port 0, with a fresh
//! SQLite database in its own temp folder. LiveKit is "external" at a port where nothing
//! listens, so `/ready` is 503 and joins answer 503 — tests that need LiveKit use `Bedrud`.
//! Starting one takes milliseconds (no process, no LiveKit), so each test gets its own.
//!
//! ```ignore
//! let app = TestApp::with_config("server:\n  someNewKey: 5s\nauth:\n  allowRegistration: false\n");
//! let (status, body) = app.call("GET", "/api/room/list", Some(&token), None); // the Api trait
//! let raw = std::net::TcpStream::connect(app.addr);  // hostile clients speak to the socket
//! let db = app.database();                           // or break the store underneath
//! ```
//! Dropping it shuts bedrud down as SIGTERM would and fails the test if `run` returned an error.

use std::net::SocketAddr;

use tokio::sync::oneshot;

use super::{free_port, Api, SECRET};

pub struct TestApp {
    /// The API's address (127.0.0.1, port chosen by the OS).
    pub addr: SocketAddr,
    /// The temp folder: `data/` holds the database (`data/bedrud.db`).
    pub dir: tempfile::TempDir,
    runtime: tokio::runtime::Runtime,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl TestApp {
    /// A bedrud with the base config (loopback, port 0, SQLite, API key `APItest`/`SECRET`).
    pub fn spawn() -> TestApp {
        TestApp::with_config("")
    }

    /// The base config with `extra` (YAML) merged over it, key by key: `extra` may add
    /// sections (`auth:`) or change keys inside the base ones (`server:`, `livekit:`).
    pub fn with_config(extra: &str) -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        let closed = free_port(false);
        let base = format!(
            "server:\n  bindAddress: 127.0.0.1\n  port: 0\n  dataDir: {data}\n\
             livekit:\n  external: true\n  host: ws://127.0.0.1:{closed}\n  internalHost: http://127.0.0.1:{closed}\n\
             \x20 apiKey: APItest\n  apiSecret: {SECRET}\n",
            data = dir.path().join("data").display()
        );
        let text = merged(&base, extra);
        let source = bedrud::config::Source::File(dir.path().join("config.yaml"));
        let config = bedrud::config::parse(&text, &source, &bedrud::config::Env::default())
            .unwrap_or_else(|e| panic!("the test config is invalid: {e}\n{text}"));
        // The app's log goes to the test's captured output, shown when the test fails.
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter("bedrud=debug")
            .try_init();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let app = runtime
            .block_on(bedrud::app::Application::build(config))
            .unwrap_or_else(|e| panic!("bedrud did not build: {e:#}"));
        let addr = SocketAddr::from(([127, 0, 0, 1], app.port()));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = runtime.spawn(app.run(async {
            let _ = stopped.await;
        }));
        TestApp {
            addr,
            dir,
            runtime,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The SQLite database underneath, for tests that break it on purpose.
    pub fn database(&self) -> std::path::PathBuf {
        self.dir.path().join("data/bedrud.db")
    }

    /// Shuts bedrud down as SIGTERM would and returns what `run` returned.
    pub fn stop(mut self) -> anyhow::Result<()> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> anyhow::Result<()> {
        let (Some(stop), Some(task)) = (self.stop.take(), self.task.take()) else {
            return Ok(());
        };
        let _ = stop.send(());
        self.runtime
            .block_on(task)
            .map_err(|e| anyhow::anyhow!("bedrud's run task failed: {e}"))?
    }
}

impl Api for TestApp {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let result = self.shutdown();
        if !std::thread::panicking() {
            result.expect("bedrud stopped with an error");
        }
    }
}

/// `extra` merged over `base`: mappings key by key, anything else replaced.
fn merged(base: &str, extra: &str) -> String {
    fn merge(into: &mut yaml_serde::Value, from: yaml_serde::Value) {
        match (into, from) {
            (yaml_serde::Value::Mapping(a), yaml_serde::Value::Mapping(b)) => {
                for (k, v) in b {
                    match a.get_mut(&k) {
                        Some(slot) => merge(slot, v),
                        None => {
                            a.insert(k, v);
                        }
                    }
                }
            }
            (slot, v) => *slot = v,
        }
    }
    let mut doc: yaml_serde::Value = yaml_serde::from_str(base).unwrap();
    if !extra.trim().is_empty() {
        merge(&mut doc, yaml_serde::from_str(extra).unwrap());
    }
    yaml_serde::to_string(&doc).unwrap()
}
