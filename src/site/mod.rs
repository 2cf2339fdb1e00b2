//! The archive on the web: A-Infos's pages (the last posts of all lists
//! and of each, the first lines of a day, 30 days, a month, each year's
//! months), a page per post with its versions in other languages, and the
//! page of every feed; written as static files ([`build`]) that the daemon
//! serves and any web server can.

mod build;
pub mod layout;
pub mod pages;
pub mod paths;
pub mod raw;
pub mod story;

pub use build::{build, fingerprint, is_stale, years, Report, Scope};

/// What the pages of titles and first lines show of a post besides its
/// list, date and author, from its subject and text alone: kept in the
/// store with the post ([`crate::store::posts::insert`]), so those pages
/// read no text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirstLines {
    /// The title as pages show it ([`crate::feeds::text::title`]).
    pub title: String,
    /// The first few lines ([`crate::feeds::text::summarize`]).
    pub lines: String,
}

impl FirstLines {
    /// The title and first lines of a post of `subject` (its title without
    /// the tags) and `body`, with public key `key`.
    pub fn of(subject: &str, body: &str, key: &str) -> FirstLines {
        use crate::feeds::text;
        let body = text::undo_double_encoding(body);
        let subject = text::undo_double_encoding(subject);
        FirstLines {
            title: text::title(&subject, &body, key),
            lines: text::summarize(&text::xml_safe(&body)),
        }
    }
}

/// A post as the pages of titles and first lines read it: without its
/// text and attachments, with its [`FirstLines`].
#[derive(Debug, Clone)]
pub struct Listed {
    pub post: crate::post::StoredPost,
    pub first_lines: FirstLines,
}

/// A month of a year's page: how many posts came in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Month {
    /// 1 to 12.
    pub month: u32,
    pub count: u64,
}

#[cfg(test)]
mod tests;
