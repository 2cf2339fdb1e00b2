//! `/search?q=...&lang=CODE&year=YYYY&page=N`: full-text search over the
//! published posts ([`crate::search`] makes the query safe, the store
//! ranks), in the archive's layout.

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;

use super::pages::{error_page, Page};
use super::Web;
use crate::site::pages::{month_start, Pages, Search, SEARCH_PAGE};
use crate::store::archive::{self, SearchFilter};

/// The query string, every field optional and taken as text, so that no
/// query string is an error.
#[derive(Debug, Default)]
struct Params {
    q: String,
    lang: String,
    year: String,
    page: String,
}

impl Params {
    fn parse(query: &str) -> Params {
        let mut params = Params::default();
        for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
            let field = match name.as_ref() {
                "q" => &mut params.q,
                "lang" => &mut params.lang,
                "year" => &mut params.year,
                "page" => &mut params.page,
                _ => continue,
            };
            *field = value.into_owned();
        }
        params
    }
}

/// The most result pages a search goes through.
const MAX_PAGE: usize = 50;

pub(super) async fn search(State(web): State<Arc<Web>>, RawQuery(query): RawQuery) -> Response {
    let params = Params::parse(query.as_deref().unwrap_or_default());
    let config = web.config.borrow().clone();
    let lang = Some(params.lang.trim().to_string()).filter(|code| config.list(code).is_some());
    let year = params
        .year
        .trim()
        .parse::<i32>()
        .ok()
        .filter(|y| (1970..=9999).contains(y));
    let page = params
        .page
        .trim()
        .parse::<usize>()
        .unwrap_or(1)
        .clamp(1, MAX_PAGE);
    let mut query: String = params.q.chars().take(500).collect();
    query.truncate(query.trim_end().len());
    let search = Search {
        query,
        lang,
        year,
        page,
    };
    let filter = SearchFilter {
        lang: search.lang.clone(),
        between: year.map(|y| (month_start(&config, y, 1), month_start(&config, y, 13))),
    };
    let fts = crate::search::query(&search.query);
    let read_config = config.clone();
    let found = web
        .store
        .read(move |db| -> anyhow::Result<_> {
            let years = crate::site::years(&read_config, db)?;
            let found = match fts {
                Some(fts) => {
                    archive::search(db, &fts, &filter, SEARCH_PAGE + 1, (page - 1) * SEARCH_PAGE)?
                }
                None => archive::Found::default(),
            };
            Ok((years, found))
        })
        .await;
    let rendered = found.and_then(|(years, found)| {
        Pages::new(&config, &web.templates).search(&search, &found, &years)
    });
    match rendered {
        Ok(html) => axum::response::IntoResponse::into_response(Page {
            status: StatusCode::OK,
            html,
        }),
        Err(error) => error_page(&web, error.into()),
    }
}
