//! Files the daemon serves as they are on disk: feeds and the archive's
//! pages. A poll must cost almost nothing: the ETag and Last-Modified come
//! from the file's size and mtime (the writers leave unchanged files
//! alone, so both stay put), a conditional GET that matches is answered
//! 304 without opening the file, and bodies past [`READ_WHOLE`] are
//! streamed, never read whole into memory.
//!
//! Compression comes after (tower-http); [`etag_per_encoding`] then makes
//! the ETag of a compressed body differ from the identity one, as RFC 9110
//! section 8.8.3 asks of strong validators.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// How long clients may reuse a file without asking again.
pub const MAX_AGE: &str = "public, max-age=60";

/// Files up to this size are read whole; larger ones are streamed, so
/// memory stays bounded by connections times this, whatever is posted.
const READ_WHOLE: u64 = 256 * 1024;

/// The suffixes [`etag_per_encoding`] gives compressed bodies' ETags.
const ENCODING_SUFFIXES: [&str; 2] = ["-gzip", "-br"];

/// Answers a GET of `path` as `media_type`: 404 when there is no such
/// file, 304 when the client's copy is current, else the file streamed.
pub async fn serve(
    path: &Path,
    media_type: &'static str,
    request: &HeaderMap,
    extra: &[(header::HeaderName, HeaderValue)],
) -> Option<Response> {
    // A stat is a microsecond on a local disk; it runs here rather than on
    // the blocking pool, which would cost more than it saves.
    let metadata = std::fs::metadata(path).ok().filter(|m| m.is_file())?;
    let modified = metadata.modified().unwrap_or(UNIX_EPOCH);
    let nanos = modified
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let etag = format!("\"{:x}-{:x}\"", metadata.len(), nanos);
    let mut headers = HeaderMap::new();
    headers.insert(
        header::ETAG,
        HeaderValue::from_str(&etag).expect("ascii etag"),
    );
    headers.insert(
        header::LAST_MODIFIED,
        HeaderValue::from_str(&httpdate::fmt_http_date(modified)).expect("ascii date"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(MAX_AGE));
    headers.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    for (name, value) in extra {
        headers.insert(name.clone(), value.clone());
    }
    if not_modified(request, &etag, modified) {
        return Some((StatusCode::NOT_MODIFIED, headers).into_response());
    }
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(media_type));
    let body = if metadata.len() <= READ_WHOLE {
        // A page or a small feed: read at once, here, like the stat (a few
        // microseconds from the page cache), rather than through the
        // blocking pool a chunk at a time.
        Body::from(std::fs::read(path).ok()?)
    } else {
        let file = tokio::fs::File::open(path).await.ok()?;
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(metadata.len()));
        Body::from_stream(tokio_util::io::ReaderStream::with_capacity(file, 64 * 1024))
    };
    Some((StatusCode::OK, headers, body).into_response())
}

/// RFC 9110 13.2.2: If-None-Match decides when present (weakly: a tag
/// given back with its encoding's suffix matches); else
/// If-Modified-Since, to the second.
pub fn not_modified(request: &HeaderMap, etag: &str, modified: SystemTime) -> bool {
    if let Some(tags) = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
    {
        return tags
            .split(',')
            .map(|tag| without_encoding(tag.trim().trim_start_matches("W/")))
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

/// `"tag-gzip"` -> `"tag"`.
fn without_encoding(tag: &str) -> String {
    let inner = tag.trim_matches('"');
    let inner = ENCODING_SUFFIXES
        .iter()
        .find_map(|suffix| inner.strip_suffix(suffix))
        .unwrap_or(inner);
    format!("\"{inner}\"")
}

/// Gives the ETag of a compressed answer its encoding's suffix.
pub async fn etag_per_encoding(mut response: Response) -> Response {
    let encoding = response
        .headers()
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .and_then(|encoding| match encoding {
            "gzip" => Some("-gzip"),
            "br" => Some("-br"),
            _ => None,
        });
    let Some(suffix) = encoding else {
        return response;
    };
    let tagged = response
        .headers()
        .get(header::ETAG)
        .and_then(|v| v.to_str().ok())
        .and_then(|etag| etag.strip_suffix('"'))
        .map(|etag| format!("{etag}{suffix}\""));
    if let Some(value) = tagged.and_then(|t| HeaderValue::from_str(&t).ok()) {
        response.headers_mut().insert(header::ETAG, value);
    }
    response
}
