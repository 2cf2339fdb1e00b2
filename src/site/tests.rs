//! Building the site from a store: every page at first, then only what a
//! change touches, byte for byte the same when nothing changed.

use std::path::Path;
use std::time::SystemTime;

use super::*;
use crate::config::Config;
use crate::ingest::{Envelope, Filer};
use crate::store::archive::{changes, changes_done};
use crate::store::{self, Connection};
use crate::templates::Templates;

const NOW: i64 = 1_796_000_000; // 2026-11-29

struct Fixture {
    dir: tempfile::TempDir,
    config: Config,
    templates: Templates,
    db: Connection,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config =
            crate::config::parse(crate::config::EMBEDDED_LISTS_TOML, "lists.toml", dir.path())
                .unwrap();
        let db = store::open(&dir.path().join("tidings.sqlite3")).unwrap();
        Fixture {
            dir,
            config,
            templates: Templates::shipped(),
            db,
        }
    }

    fn out(&self) -> std::path::PathBuf {
        self.dir.path().join("site")
    }

    /// Files a post to `list` that arrived `ago` seconds before NOW.
    fn post(&mut self, list: &str, subject: &str, ago: i64) -> i64 {
        let raw = format!(
            "From: Ana <ana@example.net>\r\nTo: a-infos-{list}@lists.example.org\r\n\
             Subject: {subject}\r\nMessage-ID: <{subject}@test>\r\n\r\nThe text of {subject}.\r\n"
        );
        let envelope = Envelope {
            list_code: Some(list.to_string()),
            recipients: Vec::new(),
        };
        let post = Filer::new(&self.config).file_message(raw.as_bytes(), &envelope, NOW - ago);
        store::transaction(&mut self.db, |tx| crate::ingest::commit(tx, &[post])).unwrap();
        self.db
            .query_row("SELECT max(id) FROM posts", [], |row| row.get(0))
            .unwrap()
    }

    fn build(&self, scope: Scope<'_>) -> Report {
        build(
            &self.config,
            &self.templates,
            &self.db,
            &self.out(),
            scope,
            NOW,
        )
        .unwrap()
    }

    /// Builds what the store's change list says, and takes it out.
    fn build_changes(&mut self) -> Report {
        let pending = changes(&self.db, usize::MAX).unwrap();
        let report = self.build(Scope::Changed(&pending));
        store::transaction(&mut self.db, |tx| changes_done(tx, &pending)).unwrap();
        report
    }
}

fn modified(path: &Path) -> SystemTime {
    std::fs::metadata(path).unwrap().modified().unwrap()
}

#[test]
fn a_new_post_touches_its_pages_alone_and_an_unchanged_site_stays_byte_for_byte() {
    let mut site = Fixture::new();
    site.post("en", "(en) First English", 3 * 86_400);
    site.post("fr", "(fr) Premier", 2 * 86_400);
    let first = site.build_changes();
    assert!(first.full, "a site never built is built whole");
    let out = site.out();
    for page in [
        "index.html",
        "recent/index.html",
        "last-24-hours/index.html",
        "last-30-days/index.html",
        "syndication/index.html",
        "lists/en/index.html",
        "lists/en/first-lines/index.html",
        "lists/fr/index.html",
        "years/2026/index.html",
        "years/2026/11/index.html",
    ] {
        assert!(out.join(page).is_file(), "{page} missing");
    }
    let snapshot: Vec<(std::path::PathBuf, Vec<u8>)> = walk(&out)
        .into_iter()
        .map(|path| {
            let bytes = std::fs::read(&path).unwrap();
            (path, bytes)
        })
        .collect();

    // Nothing changed: nothing written, every byte the same.
    let again = site.build_changes();
    assert_eq!((again.full, again.written, again.removed), (false, 0, 0));
    let full_again = site.build(Scope::Full);
    assert_eq!(full_again.written, 0, "a full build of the same store");
    for (path, bytes) in &snapshot {
        assert_eq!(&std::fs::read(path).unwrap(), bytes, "{}", path.display());
    }

    // One new English post: its page, the English list's, the month's
    // and the pages of all lists; not the French list's.
    let french = out.join("lists/fr/index.html");
    let french_before = modified(&french);
    let id = site.post("en", "(en) Second English", 3_600);
    let report = site.build_changes();
    assert!(!report.full);
    assert!(report.pages < 20, "{report:?}");
    let key: String = site
        .db
        .query_row("SELECT key FROM posts WHERE id = ?1", [id], |row| {
            row.get(0)
        })
        .unwrap();
    let page = std::fs::read_to_string(out.join(format!("posts/{key}.html"))).unwrap();
    assert!(page.contains("Second English"));
    for listing in [
        "index.html",
        "lists/en/index.html",
        "last-24-hours/index.html",
    ] {
        let text = std::fs::read_to_string(out.join(listing)).unwrap();
        assert!(text.contains("Second English"), "{listing}");
    }
    assert_eq!(
        modified(&french),
        french_before,
        "the French list's page was left alone"
    );

    // No longer published: its page goes, the listings forget it.
    site.db
        .execute("UPDATE posts SET status = 'held' WHERE id = ?1", [id])
        .unwrap();
    let report = site.build_changes();
    assert!(report.removed >= 2, "{report:?}");
    assert!(!out.join(format!("posts/{key}.html")).exists());
    assert!(!out.join(format!("posts/{key}.eml")).exists());
    let home = std::fs::read_to_string(out.join("index.html")).unwrap();
    assert!(!home.contains("Second English"));
}

#[test]
fn a_change_made_during_a_build_is_not_taken_out_with_the_one_built() {
    let mut site = Fixture::new();
    let id = site.post("en", "(en) Changing", 60);
    let read = changes(&site.db, usize::MAX).unwrap();
    // The post changes again after the builder read the list...
    site.db
        .execute(
            "UPDATE posts SET title = 'Changed again' WHERE id = ?1",
            [id],
        )
        .unwrap();
    // ...so taking out what it read leaves the new change in.
    store::transaction(&mut site.db, |tx| changes_done(tx, &read)).unwrap();
    let left = changes(&site.db, usize::MAX).unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].post_id, id);
    assert!(left[0].seq > read[0].seq);
}

#[test]
fn templates_or_configuration_changed_make_every_page_again() {
    let mut site = Fixture::new();
    site.post("en", "(en) Any", 60);
    site.build_changes();
    let renamed =
        crate::config::EMBEDDED_LISTS_TOML.replace("name = \"A-Infos\"", "name = \"B-Infos\"");
    site.config = crate::config::parse(&renamed, "lists.toml", site.dir.path()).unwrap();
    let report = site.build_changes();
    assert!(report.full);
    let home = std::fs::read_to_string(site.out().join("lists/fr/index.html")).unwrap();
    assert!(home.contains("B-Infos"));
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files.sort();
    files
}

#[test]
fn the_syndication_page_offers_each_list_s_newsgroup_when_the_daemon_serves_them() {
    let mut site = Fixture::new();
    site.post("en", "(en) First English", 3_600);
    site.build(Scope::Full);
    let page = site.out().join("syndication/index.html");
    let without = std::fs::read_to_string(&page).unwrap();
    assert!(!without.contains("news://"), "no NNTP listener, no link");

    site.config.listen.nntp = Some("127.0.0.1:1119".parse().unwrap());
    site.build(Scope::Full);
    // minijinja writes a slash in an attribute as &#x2f;.
    let with = std::fs::read_to_string(&page)
        .unwrap()
        .replace("&#x2f;", "/");
    for group in ["all", "en", "gr", "zh"] {
        let link = format!("<a href=\"news://127.0.0.1:1119/a-infos.{group}\">a-infos.{group}</a>");
        assert!(with.contains(&link), "{link} missing");
    }

    site.config.listen.nntp = Some("127.0.0.1:0".parse().unwrap());
    site.build(Scope::Full);
    let any_port = std::fs::read_to_string(&page).unwrap();
    assert!(
        !any_port.contains("news://"),
        "port 0 is no address to give"
    );
}

/// A search whose matches were more than those ranked says so, in the
/// page's language, and one within them says nothing of it.
#[test]
fn a_search_page_says_when_only_the_newest_matches_were_ranked() {
    let fixture = Fixture::new();
    let pages = pages::Pages::new(&fixture.config, &fixture.templates);
    let search = pages::Search {
        query: "strike".into(),
        lang: None,
        year: None,
        page: 1,
    };
    let note = format!("best of the newest {}", store::archive::RANKED);
    let mut found = store::archive::Found::default();
    let page = pages.search(&search, &found, &[2026]).unwrap();
    assert!(!page.contains(&note), "{page}");
    found.newest_only = true;
    let page = pages.search(&search, &found, &[2026]).unwrap();
    assert!(page.contains(&note), "{page}");
}
