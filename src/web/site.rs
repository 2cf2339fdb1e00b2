//! The archive's pages over HTTP: the files the site builder wrote into
//! `[site] site_dir`, each at its URL ([`crate::site::paths::file_of`]),
//! served by [`files`] with validators and streamed, never through a
//! symbolic link in `site_dir`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use super::pages::{error_page, security_headers, WebError};
use super::{files, Web};
use crate::site::paths;

/// Any GET no other route answers: a page of the archive, or 404.
pub(super) async fn page(
    State(web): State<Arc<Web>>,
    method: Method,
    uri: Uri,
    request: HeaderMap,
) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            [(header::ALLOW, "GET, HEAD")],
        )
            .into_response();
    }
    let path = percent_encoding::percent_decode_str(uri.path()).decode_utf8_lossy();
    let Some(file) = paths::file_of(&path) else {
        return error_page(&web, WebError::NotFound);
    };
    let media_type = match file.extension().and_then(|e| e.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("eml") => "message/rfc822",
        _ => return error_page(&web, WebError::NotFound),
    };
    let site_dir = web.config.borrow().site.site_dir.clone();
    let mut extra: Vec<(header::HeaderName, HeaderValue)> = security_headers().into();
    if media_type == "message/rfc822" {
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
            extra.push((header::CONTENT_DISPOSITION, value));
        }
    }
    match files::serve(&site_dir, &file, media_type, &request, &extra).await {
        Some(response) => response,
        None => error_page(&web, WebError::NotFound),
    }
}
