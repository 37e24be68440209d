//! Automatic HTTPS against Pebble, Let's Encrypt's test CA, on loopback: bedrud obtains a
//! certificate for a `.test` name over HTTP-01, serves it (checked with a TLS client that trusts
//! only Pebble's root), and when the short-lived certificate is due, renews it and serves the
//! new one from the same process, while connections opened before keep working: a keep-alive
//! HTTPS connection, and a meeting's signaling WebSocket to LiveKit through bedrud's `/livekit`
//! proxy (pinged end to end after the renewal; LiveKit is not restarted).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{free_port, mode, Api, Sandbox, LIVEKIT, PATIENCE};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

const PEBBLE_VERSION: &str = "2.10.1";
const DOMAIN: &str = "bedrud.test";
/// Pebble's certificate lifetime here: bedrud renews two thirds in, so a test sees a renewal.
const LIFETIME_SECS: u64 = 45;

/// Pebble and its DNS server (which answers 127.0.0.1 for every name), killed on drop.
struct Pebble {
    children: Vec<Child>,
    dir: PathBuf,
    port: u16,
    management: u16,
}

impl Pebble {
    fn tools() -> PathBuf {
        let dir = common::repo_root().join(format!(".tools/pebble-{PEBBLE_VERSION}"));
        assert!(
            dir.join("pebble").is_file() && dir.join("pebble-challtestsrv").is_file(),
            "Pebble {PEBBLE_VERSION} is not installed in {}.\n\
             Install it with: scripts/install-pebble.sh   (needs Go; scripts/test.sh does this)",
            dir.display()
        );
        dir
    }

    /// Starts Pebble validating HTTP-01 on `http_port`, where bedrud will answer.
    fn start(sandbox: &Path, http_port: u16) -> Pebble {
        let tools = Self::tools();
        let dir = sandbox.join("pebble");
        std::fs::create_dir_all(&dir).unwrap();
        let (dns, dns_management) = (free_port(true), free_port(false));
        let (port, management) = (free_port(false), free_port(false));
        let log = |name: &str| std::fs::File::create(dir.join(name)).unwrap();
        let dns_server = Command::new(tools.join("pebble-challtestsrv"))
            .args(["-dnsserver", &format!("127.0.0.1:{dns}")])
            .args(["-management", &format!("127.0.0.1:{dns_management}")])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", "", "-doh", ""])
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            .stdout(log("dns.log"))
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start pebble-challtestsrv");
        let certs = tools.join("certs/localhost");
        let config = serde_json::json!({"pebble": {
            "listenAddress": format!("127.0.0.1:{port}"),
            "managementListenAddress": format!("127.0.0.1:{management}"),
            "certificate": certs.join("cert.pem"),
            "privateKey": certs.join("key.pem"),
            "httpPort": http_port,
            "tlsPort": free_port(false),
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
            "profiles": {"default": {"description": "short-lived, to see renewals", "validityPeriod": LIFETIME_SECS}},
        }});
        std::fs::write(dir.join("pebble.json"), config.to_string()).unwrap();
        let pebble = Command::new(tools.join("pebble"))
            .arg("-config")
            .arg(dir.join("pebble.json"))
            .args(["-dnsserver", &format!("127.0.0.1:{dns}")])
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .stdout(log("pebble.log"))
            .stderr(log("pebble.err"))
            .spawn()
            .expect("cannot start pebble");
        let p = Pebble {
            children: vec![dns_server, pebble],
            dir,
            port,
            management,
        };
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", management)).is_err() {
            assert!(
                start.elapsed() < PATIENCE,
                "Pebble does not listen; {}",
                p.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        p
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("pebble.log")).unwrap_or_default()
    }

    fn directory_url(&self) -> String {
        format!("https://127.0.0.1:{}/dir", self.port)
    }

    /// The CA that signs Pebble's own HTTPS certificate (not the certificates it issues).
    fn https_ca() -> PathBuf {
        Self::tools().join("certs/pebble.minica.pem")
    }

    /// The root that issued certificates chain to, from Pebble's management interface.
    fn issuing_root(&self) -> CertificateDer<'static> {
        let minica = CertificateDer::from_pem_file(Self::https_ca()).unwrap();
        let mut tls = Tls::connect(self.management, "localhost", minica);
        let body = tls.get("localhost", "/roots/0");
        CertificateDer::from_pem_slice(body.as_bytes()).expect("no root from Pebble")
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A TLS client connection that trusts only `root`, with the server's certificate at hand.
struct Tls {
    stream: rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
}

impl Tls {
    fn try_connect(port: u16, name: &str, root: CertificateDer<'static>) -> Result<Tls, String> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(root).map_err(|e| e.to_string())?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = ServerName::try_from(name.to_string()).unwrap();
        let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
        let tcp = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut stream = rustls::StreamOwned::new(conn, tcp);
        while stream.conn.is_handshaking() {
            stream
                .conn
                .complete_io(&mut stream.sock)
                .map_err(|e| e.to_string())?;
        }
        Ok(Tls { stream })
    }

    fn connect(port: u16, name: &str, root: CertificateDer<'static>) -> Tls {
        Self::try_connect(port, name, root).unwrap_or_else(|e| panic!("TLS to port {port}: {e}"))
    }

    /// The serial and issuer of the certificate this connection was made with.
    fn peer(&self) -> (String, String) {
        let der = &self.stream.conn.peer_certificates().unwrap()[0];
        let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
        (cert.raw_serial_as_string(), cert.issuer().to_string())
    }

    /// Upgrades this connection to a WebSocket at `path` (LiveKit's signaling, through bedrud's
    /// `/livekit` proxy); the header is read byte by byte so that no frame after it is lost.
    fn websocket(&mut self, host: &str, path: &str) {
        write!(
            self.stream,
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        .unwrap();
        self.stream.flush().unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            self.stream.read_exact(&mut byte).unwrap();
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head);
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    }

    /// Sends a WebSocket ping and reads frames until its pong: the signaling connection is
    /// still open end to end (client → bedrud → LiveKit and back). A close frame fails.
    fn ping(&mut self, payload: &[u8; 4]) {
        let mask = [1u8, 2, 3, 4];
        let mut frame = vec![0x89, 0x80 | 4];
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().zip(mask).map(|(b, m)| b ^ m));
        self.stream.write_all(&frame).unwrap();
        self.stream.flush().unwrap();
        loop {
            let mut head = [0u8; 2];
            self.stream.read_exact(&mut head).unwrap();
            let opcode = head[0] & 0x0f;
            let len = match head[1] & 0x7f {
                126 => {
                    let mut l = [0u8; 2];
                    self.stream.read_exact(&mut l).unwrap();
                    u16::from_be_bytes(l) as usize
                }
                127 => {
                    let mut l = [0u8; 8];
                    self.stream.read_exact(&mut l).unwrap();
                    u64::from_be_bytes(l) as usize
                }
                n => n as usize,
            };
            let mut body = vec![0; len];
            self.stream.read_exact(&mut body).unwrap();
            assert_ne!(opcode, 0x8, "the signaling WebSocket was closed: {body:?}");
            if opcode == 0xA && body == payload {
                return;
            }
        }
    }

    /// A keep-alive `GET`; the connection stays open for the next one.
    fn get(&mut self, host: &str, path: &str) -> String {
        write!(self.stream, "GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n").unwrap();
        self.stream.flush().unwrap();
        let mut reader = BufReader::new(&mut self.stream);
        let mut length = 0;
        let mut status = String::new();
        reader.read_line(&mut status).unwrap();
        assert!(status.contains(" 200 "), "GET {path}: {status}");
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line == "\r\n" {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        String::from_utf8(body).unwrap()
    }
}

#[test]
fn obtains_serves_and_renews_a_certificate_without_restarting() {
    let sandbox = Sandbox::new();
    let http01 = free_port(false);
    let pebble = Pebble::start(sandbox.path(), http01);
    let acme = format!(
        "server:\n  host: {DOMAIN}\n  enableTLS: true\n  headerTimeout: 5m\n  acme:\n    enabled: true\n\
         \x20   email: ops@{DOMAIN}\n    directoryUrl: {url}\n    directoryCaFile: {ca}\n    httpPort: {http01}\n",
        url = pebble.directory_url(),
        ca = Pebble::https_ca().display(),
    );
    let config = sandbox
        .embedded_config(LIVEKIT, "")
        .replacen("server:\n", &acme, 1);
    sandbox.write_config(&config);
    let mut bedrud = sandbox.start_with_tls(&[], true);
    let pid = bedrud.pid();
    let root = pebble.issuing_root();
    let port = sandbox.ports.api;

    // Until Pebble has issued, bedrud serves a self-signed placeholder, which this client refuses.
    let mut first = bedrud.wait_for("a certificate that chains to Pebble's root", |_| {
        Tls::try_connect(port, DOMAIN, root.clone()).ok()
    });
    let (serial, issuer) = first.peer();
    assert!(issuer.contains("Pebble"), "issuer {issuer}");
    assert!(!first.get(DOMAIN, "/health").is_empty());

    // A meeting's signaling: a WebSocket to LiveKit through bedrud's TLS listener, opened on
    // the first certificate. It must outlive the renewal.
    let (user, _, _) = bedrud.register("alice@bedrud.test");
    let (code, r) = bedrud.call(
        "POST",
        "/api/room/create",
        Some(&user),
        Some(serde_json::json!({"name": "standup"})),
    );
    assert_eq!(code, 201, "{r}");
    let (code, join) = bedrud.call(
        "POST",
        "/api/room/join",
        Some(&user),
        Some(serde_json::json!({"roomName": "standup"})),
    );
    assert_eq!(code, 200, "{join}");
    assert_eq!(
        join["livekitHost"],
        format!("wss://{DOMAIN}:{port}/livekit"),
        "{join}"
    );
    let mut signaling = Tls::connect(port, DOMAIN, root.clone());
    signaling.websocket(
        DOMAIN,
        &format!(
            "/livekit/rtc?access_token={}&auto_subscribe=1&protocol=15",
            join["token"].as_str().unwrap()
        ),
    );
    signaling.ping(b"pre1");
    let livekit_pid = bedrud.livekit_pid();

    let acme_dir = sandbox.path().join("data/acme");
    for file in ["account.json", "certificate.pem", "key.pem", "status.json"] {
        assert_eq!(mode(&acme_dir.join(file)), 0o600, "{file}");
    }
    let status: serde_json::Value =
        serde_json::from_slice(&std::fs::read(acme_dir.join("status.json")).unwrap()).unwrap();
    assert_eq!(status["domain"], DOMAIN);
    assert!(status["lastError"].is_null(), "{status}");
    assert!(status["nextAttempt"].as_u64().is_some(), "{status}");

    // Two thirds into the 45 s lifetime, bedrud renews; the next handshake gets the new serial.
    let renewed = bedrud.wait_for("the renewed certificate", |_| {
        let tls = Tls::try_connect(port, DOMAIN, root.clone()).ok()?;
        let (s, _) = tls.peer();
        (s != serial).then_some(tls)
    });
    let (new_serial, new_issuer) = renewed.peer();
    assert!(new_issuer.contains("Pebble"), "issuer {new_issuer}");
    assert_eq!(bedrud.pid(), pid);
    assert!(bedrud.child.try_wait().unwrap().is_none(), "bedrud exited");
    // The connection opened before the renewal is still up, on its old certificate.
    assert!(!first.get(DOMAIN, "/health").is_empty());
    assert_eq!(first.peer().0, serial);
    assert_ne!(new_serial, serial);
    signaling.ping(b"post");
    assert_eq!(signaling.peer().0, serial);
    assert_eq!(
        bedrud.livekit_pid(),
        livekit_pid,
        "LiveKit was not restarted"
    );
    let logs = bedrud.logs();
    assert!(
        logs.matches("ACME: new certificate installed").count() >= 2,
        "{logs}"
    );
    assert!(
        logs.contains("LiveKit restart pending"),
        "TURN/TLS hook not called: {logs}"
    );
    bedrud.terminate();
}

#[test]
fn a_ca_that_does_not_answer_is_retried_later_while_the_placeholder_serves() {
    let sandbox = Sandbox::new();
    // Nothing listens at this directory: every order fails.
    let acme = format!(
        "server:\n  host: {DOMAIN}\n  enableTLS: true\n  acme:\n    enabled: true\n\
         \x20   directoryUrl: https://127.0.0.1:{closed}/dir\n    directoryCaFile: {ca}\n    httpPort: {http01}\n",
        closed = free_port(false),
        ca = Pebble::https_ca().display(),
        http01 = free_port(false),
    );
    let config = sandbox
        .embedded_config(LIVEKIT, "")
        .replacen("server:\n", &acme, 1);
    sandbox.write_config(&config);
    // Left by a crash between the two writes of a renewal: a certificate and a key that do not
    // belong together. bedrud must not refuse to start over it.
    let acme_dir = sandbox.path().join("data/acme");
    std::fs::create_dir_all(&acme_dir).unwrap();
    let one = rcgen::generate_simple_self_signed(vec![DOMAIN.to_string()]).unwrap();
    let other = rcgen::generate_simple_self_signed(vec![DOMAIN.to_string()]).unwrap();
    std::fs::write(acme_dir.join("certificate.pem"), one.cert.pem()).unwrap();
    std::fs::write(acme_dir.join("key.pem"), other.signing_key.serialize_pem()).unwrap();
    let mut bedrud = sandbox.start_with_tls(&[], true);
    let status_file = sandbox.path().join("data/acme/status.json");
    let status = bedrud.wait_for("a failed order in status.json", |_| {
        let s: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&status_file).ok()?).ok()?;
        s["lastError"].is_string().then_some(s)
    });
    let (attempt, next) = (
        status["lastAttempt"].as_u64().unwrap(),
        status["nextAttempt"].as_u64().unwrap(),
    );
    assert!(next >= attempt + 100, "retry backs off: {status}");
    assert!(status["lastSuccess"].is_null(), "{status}");
    let logs = bedrud.logs();
    assert!(
        logs.contains("ACME: cannot obtain a certificate") && logs.contains("keeps serving"),
        "{logs}"
    );
    // Still up, on the self-signed placeholder for the name.
    bedrud.wait_ready();
    let placeholder = std::fs::read(sandbox.path().join("data/acme/certificate.pem")).unwrap();
    let (_, pem) = x509_parser::pem::parse_x509_pem(&placeholder).unwrap();
    let cert = pem.parse_x509().unwrap();
    assert_eq!(cert.issuer(), cert.subject(), "self-signed placeholder");
    assert!(
        cert.subject().to_string().contains("placeholder"),
        "{}",
        cert.subject()
    );
    bedrud.terminate();
}
