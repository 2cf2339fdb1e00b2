//! Feeds: the newest published posts of each list, and of all lists
//! together, as RSS 2.0 ([`rss`]), Atom 1.0 (RFC 4287, [`atom`]), RSS 1.0 /
//! RDF ([`rdf`]) and JSON Feed 1.1 ([`json`]), written to
//! `feeds_dir/CODE.{rss,atom,rdf,json}` and `feeds_dir/all.{rss,atom,rdf,json}`.
//!
//! # Addresses and ids
//! These are promises to readers and to the web side, which serves them:
//! - a post's permalink is `{base_url}posts/{key}`, the page the archive
//!   serves for it (`key` is the post's stable 20-hex key);
//! - a list's archive page, the feeds' alternate link, is
//!   `{base_url}lists/{code}/`, and the home page `{base_url}` for `all`;
//! - a feed is served at `{base_url}feeds/{file}` (its self link), from
//!   `feeds_dir`, whose dot files (`.fingerprints`, `.lock`, temporary
//!   files) are tidings' own and not to be served;
//! - an entry's id (Atom id, RSS guid, RDF `rdf:about`, JSON Feed id) is the
//!   tag URI (RFC 4151) `tag:{domain},2026:posts/{key}`, and a feed's is
//!   `tag:{domain},2026:feeds/{name}`. It depends on neither base_url nor
//!   anything a post's edit can change, and a key is never given to two
//!   posts, so ids are stable and never reused. 2026 is the year tidings
//!   began minting them; it never changes.
//!
//! # Building and writing
//! [`build_feed`] turns posts into a [`Feed`] and [`Format::render`] a feed
//! into bytes; both are pure, so the same posts and configuration always
//! give the same bytes. [`regenerate`] writes what changed: each feed
//! records a fingerprint (the store's change counter for its scope, see
//! `store::feeds::versions`, and a digest of the configuration it shows) in
//! `feeds_dir/.fingerprints`; a feed whose fingerprint is unchanged is not
//! even rebuilt, and a rebuilt file whose bytes are unchanged is not
//! rewritten. Files are replaced atomically ([`crate::files`]). Regenerations
//! are serialised by a lock on `feeds_dir/.lock`; after ingest,
//! [`regenerate_after_ingest`] leaves the work to a regeneration already
//! under way, so a burst of posts leads to one regeneration, not one per post.

pub mod atom;
pub mod fingerprint;
pub mod html;
pub mod json;
pub mod rdf;
pub mod rss;
pub mod text;
mod xml;

use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::{DateTime, TimeZone, Utc};

use crate::config::{Config, List};
use crate::files::{self, LockFile};
use crate::post::StoredPost;
use crate::store::feeds::{versions, ALL_SCOPE};
use crate::store::{posts, Connection};
use crate::templates::Templates;
use fingerprint::Fingerprints;

/// The name of the feeds of all lists together: `all.rss`, `all.atom`...
pub const ALL: &str = "all";

/// What the feeds name as their generator.
pub const GENERATOR: &str = "tidings";

/// The version of [`GENERATOR`].
pub const GENERATOR_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The date in the tag URIs of ids: the year tidings began minting them.
const TAG_DATE: &str = "2026";

/// The `updated` date of a feed without entries: fixed, so an empty feed is
/// not rewritten on every run (2026-01-01T00:00:00Z).
const EMPTY_FEED_UPDATED: i64 = 1_767_225_600;

/// The lock file in `feeds_dir` that lets one regeneration at a time
/// write it.
const LOCK_FILE: &str = ".lock";

/// Which posts a feed shows.
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    /// The posts of every list.
    All,
    /// The posts of one list.
    List(&'a List),
}

impl Scope<'_> {
    /// Every scope of a configuration: each list, then all.
    pub fn every(config: &Config) -> Vec<Scope<'_>> {
        let mut scopes: Vec<Scope<'_>> = config.lists.iter().map(Scope::List).collect();
        scopes.push(Scope::All);
        scopes
    }

    /// The file name of the feeds without extension: the list code, or `all`.
    pub fn name(&self) -> &str {
        match self {
            Scope::All => ALL,
            Scope::List(list) => &list.code,
        }
    }

    fn list_code(&self) -> Option<&str> {
        match self {
            Scope::All => None,
            Scope::List(list) => Some(&list.code),
        }
    }

    fn store_scope(&self) -> &str {
        self.list_code().unwrap_or(ALL_SCOPE)
    }

    /// How many posts the feed shows.
    pub fn entries(&self, config: &Config) -> usize {
        match self {
            Scope::All => config.feeds.all_entries,
            Scope::List(list) => list.feed_entries,
        }
    }
}

/// A feed, whatever its format.
#[derive(Debug, Clone, PartialEq)]
pub struct Feed {
    /// The file name without extension: a list code or `all`.
    pub name: String,
    /// Stable id (tag URI) of the feed.
    pub id: String,
    pub title: String,
    pub description: String,
    /// BCP 47 language of the whole feed; `None` for feeds of several
    /// languages, whose entries carry their own.
    pub lang: Option<String>,
    /// The page this feed follows: the list's archive, or the home page.
    pub home_url: String,
    /// `{base_url}feeds/{name}`, to which each format adds its extension.
    pub self_url_stem: String,
    /// The site's base_url.
    pub site_url: String,
    /// Who publishes the feed: the service's name.
    pub publisher: String,
    /// The date of the newest entry.
    pub updated: DateTime<Utc>,
    /// Newest first, by arrival.
    pub entries: Vec<Entry>,
}

impl Feed {
    /// The address of this feed in `format`.
    pub fn self_url(&self, format: Format) -> String {
        format!("{}.{}", self.self_url_stem, format.extension())
    }
}

/// One post in a feed. All text is already free of what XML cannot carry.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Stable id (tag URI).
    pub id: String,
    /// The permalink.
    pub link: String,
    pub title: String,
    /// BCP 47 language of the post, when it is not the feed's.
    pub lang: Option<String>,
    /// The contributor's name ([`text::author_name`]); never an address.
    pub author: Option<String>,
    /// Published: the post's Date, or when it was received if it has none
    /// or claims a later time ([`entry_date`]).
    pub date: DateTime<Utc>,
    /// Updated: a real time, the same as `date` (a post is never edited).
    /// Posts sharing a second (an import stamps every post without a Date
    /// with the same one) keep their order by the feed's order, newest
    /// first and ties by arrival, never by a made-up fraction.
    pub updated: DateTime<Utc>,
    /// The first few lines, plain text; empty when the text has nothing
    /// printable, and then left out.
    pub summary: String,
    /// The text as HTML: whole, or when longer than `[feeds] entry_chars`,
    /// cut at a paragraph and ended with a link to the whole post.
    pub content_html: String,
    /// The post in other languages (Atom links them with hreflang).
    pub versions: Vec<Version>,
}

/// A version of a post's story in another language ([`crate::site::story`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    /// BCP 47.
    pub lang: String,
    /// Its permalink.
    pub url: String,
}

/// A feed format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// RSS 2.0.
    Rss,
    /// Atom 1.0 (RFC 4287).
    Atom,
    /// RSS 1.0 (RDF).
    Rdf,
    /// JSON Feed 1.1.
    Json,
}

impl Format {
    /// Every format, in the order files are written.
    pub const ALL: [Format; 4] = [Format::Rss, Format::Atom, Format::Rdf, Format::Json];

    /// The format's name as readers know it.
    pub fn name(self) -> &'static str {
        match self {
            Format::Rss => "RSS 2.0",
            Format::Atom => "Atom",
            Format::Rdf => "RSS 1.0 (RDF)",
            Format::Json => "JSON Feed",
        }
    }

    /// The file extension, which is also how the web side picks the type.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Rss => "rss",
            Format::Atom => "atom",
            Format::Rdf => "rdf",
            Format::Json => "json",
        }
    }

    /// The media type to serve the file with.
    pub fn media_type(self) -> &'static str {
        match self {
            Format::Rss => "application/rss+xml",
            Format::Atom => "application/atom+xml",
            Format::Rdf => "application/rdf+xml",
            Format::Json => "application/feed+json",
        }
    }

    /// The feed as a document in this format.
    pub fn render(self, feed: &Feed) -> anyhow::Result<Vec<u8>> {
        match self {
            Format::Rss => rss::render_rss(feed),
            Format::Atom => atom::render_atom(feed),
            Format::Rdf => rdf::render_rdf(feed),
            Format::Json => json::render_json(feed),
        }
    }
}

/// The permalink of a post: the page the archive serves for it.
pub fn permalink(config: &Config, key: &str) -> String {
    format!("{}posts/{key}", config.site.base_url)
}

/// The stable id of a post in every feed.
pub fn entry_id(config: &Config, key: &str) -> String {
    format!("tag:{},{TAG_DATE}:posts/{key}", config.site.domain)
}

/// The date a feed gives a post: its Date header, else the time it was
/// received, and never later than that (a Date in the future is a wrong
/// clock, not news from tomorrow).
pub fn entry_date(post: &crate::post::Post) -> DateTime<Utc> {
    let seconds = post.date.unwrap_or(post.received_at).min(post.received_at);
    Utc.timestamp_opt(seconds, 0)
        .single()
        .unwrap_or(DateTime::UNIX_EPOCH)
}

/// The feed of `scope` showing `posts` (newest first, published), each
/// with the versions `versions_of` finds of it, and a post cut for
/// `[feeds] entry_chars` ended by a link reading `read_more` of its
/// language.
pub fn build_feed(
    config: &Config,
    scope: Scope<'_>,
    posts: &[StoredPost],
    versions_of: &dyn Fn(&StoredPost) -> Vec<Version>,
    read_more: &dyn Fn(&str) -> String,
) -> Feed {
    let site = &config.site;
    let (title, description, lang, home_url) = match scope {
        Scope::All => (
            site.name.clone(),
            // Each list's name is in its own language, so this reads right
            // to every reader of a feed of all languages.
            config
                .lists
                .iter()
                .map(|list| list.name.as_str())
                .collect::<Vec<_>>()
                .join(" · "),
            None,
            site.base_url.to_string(),
        ),
        Scope::List(list) => (
            list.title.clone(),
            list.description.clone(),
            (list.lang != "mul").then(|| list.lang.clone()),
            format!("{}lists/{}/", site.base_url, list.code),
        ),
    };
    let entries: Vec<Entry> = posts
        .iter()
        .map(|post| Entry {
            versions: versions_of(post),
            ..build_entry(config, post, scope, lang.as_deref(), read_more)
        })
        .collect();
    let updated = entries
        .iter()
        .map(|entry| entry.date)
        .max()
        .unwrap_or_else(|| {
            DateTime::from_timestamp(EMPTY_FEED_UPDATED, 0).expect("a valid constant")
        });
    Feed {
        name: scope.name().to_string(),
        id: format!("tag:{},{TAG_DATE}:feeds/{}", site.domain, scope.name()),
        title: text::xml_safe(&title).into_owned(),
        description: text::xml_safe(&description).into_owned(),
        lang,
        home_url,
        self_url_stem: format!("{}feeds/{}", site.base_url, scope.name()),
        site_url: site.base_url.to_string(),
        publisher: text::xml_safe(&site.name).into_owned(),
        updated,
        entries,
    }
}

fn build_entry(
    config: &Config,
    post: &StoredPost,
    scope: Scope<'_>,
    feed_lang: Option<&str>,
    read_more: &dyn Fn(&str) -> String,
) -> Entry {
    // A published post always has a key; the id keeps to the same scheme
    // if one ever did not.
    let key = post
        .key
        .clone()
        .unwrap_or_else(|| format!("id-{}", post.id));
    let post_lang = post.lang.clone().or_else(|| match scope {
        Scope::List(list) => Some(list.lang.clone()),
        Scope::All => None,
    });
    let lang = post_lang
        .clone()
        .filter(|lang| Some(lang.as_str()) != feed_lang);
    let body = text::undo_double_encoding(&post.body);
    let subject = text::undo_double_encoding(&post.title);
    let author = text::author_name(&text::undo_double_encoding(&post.author_name));
    let link = permalink(config, &key);
    let content_html = match crate::text::cut_at_paragraph(&body, config.feeds.entry_chars) {
        None => html::body_html(&body),
        Some(head) => {
            let label = read_more(post_lang.as_deref().unwrap_or("en"));
            format!(
                "{}<p><a href=\"{}\">{}</a></p>\n",
                html::body_html(head),
                html::escape(&link),
                html::escape(&label)
            )
        }
    };
    Entry {
        id: entry_id(config, &key),
        link,
        title: text::title(&subject, &body, &key),
        lang,
        author: (!author.is_empty()).then_some(author),
        date: entry_date(post),
        updated: entry_date(post),
        summary: text::summarize(&text::xml_safe(&body)),
        content_html,
        versions: Vec::new(),
    }
}

/// The versions of `post` in other languages, from the store. A feed shows
/// the versions known when it was written: a translation that comes later
/// appears in this post's entry when its feed is next written (its page
/// shows it at once).
pub fn versions_in_store(config: &Config, db: &Connection, post: &StoredPost) -> Vec<Version> {
    let Some(head) = crate::lang::story_head(&post.title) else {
        return Vec::new();
    };
    let window = crate::site::story::WINDOW;
    let from = post.received_at.saturating_sub(window);
    let to = post.received_at.saturating_add(window);
    // A failed read only leaves the links out; the feed is still right.
    let candidates = crate::store::archive::with_head(db, &head, from, to).unwrap_or_default();
    crate::site::story::versions(post, &candidates)
        .into_iter()
        .filter_map(|version| {
            Some(Version {
                lang: version.lang.clone()?,
                url: permalink(config, version.key.as_deref()?),
            })
        })
        .collect()
}

/// How much [`regenerate`] does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Rebuild every feed, and write those whose bytes changed.
    Everything,
    /// Rebuild only the feeds whose fingerprint changed (or whose files are
    /// missing).
    Changed,
}

/// What a regeneration did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Files written, in order.
    pub written: Vec<PathBuf>,
    /// Files left as they were.
    pub unchanged: usize,
}

impl Report {
    fn merge(&mut self, other: Report) {
        self.written.extend(other.written);
        self.unchanged += other.unchanged;
    }
}

/// Writes the feeds of every list and of all lists into `feeds_dir`, after
/// waiting for any regeneration under way.
pub fn regenerate(config: &Config, db: &Connection, mode: Mode) -> anyhow::Result<Report> {
    let dir = prepare_dir(config)?;
    let lock_path = dir.join(LOCK_FILE);
    let _lock = LockFile::acquire(&lock_path)
        .with_context(|| format!("locking {}", lock_path.display()))?;
    write_feeds(config, db, &dir, mode)
}

/// Regenerates the feeds that changed after posts were stored, unless a
/// regeneration is under way: that one re-reads the store before it ends,
/// so it will show these posts too. A burst of posts thus leads to one
/// regeneration at a time, and nothing is missed.
pub fn regenerate_after_ingest(config: &Config, db: &Connection) -> anyhow::Result<Report> {
    let dir = prepare_dir(config)?;
    let lock_path = dir.join(LOCK_FILE);
    let mut report = Report::default();
    loop {
        let Some(lock) = LockFile::try_acquire(&lock_path)
            .with_context(|| format!("locking {}", lock_path.display()))?
        else {
            return Ok(report);
        };
        let before = versions(db).context("reading feed versions")?;
        report.merge(write_feeds(config, db, &dir, Mode::Changed)?);
        drop(lock);
        // Posts stored while we held the lock were left to us by their
        // writers: look once more after letting go.
        if versions(db).context("reading feed versions")? == before {
            return Ok(report);
        }
    }
}

fn prepare_dir(config: &Config) -> anyhow::Result<PathBuf> {
    if config.list(ALL).is_some() {
        anyhow::bail!(
            "a list has the code `{ALL}`, which names the feeds of all lists: give it another code in {}",
            config.source
        );
    }
    let dir = config.site.feeds_dir.clone();
    files::create_dirs(&dir, config.site.dir_mode())
        .with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// The templates whose digest labels name the link to a cut post's page:
/// the operator's, else (their error logged) the shipped ones, so a broken
/// template does not stop the feeds.
fn load_templates(config: &Config) -> Templates {
    Templates::load(&config.site.templates_dir).unwrap_or_else(|error| {
        tracing::warn!(
            "loading the templates for the feeds: {error:#}; the shipped labels are used"
        );
        Templates::shipped()
    })
}

fn write_feeds(config: &Config, db: &Connection, dir: &Path, mode: Mode) -> anyhow::Result<Report> {
    // Versions are read before the posts: a post stored in between is then
    // shown under an older fingerprint, and the next run builds again,
    // rather than the other way round, when it would be missed.
    let versions = versions(db).context("reading feed versions")?;
    let digest = fingerprint::config_digest(config);
    let mut fingerprints = Fingerprints::load(dir);
    let mut report = Report::default();
    // Loaded when a feed has a cut entry to label, at most once a run.
    let templates = std::cell::OnceCell::new();
    for scope in Scope::every(config) {
        let version = versions.get(scope.store_scope()).copied().unwrap_or(0);
        let fingerprint = format!("{version}-{digest}");
        let paths: Vec<PathBuf> = Format::ALL
            .iter()
            .map(|format| dir.join(format!("{}.{}", scope.name(), format.extension())))
            .collect();
        if mode == Mode::Changed
            && fingerprints.get(scope.name()) == Some(fingerprint.as_str())
            && paths.iter().all(|path| path.exists())
        {
            report.unchanged += paths.len();
            continue;
        }
        // One character more than an entry shows tells a cut text.
        let chars = config.feeds.entry_chars + 1;
        let posts = posts::latest_published(db, scope.list_code(), scope.entries(config), chars)
            .with_context(|| format!("reading the posts of the {} feeds", scope.name()))?;
        let feed = build_feed(
            config,
            scope,
            &posts,
            &|post| versions_in_store(config, db, post),
            &|lang| {
                let templates = templates.get_or_init(|| load_templates(config));
                templates.label("digest", &templates.language(lang), "read_more")
            },
        );
        for (format, path) in Format::ALL.iter().zip(paths) {
            let bytes = format.render(&feed)?;
            if files::replace_if_changed(&path, &bytes, config.site.file_mode)
                .with_context(|| format!("writing {}", path.display()))?
            {
                report.written.push(path);
            } else {
                report.unchanged += 1;
            }
        }
        fingerprints.set(scope.name(), fingerprint);
    }
    let saved = fingerprints
        .save(dir, config.site.file_mode)
        .with_context(|| format!("writing the fingerprints in {}", dir.display()))?;
    if saved || !report.written.is_empty() {
        files::sync_dir(dir).with_context(|| format!("syncing {}", dir.display()))?;
    }
    Ok(report)
}
