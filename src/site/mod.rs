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

/// A month of a year's page: how many posts came in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Month {
    /// 1 to 12.
    pub month: u32,
    pub count: u64,
}

#[cfg(test)]
mod tests;
