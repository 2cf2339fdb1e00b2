//! The daemon's HTTP side (axum): feeds ([`feeds`]) and the archive's
//! pages ([`site`]) as files ([`files`]: validators, 304, streamed), the
//! subscriber's pages ([`subscribe`]), health and metrics, every page in
//! the layout of [`pages`]; bodies compressed (gzip, br) when the client
//! asks. [`connections`] accepts and bounds the connections, so that
//! web clients never take what mail needs.

use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio::sync::{watch, Notify};
use tower_http::compression::CompressionLayer;

use crate::config::Config;
use crate::health::Health;
use crate::metrics::Metrics;
use crate::store::{self, Handle};
use crate::templates::Templates;
use crate::tokens::Secret;

pub mod connections;
mod feeds;
mod files;
mod pages;
mod search;
mod site;
mod subscribe;

/// What the handlers share.
pub struct Web {
    /// The directory the feed writer fills.
    pub feeds_dir: PathBuf,
    pub metrics: Arc<Metrics>,
    /// The store, read through its handle's reader threads.
    pub store: Handle,
    /// The configuration, as reloaded on SIGHUP.
    pub config: watch::Receiver<Arc<Config>>,
    pub templates: Arc<Templates>,
    /// Signs and checks the tokens in links.
    pub secret: Arc<Secret>,
    /// Woken when a page queued mail, so the outbox sends it now.
    pub outbox: Arc<Notify>,
    /// The listeners' states, for `/healthz`.
    pub health: Arc<Health>,
}

/// The largest request body a page reads: its forms are an address, a
/// mode, a list or a few list codes, well under a kilobyte. axum's
/// default, 2 MB, let every connection (up to `http_max_connections`)
/// hold a form that large in memory while its client trickled the rest:
/// a hundred of them took a quarter of a gigabyte.
const MAX_FORM_BYTES: usize = 16 * 1024;

/// The router of every page the daemon serves.
pub fn router(web: Arc<Web>) -> Router {
    Router::new()
        .route("/feeds/{name}", get(feeds::feed))
        .route(
            "/lists/{code}/subscribe",
            get(subscribe::subscribe_form).post(subscribe::subscribe),
        )
        .route(
            "/lists/{code}/unsubscribe",
            get(subscribe::leave_form).post(subscribe::leave),
        )
        .route(
            "/confirm/{token}",
            get(subscribe::confirm_page).post(subscribe::confirm),
        )
        .route(
            "/unsubscribe/{token}",
            get(subscribe::unsubscribe_page).post(subscribe::unsubscribe),
        )
        .route(
            "/unsubscribe-all/{token}",
            get(subscribe::leave_all_page).post(subscribe::leave_all),
        )
        .route(
            "/prefs/{token}",
            get(subscribe::preferences).post(subscribe::change_preferences),
        )
        .route("/search", get(search::search))
        .route("/healthz", get(health))
        .route("/metrics", get(metrics))
        .fallback(site::page)
        .layer(DefaultBodyLimit::max(MAX_FORM_BYTES))
        .layer(CompressionLayer::new())
        .layer(axum::middleware::map_response(files::etag_per_encoding))
        .with_state(web)
}

/// `ok` when the store answers a read through the daemon's handle and
/// every mail listener is listening, then a line per listener; 503 and
/// `down` when either is not, with the reason.
async fn health(State(web): State<Arc<Web>>) -> Response {
    let read = web.store.read(store::schema_version).await;
    let (listening, listeners) = web.health.report();
    let store = match &read {
        Ok(_) => "store ok\n".to_string(),
        Err(error) => format!("store unavailable: {error}\n"),
    };
    let up = listening && read.is_ok();
    let (status, first) = match up {
        true => (StatusCode::OK, "ok\n"),
        false => (StatusCode::SERVICE_UNAVAILABLE, "down\n"),
    };
    (status, format!("{first}{store}{listeners}")).into_response()
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

#[cfg(test)]
mod tests;
