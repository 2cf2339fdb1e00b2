//! Feed files over HTTP: what the feed writer made, with validators that
//! make a poll cost almost nothing.

use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{Path as UrlPath, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::Web;
use crate::feeds::Format;

/// The feed format of a file, by extension, as the feed writer names them.
pub(super) fn feed_format(name: &str) -> Option<Format> {
    let extension = Path::new(name).extension()?.to_str()?;
    Format::ALL
        .into_iter()
        .find(|format| format.extension() == extension)
}

pub(super) async fn feed(
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
pub(super) fn not_modified(request: &HeaderMap, etag: &str, modified: SystemTime) -> bool {
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
