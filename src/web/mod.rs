//! The daemon's HTTP side (axum): feeds ([`feeds`]) and the archive's
//! pages ([`site`]) as files ([`files`]: validators, 304, streamed), the
//! subscriber's pages ([`subscribe`]), health and metrics, every page in
//! the layout of [`pages`]; bodies compressed (gzip, br) when the client
//! asks.

use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;
use tower_http::compression::CompressionLayer;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::store::{self, Handle};
use crate::templates::Templates;
use crate::tokens::Secret;

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
}

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
            "/prefs/{token}",
            get(subscribe::preferences).post(subscribe::change_preferences),
        )
        .route("/search", get(search::search))
        .route("/healthz", get(health))
        .route("/metrics", get(metrics))
        .fallback(site::page)
        .layer(CompressionLayer::new())
        .layer(axum::middleware::map_response(files::etag_per_encoding))
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

#[cfg(test)]
mod tests;
