//! Live reload seen from outside: a config file replaced the way editors do it (rename over the
//! old one) is picked up without a signal, and a certificate renewed on disk is served to new TLS
//! connections while a connection made before keeps working with the old one.
//! (SIGHUP and the systemd reload protocol: tests/systemd.rs.)

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;

use common::*;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConnection, DigitallySignedStruct, SignatureScheme, StreamOwned};

/// A certificate for `localhost` with a serial and issuer of the test's choosing, as PEM.
fn certificate(serial: u64, issuer: &str) -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params.serial_number = Some(rcgen::SerialNumber::from(serial));
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, issuer);
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// Writes `text` to `path` as editors and certbot do: a new file renamed over the old one.
fn replace(path: &Path, text: &str) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Accepts any server certificate: the test reads the certificate instead of trusting it.
#[derive(Debug)]
struct ReadAnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for ReadAnyCertificate {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algs = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algs = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// One kept-alive HTTPS connection to bedrud's API.
struct TlsConnection(StreamOwned<ClientConnection, TcpStream>);

impl TlsConnection {
    fn open(port: u16) -> TlsConnection {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(ReadAnyCertificate(provider)))
            .with_no_client_auth();
        let name = ServerName::try_from("localhost").unwrap();
        let conn = ClientConnection::new(Arc::new(config), name).unwrap();
        let tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
        tcp.set_read_timeout(Some(PATIENCE)).unwrap();
        let mut stream = StreamOwned::new(conn, tcp);
        assert_eq!(TlsConnection::get(&mut stream), 200);
        TlsConnection(stream)
    }

    /// `GET /health` on this connection (keep-alive); the status code.
    fn health(&mut self) -> u16 {
        TlsConnection::get(&mut self.0)
    }

    fn get(s: &mut StreamOwned<ClientConnection, TcpStream>) -> u16 {
        s.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            s.read_exact(&mut byte).unwrap();
            head.push(byte[0]);
        }
        let head = String::from_utf8(head).unwrap();
        let length: usize = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().unwrap())
            })
            .expect("a content-length");
        let mut body = vec![0u8; length];
        s.read_exact(&mut body).unwrap();
        head[9..12].parse().unwrap()
    }

    /// The serial and issuer of the certificate this connection was made with.
    fn certificate(&self) -> (String, String) {
        let der = self.0.conn.peer_certificates().unwrap()[0].clone();
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        (cert.raw_serial_as_string(), cert.issuer().to_string())
    }
}

#[test]
fn a_renamed_config_and_a_renewed_certificate_apply_without_a_restart() {
    let sb = Sandbox::new();
    let tls = sb.path().join("tls");
    std::fs::create_dir(&tls).unwrap();
    let (cert_file, key_file) = (tls.join("cert.pem"), tls.join("key.pem"));
    let (cert, key) = certificate(1001, "bedrud test issuer one");
    std::fs::write(&cert_file, cert).unwrap();
    std::fs::write(&key_file, key).unwrap();
    // A long header timeout: the kept-alive connection waits idle through the renewal.
    let server = format!(
        "server:\n  enableTLS: true\n  certFile: {}\n  keyFile: {}\n  headerTimeout: 5m\n",
        cert_file.display(),
        key_file.display()
    );
    let base = sb
        .embedded_config(LIVEKIT, "")
        .replacen("server:\n", &server, 1);
    let config = sb.write_config(&base);
    let mut b = sb.start_with_tls(&[], true);
    b.wait_ready();
    let pid = b.pid();
    b.register("first@reload.test");

    // The config file, replaced by rename as an editor saves it: no signal needed.
    replace(
        &config,
        &(base.clone() + "auth:\n  allowRegistration: false\n"),
    );
    let line = b.wait_for("the file-change reload", |b| {
        b.logs()
            .lines()
            .find(|l| l.contains("config reloaded (file change)"))
            .map(str::to_string)
    });
    assert!(line.contains("applied: auth.allowRegistration"), "{line}");
    let body = serde_json::json!({"email": "second@reload.test", "password": "correct horse battery", "name": "second"});
    assert_eq!(
        b.call("POST", "/api/auth/register", None, Some(body)).0,
        403
    );

    // A connection made with the first certificate.
    let mut old = TlsConnection::open(sb.ports.api);
    let first = old.certificate();
    assert_eq!(first.0, "03:e9", "serial 1001");
    assert!(first.1.contains("bedrud test issuer one"), "{first:?}");

    // Renewal on disk: new certificate and key, each renamed into place.
    let (cert, key) = certificate(1002, "bedrud test issuer two");
    replace(&key_file, &key);
    replace(&cert_file, &cert);
    b.wait_for("the certificate swap", |b| {
        b.logs().contains("API certificate swapped").then_some(())
    });
    let new = TlsConnection::open(sb.ports.api);
    let second = new.certificate();
    assert_eq!(second.0, "03:ea", "a new connection gets serial 1002");
    assert!(second.1.contains("bedrud test issuer two"), "{second:?}");
    // The old connection is still open and answers, with the certificate it was made with.
    assert_eq!(old.health(), 200);
    assert_eq!(old.certificate(), first);

    // A broken key is refused: the renewed certificate keeps serving.
    replace(
        &key_file,
        "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n",
    );
    b.wait_for("the refusal", |b| {
        b.logs()
            .contains("config reload (file change) refused")
            .then_some(())
    });
    assert!(
        b.logs().contains("server.keyFile"),
        "the refusal names the key: {}",
        b.logs()
    );
    let after = TlsConnection::open(sb.ports.api);
    assert_eq!(after.certificate(), second);
    assert_eq!(old.health(), 200);
    assert_eq!(b.pid(), pid);
    assert!(alive(pid));
    assert!(b.terminate().success());
}

#[test]
fn bedrud_livekit_restart_restarts_the_running_livekit_through_the_admin_api() {
    let sb = Sandbox::new();
    let config = sb.write_config(&sb.embedded_config(LIVEKIT, ""));
    let mut b = sb.start(&[]);
    b.wait_ready();
    let livekit = b.livekit_pid();
    let run = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_bedrud"))
            .args(["livekit", "restart", "--config"])
            .arg(&config)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .output()
            .unwrap()
    };
    // The harness made an admin account (it reads /ready's details as one): the command
    // signs its request as that account.
    b.admin_token().expect("an admin account");
    let out = run();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("LiveKit is restarting"), "{said}");
    b.wait_for("a new LiveKit", |b| {
        let (st, r) = b.ready()?;
        let pid = r["livekit"]["pid"].as_u64()?;
        (st == 200 && pid != u64::from(livekit)).then_some(())
    });
    assert!(b.logs().contains("LiveKit restart forced by an admin"));
    // The API refuses anyone but an admin.
    let (access, _, _) = b.register("someone@reload.test");
    let (st, _) = b.call("POST", "/api/admin/livekit/restart", Some(&access), None);
    assert_eq!(st, 403);
    assert!(b.terminate().success());
}
