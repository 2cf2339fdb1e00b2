//! The daemon's HTTP side (axum): feeds, health and metrics. Archive pages,
//! subscribe and unsubscribe join the same router later.
//!
//! Feed readers poll often, so a poll must cost almost nothing: each feed
//! answer carries an ETag and Last-Modified from the file's size and mtime
//! (the feed writer leaves unchanged files alone, so both stay put), a
//! conditional GET that matches is answered 304 without reading the file,
//! and bodies are compressed (gzip, br) when the client asks.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{Path as UrlPath, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::compression::CompressionLayer;

use crate::feeds::Format;
use crate::metrics::Metrics;
use crate::store::{self, Handle};

/// What the handlers share.
pub struct Web {
    /// The directory the feed writer fills.
    pub feeds_dir: PathBuf,
    pub metrics: Arc<Metrics>,
    /// The store, read through its handle's reader threads.
    pub store: Handle,
}

/// The router of every page the daemon serves.
pub fn router(web: Arc<Web>) -> Router {
    Router::new()
        .route("/feeds/{name}", get(feed))
        .route("/healthz", get(health))
        .route("/metrics", get(metrics))
        .layer(CompressionLayer::new())
        .with_state(web)
}

/// Serves `router` on `listener` until `shutdown`.
pub async fn run(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

/// `ok` once the store has answered a read through the daemon's handle;
/// 503 with the reason when it cannot.
async fn health(State(web): State<Arc<Web>>) -> Response {
    let read = web.store.read(store::schema_version).await;
    match read {
        Ok(_) => "ok\n".into_response(),
        Err(error) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("store unavailable: {error}\n"),
        )
            .into_response(),
    }
}

async fn metrics(State(web): State<Arc<Web>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        web.metrics.render(),
    )
}

/// The feed format of a file, by extension, as the feed writer names them.
fn feed_format(name: &str) -> Option<Format> {
    let extension = Path::new(name).extension()?.to_str()?;
    Format::ALL
        .into_iter()
        .find(|format| format.extension() == extension)
}

async fn feed(
    State(web): State<Arc<Web>>,
    UrlPath(name): UrlPath<String>,
    request: HeaderMap,
) -> Response {
    let not_found = || (StatusCode::NOT_FOUND, "no such feed\n").into_response();
    let Some(format) = feed_format(&name) else {
        return not_found();
    };
    if name.starts_with('.') || name.contains(['/', '\\']) {
        return not_found();
    }
    let path = web.feeds_dir.join(&name);
    // A stat is a microsecond on a local disk; it runs here rather than on
    // the blocking pool, which would cost more than it saves.
    let Ok(metadata) = std::fs::metadata(&path) else {
        return not_found();
    };
    let modified = metadata.modified().unwrap_or(UNIX_EPOCH);
    let nanos = modified
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let etag = format!("\"{:x}-{:x}\"", metadata.len(), nanos);
    let last_modified = httpdate::fmt_http_date(modified);
    let mut headers = HeaderMap::new();
    headers.insert(
        header::ETAG,
        HeaderValue::from_str(&etag).expect("ascii etag"),
    );
    headers.insert(
        header::LAST_MODIFIED,
        HeaderValue::from_str(&last_modified).expect("ascii date"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=60"),
    );
    headers.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    if not_modified(&request, &etag, modified) {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    match tokio::fs::read(&path).await {
        Ok(body) => {
            let content_type = format!("{}; charset=utf-8", format.media_type());
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_str(&content_type).expect("ascii media type"),
            );
            (StatusCode::OK, headers, body).into_response()
        }
        Err(_) => not_found(),
    }
}

/// RFC 9110 13.2.2: If-None-Match decides when present; else
/// If-Modified-Since, to the second.
fn not_modified(request: &HeaderMap, etag: &str, modified: SystemTime) -> bool {
    if let Some(tags) = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
    {
        return tags
            .split(',')
            .map(|tag| tag.trim().trim_start_matches("W/"))
            .any(|tag| tag == "*" || tag == etag);
    }
    let Some(since) = request
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok())
    else {
        return false;
    };
    let seconds = |time: SystemTime| time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    seconds(modified) <= seconds(since)
}

#[cfg(test)]
mod tests;
