//! HTML pages: one layout (`templates/web/layout.html`), each page in the
//! language of its list, and one error type that logs the cause and shows
//! a plain page, never internals.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{json, Value};

use super::Web;
use crate::config::{Config, List};
use crate::templates::Templates;

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
        // Pages carry no script and load nothing from elsewhere; links with
        // a token in them must not leak it to another site.
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
            ),
        );
        headers.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        response
    }
}

/// Why a page could not be shown.
#[derive(Debug)]
pub enum WebError {
    /// No such page (or a token that is not ours: the same to a visitor).
    NotFound,
    /// A fault of ours; logged, and shown as a plain apology.
    Internal(anyhow::Error),
}

impl From<anyhow::Error> for WebError {
    fn from(error: anyhow::Error) -> Self {
        WebError::Internal(error)
    }
}

impl From<crate::store::Error> for WebError {
    fn from(error: crate::store::Error) -> Self {
        WebError::Internal(error.into())
    }
}

/// What a page handler returns.
pub type PageResult = Result<Page, WebError>;

/// The writing direction of a language: right to left for the scripts
/// that are.
pub fn direction(lang: &str) -> &'static str {
    let primary = lang.split('-').next().unwrap_or("").to_ascii_lowercase();
    match primary.as_str() {
        "ar" | "fa" | "he" | "ur" | "ps" | "yi" | "dv" | "ku" | "sd" => "rtl",
        _ => "ltr",
    }
}

/// What every page sees: the site, the page's title, language and
/// direction, the labels of its language, the list it is about.
pub struct Layout<'a> {
    pub config: &'a Config,
    pub templates: &'a Templates,
    pub list: Option<&'a List>,
    /// The template language of the page.
    pub lang: String,
}

impl<'a> Layout<'a> {
    /// A page about `list`, in its language.
    pub fn for_list(config: &'a Config, templates: &'a Templates, list: &'a List) -> Self {
        Layout {
            config,
            templates,
            lang: templates.language(&list.lang),
            list: Some(list),
        }
    }

    /// A page about no list in particular, in `lang`.
    pub fn site(config: &'a Config, templates: &'a Templates, lang: &str) -> Self {
        Layout {
            config,
            templates,
            lang: templates.language(lang),
            list: None,
        }
    }

    /// A web label of the page's language, rendered with `context`.
    pub fn label(&self, key: &str, context: &Value) -> anyhow::Result<String> {
        let source = self.templates.label("web", &self.lang, key);
        // Most labels are plain text, and rendering one builds the page's
        // whole context (every label, the list) and compiles the label: about
        // a third of the work of a one-click unsubscribe. minijinja would
        // give plain text back as it is, but for one trailing newline.
        if !source.contains(['{', '}']) {
            return Ok(match source.strip_suffix('\n') {
                Some(stripped) => stripped.to_string(),
                None => source,
            });
        }
        self.templates
            .render_str(&source, self.context(context.clone()))
    }

    fn context(&self, extra: Value) -> Value {
        let mut context = json!({
            "site": {"name": self.config.site.name, "url": self.config.site.base_url.as_str()},
            "labels": self.templates.labels_of("web", &self.lang),
        });
        if let Some(list) = self.list {
            context["list"] = list_context(self.config, list);
        }
        if let (Value::Object(context), Value::Object(extra)) = (&mut context, extra) {
            context.extend(extra);
        }
        context
    }

    /// Renders `templates/web/FILE` with `context`, titled `title`.
    pub fn render(
        &self,
        file: &str,
        title: &str,
        status: StatusCode,
        context: Value,
    ) -> PageResult {
        let lang = self
            .list
            .map_or(self.lang.clone(), |list| list.lang.clone());
        let mut context = self.context(context);
        context["page"] = json!({
            "title": title,
            "lang": lang,
            "dir": direction(&lang),
            "feeds": self.list.map(|list| feeds(self.config, list)).unwrap_or_default(),
            "alternates": [],
        });
        let html = self.templates.render("web", &self.lang, file, &context)?;
        Ok(Page { status, html })
    }

    /// A page of a heading, paragraphs, an optional button (a form that
    /// POSTs) and links.
    pub fn message(&self, status: StatusCode, message: Message) -> PageResult {
        let title = message.heading.clone();
        self.render(
            "message.html",
            &title,
            status,
            serde_json::to_value(message).map_err(anyhow::Error::from)?,
        )
    }
}

/// A plain page's content.
#[derive(Debug, Default, Serialize)]
pub struct Message {
    pub heading: String,
    pub paragraphs: Vec<String>,
    pub button: Option<Button>,
    pub links: Vec<Link>,
}

/// A form of one button that POSTs hidden fields to `action`.
#[derive(Debug, Serialize)]
pub struct Button {
    pub action: String,
    pub label: String,
    pub fields: Vec<Field>,
}

/// A hidden form field.
#[derive(Debug, Serialize)]
pub struct Field {
    pub name: String,
    pub value: String,
}

/// A link.
#[derive(Debug, Serialize)]
pub struct Link {
    pub url: String,
    pub text: String,
}

/// What templates see of a list.
pub fn list_context(config: &Config, list: &List) -> Value {
    let addresses = crate::digest::headers::ListAddresses::new(config, list);
    json!({
        "code": list.code,
        "name": list.name,
        "title": list.title,
        "description": list.description,
        "lang": list.lang,
        "address": list.address,
        "request": addresses.request,
        "owner": addresses.owner,
        "archive_url": addresses.archive_url,
        "subscribe_url": addresses.subscribe_url,
    })
}

/// The feeds of a list, for discovery links in a page's head.
fn feeds(config: &Config, list: &List) -> Vec<Value> {
    crate::feeds::Format::ALL
        .iter()
        .map(|format| {
            json!({
                "type": format.media_type(),
                "title": format!("{} ({})", list.title, format.extension()),
                "url": format!("{}feeds/{}.{}", config.site.base_url, list.code, format.extension()),
            })
        })
        .collect()
}

/// The answer to a failure, in `web`'s shipped words.
pub fn error_page(web: &Web, error: WebError) -> Response {
    let config = web.config.borrow().clone();
    let layout = Layout::site(&config, &web.templates, "en");
    let (status, heading, text) = match &error {
        WebError::NotFound => (StatusCode::NOT_FOUND, "not_found_title", "not_found_text"),
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
    match layout.message(status, message) {
        Ok(page) => page.into_response(),
        Err(_) => (status, "error\n").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `Layout::label` takes a label without template syntax as written
    /// instead of rendering it: for every such web label in the language of
    /// every list, that is what rendering gives.
    #[test]
    fn a_plain_label_taken_as_written_reads_as_rendered() {
        let config = crate::config::parse(
            crate::config::EMBEDDED_LISTS_TOML,
            crate::config::EMBEDDED_NAME,
            std::path::Path::new("."),
        )
        .unwrap();
        let templates = Templates::shipped();
        let mut plain = 0;
        for list in &config.lists {
            let layout = Layout::for_list(&config, &templates, list);
            for (key, source) in templates.labels_of("web", &layout.lang) {
                if source.contains(['{', '}']) {
                    continue;
                }
                let rendered = templates
                    .render_str(&source, layout.context(json!({})))
                    .unwrap();
                assert_eq!(
                    layout.label(&key, &json!({})).unwrap(),
                    rendered,
                    "{key} in {}",
                    layout.lang
                );
                plain += 1;
            }
        }
        assert!(plain > 100, "only {plain} plain labels looked at");
    }
}
