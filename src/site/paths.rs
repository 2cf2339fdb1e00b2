//! Where each page of the archive lives: its public URL under `base_url`
//! and its file under the site directory. One function a page, so links
//! and files cannot drift apart.
//!
//! A directory's page is its `index.html`; a post's page is `KEY.html`,
//! served at `posts/KEY` (the permalink the feeds and digests give), its
//! raw message `KEY.eml` beside it.

use std::path::PathBuf;

use serde_json::{json, Value};

use crate::config::{Config, List};

/// The file of the page at `url_path` (relative to the site's root, no
/// leading slash): what the daemon serves and the static build writes.
/// None for a path that could leave the site directory or names a hidden
/// file.
pub fn file_of(url_path: &str) -> Option<PathBuf> {
    let mut file = PathBuf::new();
    let trimmed = url_path.trim_start_matches('/');
    for part in trimmed.split('/').filter(|part| !part.is_empty()) {
        if part.starts_with('.') || part.contains('\\') {
            return None;
        }
        file.push(part);
    }
    if trimmed.is_empty() || trimmed.ends_with('/') {
        file.push("index.html");
    } else if file.extension().is_none() {
        file.set_extension("html");
    }
    Some(file)
}

fn url(config: &Config, path: &str) -> String {
    format!("{}{path}", config.site.base_url)
}

/// The home page.
pub const HOME: &str = "";
/// The last two weeks' posts of all lists.
pub const RECENT: &str = "recent/";
/// The first lines of every post of the last 24 hours.
pub const LAST_DAY: &str = "last-24-hours/";
/// The first lines of every post of the past 30 days.
pub const LAST_30_DAYS: &str = "last-30-days/";
/// Every feed.
pub const SYNDICATION: &str = "syndication/";
/// Full-text search (the daemon's alone).
pub const SEARCH: &str = "search";

/// A list's page: its last 100 posts.
pub fn list(list: &List) -> String {
    format!("lists/{}/", list.code)
}

/// The first lines of a list's last 10 posts.
pub fn list_first_lines(list: &List) -> String {
    format!("lists/{}/first-lines/", list.code)
}

/// A year's page: its months.
pub fn year(year: i32) -> String {
    format!("years/{year}/")
}

/// The first lines of every post of a month.
pub fn month(year: i32, month: u32) -> String {
    format!("years/{year}/{month:02}/")
}

/// A post's page (the permalink).
pub fn post(key: &str) -> String {
    format!("posts/{key}")
}

/// A post's raw message, addresses obfuscated.
pub fn raw(key: &str) -> String {
    format!("posts/{key}.eml")
}

pub fn url_of(config: &Config, path: &str) -> String {
    url(config, path)
}

pub fn list_url(config: &Config, list_: &List) -> String {
    url(config, &list(list_))
}

pub fn list_firstlines_url(config: &Config, list_: &List) -> String {
    url(config, &list_first_lines(list_))
}

pub fn year_url(config: &Config, year_: i32) -> String {
    url(config, &year(year_))
}

pub fn month_url(config: &Config, year_: i32, month_: u32) -> String {
    url(config, &month(year_, month_))
}

pub fn raw_url(config: &Config, key: &str) -> String {
    url(config, &raw(key))
}

/// The site-wide links every page's navigation shows.
pub fn site_links(config: &Config) -> Value {
    json!({
        "home": url(config, HOME),
        "recent": url(config, RECENT),
        "last_day": url(config, LAST_DAY),
        "last_30_days": url(config, LAST_30_DAYS),
        "syndication": url(config, SYNDICATION),
        "search": url(config, SEARCH),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_page_path_maps_to_one_file_inside_the_site() {
        assert_eq!(file_of(""), Some(PathBuf::from("index.html")));
        assert_eq!(file_of("/"), Some(PathBuf::from("index.html")));
        assert_eq!(
            file_of("lists/en/"),
            Some(PathBuf::from("lists/en/index.html"))
        );
        assert_eq!(
            file_of("posts/0123abc"),
            Some(PathBuf::from("posts/0123abc.html"))
        );
        assert_eq!(
            file_of("posts/0123abc.eml"),
            Some(PathBuf::from("posts/0123abc.eml"))
        );
        assert_eq!(file_of("posts/../../etc/passwd"), None);
        assert_eq!(file_of("posts/.fingerprint"), None);
        assert_eq!(file_of("a\\..\\b"), None);
    }
}
