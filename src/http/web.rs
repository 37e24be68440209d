//! The browser app at `/`: its built files, embedded at compile time (see `build.rs`), served
//! with the precompressed variant the client accepts (brotli, then gzip). Vite names every file
//! under `assets/` by its content hash, so those are cached for a year; `index.html` (and the
//! other unhashed files) are revalidated on every load, so a new release shows at once.
//! Any other path that is not an API path answers `index.html`: the app routes on the client.

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

pub struct Asset {
    pub path: &'static str,
    pub raw: &'static [u8],
    pub gzip: Option<&'static [u8]>,
    pub brotli: Option<&'static [u8]>,
}

include!(concat!(env!("OUT_DIR"), "/web_assets.rs"));

const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// The router's fallback: an embedded file, or `index.html` for a client-side route.
pub async fn serve(method: Method, uri: Uri, headers: HeaderMap) -> Response {
    let path = uri.path().trim_start_matches('/');
    if path == "api" || path.starts_with("api/") {
        return super::not_found().await.into_response();
    }
    if method != Method::GET && method != Method::HEAD {
        return super::not_found().await.into_response();
    }
    let asset = match find(path) {
        Some(a) => a,
        // A missing hashed file is an old page asking for a replaced build: a real 404, not
        // the app's HTML under a script's name.
        None if path.starts_with("assets/") => {
            return (StatusCode::NOT_FOUND, "no such file").into_response()
        }
        None => find("index.html").expect("build.rs requires index.html"),
    };
    let cache = if asset.path.starts_with("assets/") {
        IMMUTABLE
    } else {
        "no-cache"
    };
    let (body, encoding) = pick_encoding(asset, &headers);
    let mut r = Response::new(if method == Method::HEAD {
        Body::empty()
    } else {
        Body::from(body)
    });
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(asset.path)),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if let Some(e) = encoding {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static(e));
    }
    r
}

fn find(path: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.path == path)
}

/// The smallest variant the client accepts: brotli, then gzip, then the file itself.
fn pick_encoding(asset: &Asset, headers: &HeaderMap) -> (&'static [u8], Option<&'static str>) {
    let accepted = headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(",");
    if let Some(br) = asset.brotli.filter(|_| accepts(&accepted, "br")) {
        return (br, Some("br"));
    }
    if let Some(gz) = asset.gzip.filter(|_| accepts(&accepted, "gzip")) {
        return (gz, Some("gzip"));
    }
    (asset.raw, None)
}

/// Whether `Accept-Encoding` lists `coding` without `q=0`.
fn accepts(header: &str, coding: &str) -> bool {
    header.split(',').any(|item| {
        let mut parts = item.split(';').map(str::trim);
        let name = parts.next().unwrap_or("");
        let refused = parts.any(|p| {
            p.strip_prefix("q=")
                .and_then(|q| q.parse::<f32>().ok())
                .is_some_and(|q| q == 0.0)
        });
        name.eq_ignore_ascii_case(coding) && !refused
    })
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map_or("", |(_, ext)| ext) {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        "webmanifest" => "application/manifest+json",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_encoding_is_read_with_its_weights() {
        assert!(accepts("gzip, deflate, br, zstd", "br"));
        assert!(accepts("GZIP;q=0.5", "gzip"));
        assert!(!accepts("br;q=0, gzip", "br"));
        assert!(!accepts("identity", "gzip"));
        assert!(!accepts("", "br"));
    }

    #[test]
    fn the_built_app_is_embedded_with_compressed_variants() {
        let index = find("index.html").expect("index.html");
        assert!(std::str::from_utf8(index.raw)
            .unwrap()
            .contains("<div id=\"root\">"));
        let scripts: Vec<_> = ASSETS
            .iter()
            .filter(|a| a.path.starts_with("assets/") && a.path.ends_with(".js"))
            .collect();
        assert!(!scripts.is_empty());
        for a in scripts {
            assert!(a.gzip.is_some() && a.brotli.is_some(), "{}", a.path);
        }
    }
}
