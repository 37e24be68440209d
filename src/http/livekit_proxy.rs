//! LiveKit's signaling on bedrud's own listener (embedded mode): `/livekit/<path>` is forwarded
//! to the embedded livekit-server's HTTP port, WebSocket upgrades included. A browser then needs
//! one origin only, and with `server.enableTLS` it speaks `wss://` with bedrud's certificate.
//! Media does not come through here: it flows over LiveKit's own UDP/TCP ports and TURN.
//!
//! Each request gets its own HTTP/1.1 connection to LiveKit (loopback, so connecting is cheap).
//! Bodies stream through hyper untouched; an upgraded connection is spliced to LiveKit's with
//! `tokio::io::copy_bidirectional`, so nothing is buffered beyond a copy buffer.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode, Uri, Version};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::{ApiError, AppState};

/// Hop-by-hop headers (RFC 9110 §7.6.1): they describe one connection, not the request.
const HOP_BY_HOP: [header::HeaderName; 5] = [
    header::CONNECTION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

pub async fn proxy(State(s): State<AppState>, mut req: Request) -> Response {
    let Some(upstream) = s.livekit_proxy.clone() else {
        return ApiError::NotFound(
            "LiveKit is external: clients connect to livekit.host directly".into(),
        )
        .into_response();
    };
    let path = req.uri().path().strip_prefix("/livekit").unwrap_or("");
    let path = if path.is_empty() { "/" } else { path };
    let target = match req.uri().query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
    };
    let Ok(target) = target.parse::<Uri>() else {
        return ApiError::BadRequest("bad path".into()).into_response();
    };

    let websocket = req
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let client_upgrade = websocket.then(|| hyper::upgrade::on(&mut req));

    let (mut parts, body) = req.into_parts();
    parts.uri = target;
    parts.version = Version::HTTP_11;
    for h in HOP_BY_HOP {
        parts.headers.remove(h);
    }
    parts.headers.remove("keep-alive");
    parts.headers.remove("proxy-connection");
    if websocket {
        parts
            .headers
            .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        parts
            .headers
            .insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    }
    if let Ok(host) = HeaderValue::from_str(&upstream) {
        parts.headers.insert(header::HOST, host);
    }
    let upstream_req = Request::from_parts(parts, body);

    let unavailable = |e: &dyn std::fmt::Display| {
        tracing::warn!("LiveKit signaling proxy: {e}");
        (
            StatusCode::BAD_GATEWAY,
            axum::Json(serde_json::json!({ "error": format!("LiveKit is not reachable: {e}") })),
        )
            .into_response()
    };
    let stream = match TcpStream::connect(&upstream).await {
        Ok(s) => s,
        Err(e) => return unavailable(&e),
    };
    // Signaling is many small messages: send each at once.
    let _ = stream.set_nodelay(true);
    let (mut sender, conn) = match hyper::client::conn::http1::handshake(TokioIo::new(stream)).await
    {
        Ok(pair) => pair,
        Err(e) => return unavailable(&e),
    };
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!("LiveKit signaling connection ended: {e}");
        }
    });
    let mut response = match sender.send_request(upstream_req).await {
        Ok(r) => r,
        Err(e) => return unavailable(&e),
    };

    if response.status() != StatusCode::SWITCHING_PROTOCOLS {
        // This connection's own headers are not the client's (a 101 keeps them: they are the
        // upgrade itself).
        for h in HOP_BY_HOP {
            response.headers_mut().remove(h);
        }
        response.headers_mut().remove("keep-alive");
    }
    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        if let Some(client_upgrade) = client_upgrade {
            let upstream_upgrade = hyper::upgrade::on(&mut response);
            tokio::spawn(async move {
                let (client, livekit) = match tokio::join!(client_upgrade, upstream_upgrade) {
                    (Ok(c), Ok(l)) => (c, l),
                    (c, l) => {
                        tracing::debug!(
                            "LiveKit signaling upgrade failed: client {:?}, LiveKit {:?}",
                            c.err(),
                            l.err()
                        );
                        return;
                    }
                };
                let (mut client, mut livekit) = (TokioIo::new(client), TokioIo::new(livekit));
                if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut livekit).await {
                    tracing::debug!("LiveKit signaling WebSocket ended: {e}");
                }
            });
        }
    }
    response.map(Body::new)
}
