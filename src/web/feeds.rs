//! Feed files over HTTP: what the feed writer made, served by [`files`]
//! (never through a symbolic link).

use std::path::Path;
use std::sync::Arc;

use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::{files, Web};
use crate::feeds::Format;

/// The feed format of a file, by extension, as the feed writer names them.
pub(super) fn feed_format(name: &str) -> Option<Format> {
    let extension = Path::new(name).extension()?.to_str()?;
    Format::ALL
        .into_iter()
        .find(|format| format.extension() == extension)
}

/// The media type a feed is served as.
fn content_type(format: Format) -> &'static str {
    match format {
        Format::Rss => "application/rss+xml; charset=utf-8",
        Format::Atom => "application/atom+xml; charset=utf-8",
        Format::Rdf => "application/rdf+xml; charset=utf-8",
        Format::Json => "application/feed+json; charset=utf-8",
    }
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
    files::serve(
        &web.feeds_dir,
        Path::new(&name),
        content_type(format),
        &request,
        &[],
    )
    .await
    .unwrap_or_else(not_found)
}
