//! HTML pages: one layout (`templates/web/layout.html`), each page in the
//! language of its list, and one error type that logs the cause and shows
//! a plain page, never internals.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::Web;
pub use crate::site::layout::{Button, Field, Layout, Link, Message};

/// A page to answer with.
pub struct Page {
    pub status: StatusCode,
    pub html: String,
}

impl IntoResponse for Page {
    fn into_response(self) -> Response {
        let mut response = (self.status, self.html).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        for (name, value) in security_headers() {
            headers.insert(name, value);
        }
        response
    }
}

/// What every page carries: pages run no script and load nothing from
/// elsewhere; links with a token in them must not leak it to another site.
pub fn security_headers() -> [(header::HeaderName, HeaderValue); 3] {
    [
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
            ),
        ),
        (header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
    ]
}

/// Why a page could not be shown.
#[derive(Debug)]
pub enum WebError {
    /// No such page (or a token that is not ours: the same to a visitor).
    NotFound,
    /// The store refused for the time being (another process holds its
    /// write lock past the busy timeout, the disk is full): 503 with a
    /// Retry-After, so a client tries again instead of giving up.
    Busy(anyhow::Error),
    /// A fault of ours; logged, and shown as a plain apology.
    Internal(anyhow::Error),
}

/// How long a client is asked to wait before trying a busy page again.
const RETRY_AFTER_SECONDS: &str = "5";

impl From<anyhow::Error> for WebError {
    fn from(error: anyhow::Error) -> Self {
        let temporary = error.chain().any(|cause| {
            cause
                .downcast_ref::<crate::store::Error>()
                .is_some_and(crate::store::Error::is_temporary)
        });
        match temporary {
            true => WebError::Busy(error),
            false => WebError::Internal(error),
        }
    }
}

impl From<crate::store::Error> for WebError {
    fn from(error: crate::store::Error) -> Self {
        anyhow::Error::from(error).into()
    }
}

/// What a page handler returns.
pub type PageResult = Result<Page, WebError>;

/// Layouts answered as pages.
pub trait Respond {
    /// Renders `templates/web/FILE` as a page with `status`.
    fn render(&self, file: &str, title: &str, status: StatusCode, context: Value) -> PageResult;
    /// A page of a heading, paragraphs, an optional button and links.
    fn message(&self, status: StatusCode, message: Message) -> PageResult;
}

impl Respond for Layout<'_> {
    fn render(&self, file: &str, title: &str, status: StatusCode, context: Value) -> PageResult {
        Ok(Page {
            status,
            html: self.html(file, title, &[], context)?,
        })
    }

    fn message(&self, status: StatusCode, message: Message) -> PageResult {
        Ok(Page {
            status,
            html: self.message_html(message)?,
        })
    }
}

/// The answer to a failure, in `web`'s shipped words.
pub fn error_page(web: &Web, error: WebError) -> Response {
    let config = web.config.borrow().clone();
    let layout = Layout::site(&config, &web.templates, "en");
    let (status, heading, text) = match &error {
        WebError::NotFound => (StatusCode::NOT_FOUND, "not_found_title", "not_found_text"),
        WebError::Busy(cause) => {
            tracing::warn!("a page was asked to wait: {cause:#}");
            (StatusCode::SERVICE_UNAVAILABLE, "error_title", "error_text")
        }
        WebError::Internal(cause) => {
            tracing::error!("a page failed: {cause:#}");
            #[cfg(test)]
            eprintln!("a page failed: {cause:#}");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "error_title",
                "error_text",
            )
        }
    };
    let labels = web.templates.labels_of("web", "en");
    let message = Message {
        heading: labels.get(heading).cloned().unwrap_or_default(),
        paragraphs: vec![labels.get(text).cloned().unwrap_or_default()],
        ..Message::default()
    };
    let mut response = match layout.message(status, message) {
        Ok(page) => page.into_response(),
        Err(_) => (status, "error\n").into_response(),
    };
    if matches!(error, WebError::Busy(_)) {
        response.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from_static(RETRY_AFTER_SECONDS),
        );
    }
    response
}
