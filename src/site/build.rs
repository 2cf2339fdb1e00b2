//! Writing the site: every page at once ([`Scope::Full`]) or what a set of
//! changed posts touches ([`Scope::Changed`]): their own pages and their
//! versions', their lists' pages, their months and years, and the pages of
//! all lists (home, recent, last 24 hours, last 30 days). Files are
//! replaced atomically and only when their bytes change, so an unchanged
//! site stays byte for byte (and mtime for mtime) what it was.
//!
//! What the pages were made with (configuration, templates, this version)
//! is fingerprinted in `.fingerprint`; a build for changes whose
//! fingerprint differs makes every page.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::Context;
use data_encoding::HEXLOWER;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::pages::{month_start, year_of, Pages};
use super::{paths, raw, story, Listed, Month};
use crate::config::{Config, List};
use crate::files;
use crate::post::{Status, StoredPost};
use crate::store::archive::{self, Change};
use crate::store::{posts, Connection};
use crate::templates::Templates;

const FINGERPRINT: &str = ".fingerprint";
const DAY: i64 = 86_400;
/// The most posts a page of first lines or titles shows, however busy the
/// period: a page stays a page.
const PAGE_CAP: usize = 5_000;
/// Posts read at a time in a full build.
const BATCH: usize = 1_000;
/// The most threads a full build makes post pages on.
const MAX_THREADS: usize = 4;

/// What to build.
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    /// Every page.
    Full,
    /// The pages these changed posts touch.
    Changed(&'a [Change]),
}

/// What a build did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    /// Whether every page was made.
    pub full: bool,
    /// Pages made.
    pub pages: usize,
    /// Files whose bytes changed.
    pub written: usize,
    /// Files taken away (posts no longer published).
    pub removed: usize,
}

/// A digest of what shows in the pages besides the posts.
pub fn fingerprint(config: &Config, templates: &Templates) -> String {
    let mut hasher = Sha256::new();
    for part in [
        crate::feeds::fingerprint::config_digest(config).as_str(),
        templates.digest("web"),
        config.site.timezone.name(),
        env!("CARGO_PKG_VERSION"),
    ] {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    HEXLOWER.encode(&hasher.finalize()[..12])
}

/// Whether the pages in `out` were made with another configuration,
/// other templates or another version (or never): then a build makes
/// every page.
pub fn is_stale(config: &Config, templates: &Templates, out: &Path) -> bool {
    std::fs::read_to_string(out.join(FINGERPRINT)).ok() != Some(fingerprint(config, templates))
}

/// Builds the site into `out` as of `now` (Unix seconds).
pub fn build(
    config: &Config,
    templates: &Templates,
    db: &Connection,
    out: &Path,
    scope: Scope<'_>,
    now: i64,
) -> anyhow::Result<Report> {
    files::create_dirs(out, config.site.dir_mode())
        .with_context(|| format!("creating {}", out.display()))?;
    let stale = is_stale(config, templates, out);
    let mut builder = Builder {
        config,
        pages: Pages::new(config, templates),
        db,
        heads: None,
        out,
        now,
        report: Report::default(),
    };
    match scope {
        Scope::Changed(changes) if !stale => builder.changed(changes)?,
        _ => builder.full()?,
    }
    if stale {
        let fingerprint_file = out.join(FINGERPRINT);
        files::replace_if_changed(
            &fingerprint_file,
            fingerprint(config, templates).as_bytes(),
            config.site.file_mode,
        )
        .with_context(|| format!("writing {}", fingerprint_file.display()))?;
    }
    Ok(builder.report)
}

/// Which list, year and month pages a build must make.
#[derive(Default)]
struct Touched {
    lists: BTreeSet<String>,
    months: BTreeSet<(i32, u32)>,
}

impl Touched {
    fn add(&mut self, config: &Config, post: &StoredPost) {
        if let Some(code) = &post.list_code {
            self.lists.insert(code.clone());
        }
        let published = crate::feeds::entry_date(post).timestamp();
        self.months.insert(month_of(config, published));
    }
}

struct Builder<'a> {
    config: &'a Config,
    pages: Pages<'a>,
    db: &'a Connection,
    /// In a full build, every story's candidates by head, read at once.
    heads: Option<&'a Heads>,
    out: &'a Path,
    now: i64,
    report: Report,
}

impl<'a> Builder<'a> {
    fn full(&mut self) -> anyhow::Result<()> {
        self.report.full = true;
        let keys = self.every_post_page()?;
        self.sweep_posts(&keys)?;
        let lists: Vec<String> = self.config.lists.iter().map(|l| l.code.clone()).collect();
        let mut months = BTreeSet::new();
        for year in self.years()? {
            for month in 1..=12 {
                months.insert((year, month));
            }
        }
        self.common(&Touched {
            lists: lists.into_iter().collect(),
            months,
        })
    }

    /// The pages of every published post, made on one thread per core
    /// (each with a connection of its own, taking the next batch of posts
    /// when it is done with one); the keys of the posts.
    fn every_post_page(&mut self) -> anyhow::Result<HashSet<String>> {
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(MAX_THREADS);
        let mut connections = Vec::new();
        for _ in 1..threads {
            match crate::store::open_another(self.db) {
                Some(connection) => connections.push(connection?),
                // An in-memory store: its connection alone sees it.
                None => break,
            }
        }
        // The batch last taken, by its last id; i64::MAX when a thread
        // failed, so the others stop.
        let cursor = Mutex::new(0);
        let heads = read_heads(self.db)?;
        let (config, pages, out, now) = (self.config, &self.pages, self.out, self.now);
        let work = |db: &Connection| -> anyhow::Result<(Report, HashSet<String>)> {
            let mut builder = Builder {
                config,
                pages: Pages::new(config, pages.templates),
                db,
                heads: Some(&heads),
                out,
                now,
                report: Report::default(),
            };
            let mut keys = HashSet::new();
            loop {
                let batch = {
                    let mut after = cursor.lock().unwrap_or_else(|e| e.into_inner());
                    if *after == i64::MAX {
                        break;
                    }
                    let batch = archive::published_after(db, *after, BATCH);
                    match batch.as_ref().map(|posts| posts.last()) {
                        Ok(Some(last)) => *after = last.id,
                        Ok(None) => break,
                        Err(_) => *after = i64::MAX,
                    }
                    batch?
                };
                // One read transaction a batch: its thousand raw messages
                // are read under one lock of the store, not one each.
                let snapshot = db.unchecked_transaction();
                for post in &batch {
                    if let Err(error) = builder.post_page(post) {
                        *cursor.lock().unwrap_or_else(|e| e.into_inner()) = i64::MAX;
                        return Err(error);
                    }
                    keys.extend(post.key.clone());
                }
                drop(snapshot);
            }
            Ok((builder.report, keys))
        };
        let results = std::thread::scope(|scope| {
            let others: Vec<_> = connections
                .into_iter()
                .map(|connection| {
                    let work = &work;
                    scope.spawn(move || work(&connection))
                })
                .collect();
            let mut results = vec![work(self.db)];
            for other in others {
                results.push(
                    other
                        .join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
                );
            }
            results
        });
        let mut keys = HashSet::new();
        for result in results {
            let (report, some) = result?;
            self.report.pages += report.pages;
            self.report.written += report.written;
            self.report.removed += report.removed;
            keys.extend(some);
        }
        Ok(keys)
    }

    fn changed(&mut self, changes: &[Change]) -> anyhow::Result<()> {
        let mut touched = Touched::default();
        let mut done = HashSet::new();
        for change in changes {
            let Some(post) = posts::get(self.db, change.post_id)? else {
                continue;
            };
            touched.add(self.config, &post);
            if post.status != Status::Published {
                if let Some(key) = &post.key {
                    self.remove(&paths::post(key))?;
                    self.remove(&paths::raw(key))?;
                }
                // Its versions no longer link to it.
                for version in self.candidates(&post)? {
                    if version.id != post.id && done.insert(version.id) {
                        self.version_page(version.id)?;
                    }
                }
                continue;
            }
            let candidates = self.candidates(&post)?;
            if done.insert(post.id) {
                self.post_page_with(&post, &candidates)?;
            }
            for version in story::versions(&post, &candidates) {
                if done.insert(version.id) {
                    self.version_page(version.id)?;
                }
            }
        }
        self.common(&touched)
    }

    /// The pages of all lists, and those of the touched lists and months.
    fn common(&mut self, touched: &Touched) -> anyhow::Result<()> {
        let now = self.now;
        let everything = i64::MAX;
        let years = self.years()?;
        let latest = archive::published_between(self.db, i64::MIN, everything, 40)?;
        let home = self.pages.home(&latest, &years)?;
        self.write(paths::HOME, home.as_bytes())?;

        // The pages of the last 24 hours, two weeks and 30 days (and the
        // month's, below) show the newest posts: they are read once.
        let window = Window::read(self.db, now - 30 * DAY)?;
        let recent = window.between(self.db, now - 14 * DAY, everything, PAGE_CAP)?;
        let page = self.pages.titles(None, "recent_heading", &recent)?;
        self.write(paths::RECENT, page.as_bytes())?;

        let day = window.between(self.db, now - DAY, everything, PAGE_CAP)?;
        let page = self
            .pages
            .first_lines(None, "last_day_heading", json!({}), &day)?;
        self.write(paths::LAST_DAY, page.as_bytes())?;

        let month = window.between(self.db, now - 30 * DAY, everything, PAGE_CAP)?;
        let page = self
            .pages
            .first_lines(None, "last_30_days_heading", json!({}), &month)?;
        self.write(paths::LAST_30_DAYS, page.as_bytes())?;

        let page = self.pages.syndication()?;
        self.write(paths::SYNDICATION, page.as_bytes())?;

        for code in &touched.lists {
            if let Some(list) = self.config.list(code) {
                self.list_pages(list)?;
            }
        }
        let touched_years: BTreeSet<i32> = touched.months.iter().map(|(year, _)| *year).collect();
        for year in touched_years {
            self.year_page(year)?;
        }
        for &(year, month) in &touched.months {
            self.month_page(&window, year, month)?;
        }
        Ok(())
    }

    fn list_pages(&mut self, list: &'a List) -> anyhow::Result<()> {
        let latest = archive::latest_of_list(self.db, &list.code, 100)?;
        let page = self.pages.titles(Some(list), "list_heading", &latest)?;
        self.write(&paths::list(list), page.as_bytes())?;
        let first = &latest[..latest.len().min(10)];
        let page =
            self.pages
                .first_lines(Some(list), "list_first_lines_heading", json!({}), first)?;
        self.write(&paths::list_first_lines(list), page.as_bytes())
    }

    fn years(&self) -> anyhow::Result<Vec<i32>> {
        years(self.config, self.db)
    }

    fn year_page(&mut self, year: i32) -> anyhow::Result<()> {
        let mut months = Vec::new();
        for month in 1..=12 {
            let from = month_start(self.config, year, month);
            let to = month_start(self.config, year, month + 1);
            let count = archive::count_between(self.db, from, to)?;
            if count > 0 {
                months.push(Month { month, count });
            }
        }
        if months.is_empty() {
            return self.remove(&paths::year(year));
        }
        let page = self.pages.year(year, &months)?;
        self.write(&paths::year(year), page.as_bytes())
    }

    fn month_page(&mut self, window: &Window, year: i32, month: u32) -> anyhow::Result<()> {
        let from = month_start(self.config, year, month);
        let to = month_start(self.config, year, month + 1);
        let posts = window.between(self.db, from, to, PAGE_CAP)?;
        if posts.is_empty() {
            return self.remove(&paths::month(year, month));
        }
        let name = self.pages.month_name(month)?;
        let page = self.pages.first_lines(
            None,
            "month_heading",
            json!({"year": year, "month": name}),
            &posts,
        )?;
        self.write(&paths::month(year, month), page.as_bytes())
    }

    /// The posts that may be versions of `post`'s story, without their
    /// text ([`archive::with_head`]).
    fn candidates(&self, post: &StoredPost) -> anyhow::Result<Vec<StoredPost>> {
        let Some(head) = crate::lang::story_head(&post.title) else {
            return Ok(Vec::new());
        };
        if let Some(heads) = self.heads {
            // All posts of the head: story::versions keeps those in the
            // window, as the query below would.
            return Ok(heads.get(&head).cloned().unwrap_or_default());
        }
        let from = post.received_at.saturating_sub(story::WINDOW);
        let to = post.received_at.saturating_add(story::WINDOW);
        Ok(archive::with_head(self.db, &head, from, to)?)
    }

    fn post_page(&mut self, post: &StoredPost) -> anyhow::Result<()> {
        if let Some(heads) = self.heads {
            let group = crate::lang::story_head(&post.title).and_then(|head| heads.get(&head));
            return self.post_page_with(post, group.map_or(&[], Vec::as_slice));
        }
        let candidates = self.candidates(post)?;
        self.post_page_with(post, &candidates)
    }

    /// The page of a version found among the candidates, which lack the
    /// text: the post is read whole.
    fn version_page(&mut self, id: i64) -> anyhow::Result<()> {
        match posts::get(self.db, id)? {
            Some(post) if post.status == Status::Published => self.post_page(&post),
            _ => Ok(()),
        }
    }

    fn post_page_with(
        &mut self,
        post: &StoredPost,
        candidates: &[StoredPost],
    ) -> anyhow::Result<()> {
        let Some(key) = post.key.as_deref() else {
            return Ok(());
        };
        let versions = story::versions(post, candidates);
        let page = self.pages.post(post, &versions)?;
        self.write(&paths::post(key), page.as_bytes())?;
        if let Some(bytes) = posts::raw(self.db, post.id)? {
            self.write(&paths::raw(key), &raw::obfuscate(&bytes))?;
        }
        Ok(())
    }

    fn file(&self, path: &str) -> anyhow::Result<PathBuf> {
        paths::file_of(path)
            .map(|file| self.out.join(file))
            .with_context(|| format!("{path:?} is not a page's path"))
    }

    fn write(&mut self, path: &str, bytes: &[u8]) -> anyhow::Result<()> {
        let file = self.file(path)?;
        if let Some(parent) = file.parent() {
            files::create_dirs(parent, self.config.site.dir_mode())
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        self.report.pages += 1;
        if files::replace_if_changed_unsynced(&file, bytes, self.config.site.file_mode)
            .with_context(|| format!("writing {}", file.display()))?
        {
            self.report.written += 1;
        }
        Ok(())
    }

    fn remove(&mut self, path: &str) -> anyhow::Result<()> {
        let file = self.file(path)?;
        match std::fs::remove_file(&file) {
            Ok(()) => {
                self.report.removed += 1;
                Ok(())
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(error) => Err(error).with_context(|| format!("removing {}", file.display())),
        }
    }

    /// Takes away the pages of posts that are no longer published.
    fn sweep_posts(&mut self, keys: &HashSet<String>) -> anyhow::Result<()> {
        let dir = self.out.join("posts");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Ok(());
        };
        for entry in entries {
            let entry = entry.with_context(|| format!("reading {}", dir.display()))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let stem = name
                .strip_suffix(".html")
                .or_else(|| name.strip_suffix(".eml"));
            if let Some(stem) = stem {
                if !keys.contains(stem) {
                    std::fs::remove_file(entry.path())
                        .with_context(|| format!("removing {}", entry.path().display()))?;
                    self.report.removed += 1;
                }
            }
        }
        Ok(())
    }
}

/// The newest published posts, as the pages of periods show them: those
/// published since `from`, newest first, at most [`PAGE_CAP`].
struct Window {
    from: i64,
    posts: Vec<Listed>,
}

impl Window {
    fn read(db: &Connection, from: i64) -> anyhow::Result<Window> {
        let posts = archive::published_between(db, from, i64::MAX, PAGE_CAP)?;
        Ok(Window { from, posts })
    }

    /// [`archive::published_between`], from the window when it holds every
    /// post of the period (the period starts inside it, and it was not cut
    /// at the cap), else from the store.
    fn between(
        &self,
        db: &Connection,
        from: i64,
        to: i64,
        limit: usize,
    ) -> anyhow::Result<Cow<'_, [Listed]>> {
        if from < self.from || self.posts.len() >= PAGE_CAP {
            return Ok(Cow::Owned(archive::published_between(db, from, to, limit)?));
        }
        // Newest first: the period is one run of the window.
        let published = |listed: &Listed| archive::published_at(&listed.post);
        let start = self.posts.partition_point(|listed| published(listed) >= to);
        let end = self
            .posts
            .partition_point(|listed| published(listed) >= from);
        let end = end.max(start).min(start.saturating_add(limit));
        Ok(Cow::Borrowed(&self.posts[start..end]))
    }
}

/// Every story's candidates by head ([`archive::heads`]), for a full
/// build.
type Heads = HashMap<String, Vec<StoredPost>>;

fn read_heads(db: &Connection) -> anyhow::Result<Heads> {
    let mut heads = Heads::new();
    for (head, post) in archive::heads(db)? {
        heads.entry(head).or_default().push(post);
    }
    Ok(heads)
}

/// The years that have published posts, newest first.
pub fn years(config: &Config, db: &Connection) -> anyhow::Result<Vec<i32>> {
    let Some((first, last)) = archive::span(db)? else {
        return Ok(Vec::new());
    };
    let mut years = Vec::new();
    for year in (year_of(config, first)..=year_of(config, last)).rev() {
        let from = month_start(config, year, 1);
        let to = month_start(config, year, 13);
        if archive::any_between(db, from, to)? {
            years.push(year);
        }
    }
    Ok(years)
}

/// The (year, month) of `time` in the site's timezone.
fn month_of(config: &Config, time: i64) -> (i32, u32) {
    use chrono::{DateTime, Datelike};
    let local = DateTime::from_timestamp(time, 0)
        .unwrap_or_default()
        .with_timezone(&config.site.timezone);
    (local.year(), local.month())
}
