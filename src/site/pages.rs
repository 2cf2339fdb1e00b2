//! Each page of the archive from what it shows (pure): the same posts,
//! configuration and templates always give the same bytes.
//!
//! What the pages show of a post is what the feeds show: its title and
//! text made safe ([`crate::feeds::text`], [`crate::feeds::html`]), the
//! author's name and never the address.

use std::cell::{OnceCell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use chrono::{DateTime, Datelike, TimeZone, Utc};
use minijinja::{context, Value as TemplateValue};
use serde::Serialize;
use serde_json::{json, Value};

use super::layout::{direction, Alternate, Layout};
use super::{paths, Listed, Month};
use crate::config::{Config, List};
use crate::feeds::{self, html, text};
use crate::post::StoredPost;
use crate::store::archive;
use crate::templates::Templates;

/// A post as a line of a page.
#[derive(Debug, Serialize)]
struct Entry {
    title: String,
    url: String,
    list_code: String,
    list_name: String,
    lang: String,
    dir: &'static str,
    date: String,
    author: String,
    /// The first few lines, on the pages of first lines.
    lines: String,
}

/// The most lines of posts [`Pages`] keeps for its next pages.
const ENTRIES_KEPT: usize = 20_000;

/// Results on one page of a search.
pub const SEARCH_PAGE: usize = 20;

/// A search as the reader asked it.
#[derive(Debug, Clone, Default)]
pub struct Search {
    pub query: String,
    /// A list code.
    pub lang: Option<String>,
    pub year: Option<i32>,
    /// From 1.
    pub page: usize,
}

/// What every page renderer needs, and what its pages share, made once
/// for all the pages it renders.
pub struct Pages<'a> {
    pub config: &'a Config,
    pub templates: &'a Templates,
    /// The layouts of the pages made so far, by list (`None`: the pages
    /// of all lists).
    layouts: RefCell<HashMap<Option<String>, Rc<Layout<'a>>>>,
    /// The links to the lists and to the site's pages.
    links: OnceCell<(TemplateValue, TemplateValue)>,
    /// The lines of the posts shown so far, by post id and whether with
    /// their first lines: the newest posts are on several pages.
    entries: RefCell<HashMap<(i64, bool), TemplateValue>>,
}

impl<'a> Pages<'a> {
    /// The pages of the site of `config`, written with `templates`.
    pub fn new(config: &'a Config, templates: &'a Templates) -> Self {
        Pages {
            config,
            templates,
            layouts: RefCell::default(),
            links: OnceCell::new(),
            entries: RefCell::default(),
        }
    }

    fn date(&self, post: &StoredPost) -> String {
        format_date(self.config, feeds::entry_date(post))
    }

    /// A post as a line of a page, titled `title`, with `lines` (empty on
    /// the pages of titles).
    fn entry(&self, post: &StoredPost, title: String, lines: String) -> Entry {
        let key = post.key.as_deref().unwrap_or_default();
        let list = post
            .list_code
            .as_deref()
            .and_then(|code| self.config.list(code));
        let lang = post
            .lang
            .clone()
            .or_else(|| list.map(|l| l.lang.clone()))
            .unwrap_or_default();
        Entry {
            title,
            url: feeds::permalink(self.config, key),
            list_code: post.list_code.clone().unwrap_or_default(),
            list_name: list.map(|l| l.name.clone()).unwrap_or_default(),
            dir: direction(&lang),
            lang,
            date: self.date(post),
            author: text::author_name(&text::undo_double_encoding(&post.author_name)),
            lines,
        }
    }

    fn entries(&self, posts: &[Listed], with_lines: bool) -> TemplateValue {
        let mut made = self.entries.borrow_mut();
        // Bounded: a full build shows each month's posts once.
        if made.len() > ENTRIES_KEPT {
            made.clear();
        }
        posts
            .iter()
            .map(|listed| {
                made.entry((listed.post.id, with_lines))
                    .or_insert_with(|| {
                        let lines = if with_lines {
                            listed.first_lines.lines.clone()
                        } else {
                            String::new()
                        };
                        let title = listed.first_lines.title.clone();
                        TemplateValue::from_serialize(self.entry(&listed.post, title, lines))
                    })
                    .clone()
            })
            .collect()
    }

    /// The links every page offers to the lists.
    fn lists(&self) -> TemplateValue {
        self.common_links().0.clone()
    }

    /// The site-wide links of every page ([`paths::site_links`]).
    fn site_links(&self) -> TemplateValue {
        self.common_links().1.clone()
    }

    fn common_links(&self) -> &(TemplateValue, TemplateValue) {
        self.links.get_or_init(|| {
            let lists: Vec<Value> = self
                .config
                .lists
                .iter()
                .map(|list| {
                    json!({
                        "code": list.code,
                        "name": list.name,
                        "lang": list.lang,
                        "url": paths::list_url(self.config, list),
                        "firstlines_url": paths::list_firstlines_url(self.config, list),
                    })
                })
                .collect();
            (
                TemplateValue::from_serialize(lists),
                TemplateValue::from_serialize(paths::site_links(self.config)),
            )
        })
    }

    /// The layout of the pages about `list`, in its language, or of the
    /// pages of all lists.
    fn layout(&self, list: Option<&'a List>) -> Rc<Layout<'a>> {
        let code = list.map(|list| list.code.clone());
        let mut layouts = self.layouts.borrow_mut();
        layouts
            .entry(code)
            .or_insert_with(|| {
                Rc::new(match list {
                    Some(list) => Layout::for_list(self.config, self.templates, list),
                    // The home and the pages of all languages are in
                    // English, the language A-Infos's front page speaks to
                    // every reader; each list's pages are in its own.
                    None => Layout::site(self.config, self.templates, "en"),
                })
            })
            .clone()
    }

    fn site_layout(&self) -> Rc<Layout<'a>> {
        self.layout(None)
    }

    /// The name of a month (1 to 12) in the site's pages.
    pub fn month_name(&self, month: u32) -> anyhow::Result<String> {
        self.site_layout()
            .label(&format!("month_{month}"), &json!({}))
    }

    fn label(&self, layout: &Layout<'_>, key: &str, context: Value) -> anyhow::Result<String> {
        layout.label(key, &context)
    }

    /// The home page: the last 40 posts in all languages, and the way to
    /// every other page.
    pub fn home(&self, latest: &[Listed], years: &[i32]) -> anyhow::Result<String> {
        let layout = self.site_layout();
        let title = self.label(&layout, "home_title", json!({}))?;
        let years: Vec<Value> = years
            .iter()
            .map(|year| json!({"year": year, "url": paths::year_url(self.config, *year)}))
            .collect();
        layout.page_html(
            "home.html",
            &title,
            &[],
            context! {
                entries => self.entries(latest, false),
                lists => self.lists(),
                years => TemplateValue::from_serialize(years),
                links => self.site_links(),
            },
        )
    }

    /// A page of post titles: the last 100 of a list, or the last two weeks
    /// of all.
    pub fn titles(
        &self,
        list: Option<&'a List>,
        heading: &str,
        posts: &[Listed],
    ) -> anyhow::Result<String> {
        let layout = self.layout(list);
        let heading = self.label(&layout, heading, json!({"count": posts.len()}))?;
        layout.page_html(
            "titles.html",
            &heading,
            &[],
            context! {
                heading => heading,
                entries => self.entries(posts, false),
                lists => self.lists(),
                links => self.site_links(),
            },
        )
    }

    /// A page of the first few lines of posts: the last 10 of a list, the
    /// last 24 hours, the past 30 days, a month.
    pub fn first_lines(
        &self,
        list: Option<&'a List>,
        heading: &str,
        heading_context: Value,
        posts: &[Listed],
    ) -> anyhow::Result<String> {
        let layout = self.layout(list);
        let heading = self.label(&layout, heading, heading_context)?;
        layout.page_html(
            "firstlines.html",
            &heading,
            &[],
            context! {
                heading => heading,
                entries => self.entries(posts, true),
                lists => self.lists(),
                links => self.site_links(),
            },
        )
    }

    /// A year: its months, each with how many posts came and a link.
    pub fn year(&self, year: i32, months: &[Month]) -> anyhow::Result<String> {
        let layout = self.site_layout();
        let heading = self.label(&layout, "year_heading", json!({"year": year}))?;
        let months: Vec<Value> = months
            .iter()
            .map(|month| {
                json!({
                    "name": self.month_name(month.month).unwrap_or_default(),
                    "count": month.count,
                    "url": paths::month_url(self.config, year, month.month),
                })
            })
            .collect();
        layout.page_html(
            "year.html",
            &heading,
            &[],
            context! {
                heading => heading,
                months => TemplateValue::from_serialize(months),
                links => self.site_links(),
            },
        )
    }

    /// A post's own page, at its permalink, with its other versions.
    pub fn post(&self, post: &StoredPost, versions: &[&StoredPost]) -> anyhow::Result<String> {
        let list = post
            .list_code
            .as_deref()
            .and_then(|code| self.config.list(code));
        let layout = self.layout(list);
        let key = post.key.clone().unwrap_or_default();
        let body = text::undo_double_encoding(&post.body);
        let subject = text::undo_double_encoding(&post.title);
        let entry = self.entry(post, text::title(&subject, &body, &key), String::new());
        let alternates: Vec<Alternate> = versions
            .iter()
            .map(|version| Alternate {
                lang: version.lang.clone().unwrap_or_default(),
                url: feeds::permalink(self.config, version.key.as_deref().unwrap_or_default()),
            })
            .collect();
        let translations: Vec<Value> = versions
            .iter()
            .map(|version| {
                let name = version
                    .list_code
                    .as_deref()
                    .and_then(|code| self.config.list(code))
                    .map_or_else(String::new, |l| l.name.clone());
                let lang = version.lang.clone().unwrap_or_default();
                json!({
                    "name": name,
                    "dir": direction(&lang),
                    "lang": lang,
                    "url": feeds::permalink(self.config, version.key.as_deref().unwrap_or_default()),
                })
            })
            .collect();
        let attachments: Vec<Value> = post
            .attachments
            .iter()
            .map(|attachment| {
                json!({
                    "name": attachment.filename.as_deref().map(|name| text::xml_safe(name).into_owned()),
                    "type": attachment.content_type,
                    "size": human_size(attachment.size),
                })
            })
            .collect();
        let title = entry.title.clone();
        layout.page_html(
            "post.html",
            &title,
            &alternates,
            context! {
                post => TemplateValue::from_serialize(entry),
                body_html => html::body_html(&body),
                translations => TemplateValue::from_serialize(translations),
                announced => TemplateValue::from_serialize(&post.translations),
                machine_translation => post.machine_translation,
                attachments => TemplateValue::from_serialize(attachments),
                raw_url => paths::raw_url(self.config, &key),
                links => self.site_links(),
                lists => self.lists(),
            },
        )
    }

    /// A page of search results (`found` holds one more than a page when
    /// there is a next one).
    pub fn search(
        &self,
        search: &Search,
        found: &archive::Found,
        years: &[i32],
    ) -> anyhow::Result<String> {
        let layout = self.site_layout();
        let title = self.label(&layout, "search_title", json!({}))?;
        let results = &found.results;
        let newest_only = match found.newest_only {
            true => {
                Some(self.label(&layout, "search_newest", json!({"count": archive::RANKED}))?)
            }
            false => None,
        };
        let shown = &results[..results.len().min(SEARCH_PAGE)];
        let link = |page: usize| {
            let mut url = url::Url::parse(&paths::url_of(self.config, paths::SEARCH))
                .expect("base_url is a URL");
            url.query_pairs_mut().append_pair("q", &search.query);
            if let Some(lang) = &search.lang {
                url.query_pairs_mut().append_pair("lang", lang);
            }
            if let Some(year) = search.year {
                url.query_pairs_mut().append_pair("year", &year.to_string());
            }
            if page > 1 {
                url.query_pairs_mut().append_pair("page", &page.to_string());
            }
            url.to_string()
        };
        let languages: Vec<Value> = self
            .config
            .lists
            .iter()
            .map(|list| json!({"value": list.code, "name": list.name, "lang": list.lang}))
            .collect();
        layout.page_html(
            "search.html",
            &title,
            &[],
            context! {
                query => search.query,
                searched => !search.query.trim().is_empty(),
                lang => search.lang,
                year => search.year,
                languages => TemplateValue::from_serialize(languages),
                years => years,
                entries => self.entries(shown, true),
                page => search.page,
                previous => (search.page > 1).then(|| link(search.page - 1)),
                next => (results.len() > SEARCH_PAGE).then(|| link(search.page + 1)),
                newest_only => newest_only,
            },
        )
    }

    /// The list of every feed, per list and for all.
    pub fn syndication(&self) -> anyhow::Result<String> {
        let layout = self.site_layout();
        let heading = self.label(&layout, "syndication_heading", json!({}))?;
        let feeds_of = |name: &str| -> Vec<Value> {
            feeds::Format::ALL
                .iter()
                .map(|format| {
                    json!({
                        "format": format.name(),
                        "type": format.media_type(),
                        "url": format!("{}feeds/{name}.{}", self.config.site.base_url, format.extension()),
                    })
                })
                .collect()
        };
        // The newsgroups, when the daemon serves them: at the site's host
        // and the listener's port (none for port 0, a port only the
        // running daemon knows).
        let prefix = &self.config.site.newsgroups_prefix;
        let news_of = |code: &str| -> Option<Value> {
            let listener = self.config.listen.nntp.filter(|at| at.port() != 0)?;
            let host = self.config.site.base_url.host_str()?;
            let port = match listener.port() {
                119 => String::new(),
                port => format!(":{port}"),
            };
            let name = format!("{prefix}.{code}");
            Some(json!({"url": format!("news://{host}{port}/{name}"), "name": name}))
        };
        let mut scopes = vec![json!({
            "name": self.config.site.name,
            "feeds": feeds_of(feeds::ALL),
            "newsgroup": news_of("all"),
        })];
        for list in &self.config.lists {
            scopes.push(json!({
                "name": list.name,
                "lang": list.lang,
                "feeds": feeds_of(&list.code),
                "newsgroup": news_of(&list.code),
            }));
        }
        layout.page_html(
            "syndication.html",
            &heading,
            &[],
            context! {
                heading => heading,
                scopes => TemplateValue::from_serialize(scopes),
                links => self.site_links(),
            },
        )
    }
}

/// A time as pages show it: date and time in the site's timezone, with the
/// zone's name.
pub fn format_date(config: &Config, time: DateTime<Utc>) -> String {
    time.with_timezone(&config.site.timezone)
        .format("%Y-%m-%d %H:%M %Z")
        .to_string()
}

/// The first instant of `year`-`month` in the site's timezone, Unix seconds.
pub fn month_start(config: &Config, year: i32, month: u32) -> i64 {
    let tz = config.site.timezone;
    let (year, month) = if month > 12 {
        (year + 1, 1)
    } else {
        (year, month)
    };
    tz.with_ymd_and_hms(year, month, 1, 0, 0, 0)
        .earliest()
        .map_or(0, |time| time.timestamp())
}

/// The year, in the site's timezone, of `time` (Unix seconds).
pub fn year_of(config: &Config, time: i64) -> i32 {
    DateTime::from_timestamp(time, 0)
        .unwrap_or_default()
        .with_timezone(&config.site.timezone)
        .year()
}

fn human_size(bytes: usize) -> String {
    match bytes {
        0..=1023 => format!("{bytes} B"),
        1024..=1_048_575 => format!("{:.0} KB", bytes as f64 / 1024.0),
        _ => format!("{:.1} MB", bytes as f64 / 1_048_576.0),
    }
}
