//! A [`Feed`] as JSON Feed 1.1 (<https://jsonfeed.org/version/1.1>) (pure).
//! Titles and summaries are plain text by that specification, the full text
//! is `content_html`, and an item's `language` is given where it is not the
//! feed's.

use serde::Serialize;

use super::{Feed, Format};

/// The version URL every JSON Feed 1.1 document starts with.
pub const VERSION: &str = "https://jsonfeed.org/version/1.1";

#[derive(Serialize)]
struct Document<'a> {
    version: &'static str,
    title: &'a str,
    home_page_url: &'a str,
    feed_url: String,
    description: &'a str,
    authors: [Author<'a>; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    language: Option<&'a str>,
    items: Vec<Item<'a>>,
}

#[derive(Serialize)]
struct Author<'a> {
    name: &'a str,
}

#[derive(Serialize)]
struct Item<'a> {
    id: &'a str,
    url: &'a str,
    title: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    summary: &'a str,
    content_html: &'a str,
    date_published: String,
    date_modified: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    authors: Vec<Author<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    language: Option<&'a str>,
}

/// The feed as a JSON Feed document.
pub fn render_json(feed: &Feed) -> anyhow::Result<Vec<u8>> {
    let document = Document {
        version: VERSION,
        title: &feed.title,
        home_page_url: &feed.home_url,
        feed_url: feed.self_url(Format::Json),
        description: &feed.description,
        authors: [Author {
            name: &feed.publisher,
        }],
        language: feed.lang.as_deref(),
        items: feed
            .entries
            .iter()
            .map(|entry| {
                let rfc3339 = |date: chrono::DateTime<chrono::Utc>| {
                    date.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
                };
                Item {
                    id: &entry.id,
                    url: &entry.link,
                    title: &entry.title,
                    summary: &entry.summary,
                    content_html: &entry.content_html,
                    date_published: rfc3339(entry.date),
                    date_modified: rfc3339(entry.updated),
                    authors: entry.author.iter().map(|name| Author { name }).collect(),
                    language: entry.lang.as_deref(),
                }
            })
            .collect(),
    };
    let mut bytes = serde_json::to_vec_pretty(&document)?;
    bytes.push(b'\n');
    Ok(bytes)
}
