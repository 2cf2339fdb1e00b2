//! The `[feeds]` table: how many entries the generated feeds carry, and
//! how much of each post.

use serde::Deserialize;
use toml::Spanned;

use super::errors::Errors;

/// The `[feeds]` table.
#[derive(Debug, Clone)]
pub struct Feeds {
    /// Entries in the feeds of all lists together (default 40, like the
    /// A-Infos home page).
    pub all_entries: usize,
    /// Entries in each list's feeds unless the list sets its own (default 100).
    pub list_entries: usize,
    /// Characters of a post's text an entry carries (`entry_chars`, default
    /// 20,000); a longer text is cut at a paragraph and the entry links to
    /// the whole post. Bounds the size of feeds and the memory to build
    /// them, whatever is posted.
    pub entry_chars: usize,
}

/// Entries carry this much text unless `entry_chars` says.
pub const DEFAULT_ENTRY_CHARS: usize = 20_000;

impl Default for Feeds {
    fn default() -> Self {
        Feeds {
            all_entries: 40,
            list_entries: 100,
            entry_chars: DEFAULT_ENTRY_CHARS,
        }
    }
}

/// The numbers of feed entries a file may ask for.
pub(super) const ENTRIES: std::ops::RangeInclusive<i64> = 1..=10_000;

/// What to say about a number of feed entries out of [`ENTRIES`].
pub(super) const ENTRIES_HELP: &str =
    "A-Infos shows 40 posts on its home page and 100 per language";

/// `[feeds]` as written.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFeeds {
    all_entries: Option<Spanned<i64>>,
    list_entries: Option<Spanned<i64>>,
    entry_chars: Option<Spanned<i64>>,
}

impl RawFeeds {
    /// The checked table; a wrong value is recorded and its default kept.
    pub(super) fn check(self, errors: &mut Errors<'_>) -> Feeds {
        let default = Feeds::default();
        Feeds {
            all_entries: errors.bounded(
                self.all_entries,
                ENTRIES,
                default.all_entries,
                "all_entries",
                ENTRIES_HELP,
            ),
            list_entries: errors.bounded(
                self.list_entries,
                ENTRIES,
                default.list_entries,
                "list_entries",
                ENTRIES_HELP,
            ),
            entry_chars: errors.bounded(
                self.entry_chars,
                1_000..=1_000_000,
                default.entry_chars,
                "entry_chars",
                "give the characters of text a feed entry may carry, e.g. 20000; longer posts link to their page",
            ),
        }
    }
}
