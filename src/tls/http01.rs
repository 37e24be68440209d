//! The plain-HTTP listener for ACME's HTTP-01 challenge (`server.acme.httpPort`, 80 for a public
//! CA): it answers `/.well-known/acme-challenge/<token>` while an order is open, and sends every
//! other request to the HTTPS API, so that `http://<host>/` still leads somewhere useful.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Json, Router};
use tokio_util::sync::CancellationToken;

/// The challenge answers of the open order: token → key authorization.
#[derive(Clone, Default)]
pub struct Tokens(Arc<Mutex<HashMap<String, String>>>);

impl Tokens {
    pub fn insert(&self, token: String, key_authorization: String) {
        self.lock().insert(token, key_authorization);
    }

    pub fn clear(&self) {
        self.lock().clear();
    }

    fn get(&self, token: &str) -> Option<String> {
        self.lock().get(token).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[derive(Clone)]
struct Http01 {
    tokens: Tokens,
    /// `https://<server.host>[:port]`: where other requests are sent.
    https_origin: String,
}

/// Serves the challenge answers on `listener` until `stop`.
pub async fn serve(
    listener: std::net::TcpListener,
    tokens: Tokens,
    https_origin: String,
    stop: CancellationToken,
) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let app = Router::new()
        .route("/.well-known/acme-challenge/{token}", get(challenge))
        .fallback(to_https)
        .with_state(Http01 {
            tokens,
            https_origin,
        });
    axum::serve(listener, app)
        .with_graceful_shutdown(stop.cancelled_owned())
        .await
}

async fn challenge(State(s): State<Http01>, Path(token): Path<String>) -> Response {
    match s.tokens.get(&token) {
        Some(answer) => {
            ([(header::CONTENT_TYPE, "application/octet-stream")], answer).into_response()
        }
        None => (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({"error": "no such ACME challenge"})),
        )
            .into_response(),
    }
}

/// The configured name, never the request's Host header: this listener must not become an open
/// redirect to wherever a client says.
async fn to_https(State(s): State<Http01>, uri: Uri) -> Redirect {
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    Redirect::permanent(&format!("{}{path}", s.https_origin))
}
