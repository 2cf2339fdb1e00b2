//! The layout every page of the site shares (`templates/web/layout.html`),
//! static archive pages and the daemon's dynamic ones alike: the site, the
//! page's title, language and writing direction, the labels of its
//! language, the list it is about, its feeds and its other languages.

use std::cell::OnceCell;

use serde::Serialize;
use serde_json::{json, Value};

use crate::config::{Config, List};
use crate::templates::Templates;

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
    /// What every page of this layout shows alike, made when first asked
    /// for: a build renders thousands of pages with one layout, and making
    /// this (the labels above all) for each page was most of its work.
    shared: OnceCell<Shared>,
}

/// The part of a page's context that depends on its layout alone, as
/// template values (which clone by reference).
struct Shared {
    /// The site, the labels, the navigation and the list.
    context: minijinja::Value,
    /// The feeds the page's head links to.
    feeds: minijinja::Value,
}

impl<'a> Layout<'a> {
    /// A page about `list`, in its language.
    pub fn for_list(config: &'a Config, templates: &'a Templates, list: &'a List) -> Self {
        Layout {
            config,
            templates,
            lang: templates.language(&list.lang),
            list: Some(list),
            shared: OnceCell::new(),
        }
    }

    /// A page about no list in particular, in `lang`.
    pub fn site(config: &'a Config, templates: &'a Templates, lang: &str) -> Self {
        Layout {
            config,
            templates,
            lang: templates.language(lang),
            list: None,
            shared: OnceCell::new(),
        }
    }

    /// A web label of the page's language, rendered with `context`.
    pub fn label(&self, key: &str, context: &Value) -> anyhow::Result<String> {
        let source = self.templates.label("web", &self.lang, key);
        // Most labels are plain text: minijinja would give them back as they
        // are, but for one trailing newline. The others name the site, the
        // list or the caller's values, never the page's labels or its
        // navigation, which cost more to build than the label to render
        // (building them for each label was most of the work of a
        // one-click unsubscribe).
        if !source.contains(['{', '}']) {
            return Ok(match source.strip_suffix('\n') {
                Some(stripped) => stripped.to_string(),
                None => source,
            });
        }
        self.templates
            .render_str(&source, self.label_context(context.clone()))
    }

    /// What a label is rendered with: the site, the list and `extra`.
    fn label_context(&self, extra: Value) -> Value {
        let mut context = json!({
            "site": {"name": self.config.site.name, "url": self.config.site.base_url.as_str()},
        });
        if let Some(list) = self.list {
            context["list"] = list_context(self.config, list);
        }
        if let (Value::Object(context), Value::Object(extra)) = (&mut context, extra) {
            context.extend(extra);
        }
        context
    }

    /// The context of every page of this layout but the page's own values.
    fn shared_context(&self) -> Value {
        let mut context = json!({
            "site": {"name": self.config.site.name, "url": self.config.site.base_url.as_str()},
            "labels": self.templates.labels_of("web", &self.lang),
            "nav": {
                "links": super::paths::site_links(self.config),
                "lists": self.config.lists.iter().map(|list| json!({
                    "code": list.code,
                    "name": list.name,
                    "lang": list.lang,
                    "dir": direction(&list.lang),
                    "url": super::paths::list_url(self.config, list),
                })).collect::<Vec<_>>(),
            },
        });
        if let Some(list) = self.list {
            context["list"] = list_context(self.config, list);
        }
        context
    }

    fn shared(&self) -> &Shared {
        self.shared.get_or_init(|| Shared {
            context: minijinja::Value::from_serialize(self.shared_context()),
            feeds: minijinja::Value::from_serialize(
                self.list
                    .map(|list| feeds(self.config, list))
                    .unwrap_or_else(|| all_feeds(self.config)),
            ),
        })
    }

    /// The whole context of a page of this layout with `extra`: what its
    /// template sees but `page`.
    #[cfg(test)]
    fn context(&self, extra: Value) -> minijinja::Value {
        minijinja::value::merge_maps([
            minijinja::Value::from_serialize(extra),
            self.shared().context.clone(),
        ])
    }

    /// Renders `templates/web/FILE` with `context`, titled `title`, with
    /// `alternates` (the page in other languages: hreflang links).
    pub fn html(
        &self,
        file: &str,
        title: &str,
        alternates: &[Alternate],
        context: Value,
    ) -> anyhow::Result<String> {
        self.page_html(
            file,
            title,
            alternates,
            minijinja::Value::from_serialize(context),
        )
    }

    /// [`Layout::html`] with a context of template values: a page's values
    /// over the layout's ([`Shared`]), `page` over both.
    pub fn page_html(
        &self,
        file: &str,
        title: &str,
        alternates: &[Alternate],
        context: minijinja::Value,
    ) -> anyhow::Result<String> {
        let shared = self.shared();
        let lang = self
            .list
            .map_or(self.lang.as_str(), |list| list.lang.as_str());
        let page = minijinja::context! {
            title => title,
            dir => direction(lang),
            lang => lang,
            ui_lang => self.lang,
            feeds => shared.feeds.clone(),
            alternates => alternates,
        };
        let context = minijinja::value::merge_maps([
            minijinja::context! { page => page },
            context,
            shared.context.clone(),
        ]);
        self.templates.render("web", &self.lang, file, context)
    }

    /// A page of a heading, paragraphs, an optional button (a form that
    /// POSTs) and links.
    pub fn message_html(&self, message: Message) -> anyhow::Result<String> {
        let title = message.heading.clone();
        self.html("message.html", &title, &[], serde_json::to_value(message)?)
    }
}

/// The same page in another language, for `<link rel="alternate" hreflang>`.
#[derive(Debug, Clone, Serialize)]
pub struct Alternate {
    /// BCP 47.
    pub lang: String,
    pub url: String,
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
        "url": super::paths::list_url(config, list),
        "first_lines_url": super::paths::list_firstlines_url(config, list),
        "dir": direction(&list.lang),
    })
}

/// The feeds of all lists together, for discovery links in a page's head.
fn all_feeds(config: &Config) -> Vec<Value> {
    crate::feeds::Format::ALL
        .iter()
        .map(|format| {
            json!({
                "type": format.media_type(),
                "title": format!("{} ({})", config.site.name, format.extension()),
                "url": format!("{}feeds/{}.{}", config.site.base_url, crate::feeds::ALL, format.extension()),
            })
        })
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    /// `Layout::label` takes a label without template syntax as written and
    /// renders the others with the site, the list and the caller's values
    /// only: for every web label in the language of every list, that reads
    /// as rendering it with the page's whole context does.
    #[test]
    fn a_label_reads_as_rendered_with_the_whole_page_context() {
        let config = crate::config::parse(
            crate::config::EMBEDDED_LISTS_TOML,
            crate::config::EMBEDDED_NAME,
            std::path::Path::new("."),
        )
        .unwrap();
        let templates = Templates::shipped();
        let values = json!({"address": "ana@example.net", "year": 2026, "month": "May", "mode": "mime", "count": 3});
        let (mut plain, mut templated) = (0, 0);
        for list in &config.lists {
            let layout = Layout::for_list(&config, &templates, list);
            for (key, source) in templates.labels_of("web", &layout.lang) {
                let rendered = templates
                    .render_str(&source, layout.context(values.clone()))
                    .unwrap();
                assert_eq!(
                    layout.label(&key, &values).unwrap(),
                    rendered,
                    "{key} in {}",
                    layout.lang
                );
                if source.contains(['{', '}']) {
                    templated += 1;
                } else {
                    plain += 1;
                }
            }
        }
        assert!(
            plain > 100 && templated > 50,
            "only {plain} plain and {templated} templated labels looked at"
        );
    }
}
