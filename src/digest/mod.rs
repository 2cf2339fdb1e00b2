//! Digests: a list's pending posts -> one rendered body per format, in the
//! list's language. Pure: the same posts, number, time, configuration and
//! templates always give the same bytes.
//!
//! Formats (one per subscriber's choice, see [`DigestMode`]):
//! - [`mime`]: RFC 2046 multipart/mixed with masthead, table of contents, a
//!   multipart/digest of message/rfc822 parts and a footer;
//! - [`plain`]: RFC 1153 plain text;
//! - [`html`]: multipart/alternative of the RFC 1153 text and an HTML page;
//! - [`summary`]: the table of contents with each post's first lines and
//!   permalink.
//!
//! Each body is a MIME entity (its Content-* fields, a blank line, the
//! body) shared by every recipient; [`crate::deliver`] adds the personal
//! header fields. [`numbering`] numbers digests, [`trigger`] says when one is
//! due; [`crate::templates`] holds the words.

pub mod combined;
pub mod headers;
pub mod html;
pub mod mime;
pub mod numbering;
pub mod original;
pub mod plain;
mod record;
pub mod summary;
pub mod trigger;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use data_encoding::HEXLOWER;
use memchr::memmem;
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use crate::config::{Config, List};
use crate::templates::{Labels, Templates};
use headers::ListAddresses;
use numbering::Number;

pub use record::{
    DigestBody, DigestMode, DigestRecord, IssuedDigest, NewDigest, Pending, PendingPost,
};

/// Characters of a post's opening shown in the HTML and summary digests.
const EXCERPT_CHARS: usize = 400;

/// Columns of the table of contents.
const TOC_WIDTH: usize = 76;

/// Paragraphs of a post's opening shown at most.
const EXCERPT_PARAGRAPHS: usize = 3;

/// Everything a digest is made from.
pub struct Composition<'a> {
    pub config: &'a Config,
    pub list: &'a List,
    pub templates: &'a Templates,
    pub number: &'a Number,
    /// When the digest is issued: its Date.
    pub issued_at: DateTime<Utc>,
    pub posts: &'a [PendingPost],
}

/// Renders every format of a digest.
pub fn compose_digest(composition: &Composition<'_>) -> anyhow::Result<Vec<DigestBody>> {
    let digest = Digest::new(composition)?;
    DigestMode::ALL
        .iter()
        .map(|&mode| render_body(&digest, mode))
        .collect()
}

/// `digest` rendered in `mode`.
pub fn render_body(digest: &Digest<'_>, mode: DigestMode) -> anyhow::Result<DigestBody> {
    let entity = match mode {
        DigestMode::Mime => mime::render_mime(digest),
        DigestMode::Plain => plain::render_plain_entity(digest),
        DigestMode::Html => html::render_html_entity(digest)?,
        DigestMode::Summary => summary::render_summary_entity(digest),
    };
    Ok(DigestBody {
        mode,
        subject: headers::encode_value("Subject", &digest.subject),
        entity,
    })
}

/// A digest ready to render: its words in the list's language and one
/// [`Entry`] per post.
pub struct Digest<'a> {
    pub config: &'a Config,
    pub list: &'a List,
    pub templates: &'a Templates,
    pub addresses: ListAddresses,
    /// Template language: the list's, or English.
    pub lang: String,
    pub labels: Labels,
    pub volume: u32,
    pub issue: u32,
    /// The subject, decoded.
    pub subject: String,
    /// The masthead text (how to post, subscribe, leave, reach the editors).
    pub masthead: String,
    /// The footer text.
    pub footer: String,
    /// The issue time in the site timezone.
    pub date: DateTime<Tz>,
    pub entries: Vec<Entry<'a>>,
    /// Seed of the MIME boundaries, the same for the same digest.
    pub boundary_seed: String,
    /// The line that ends the plain digest (RFC 1153).
    pub trailer: String,
}

/// Where a list's part of a digest across several lists begins
/// ([`combined`]): the list's name and its masthead lines.
#[derive(Debug, Clone, Serialize)]
pub struct Section {
    pub lang: String,
    /// `ltr` or `rtl`.
    pub dir: &'static str,
    /// The list's name, in its language.
    pub heading: String,
    /// Its description, how to post to it, how to leave it.
    pub lines: Vec<String>,
}

/// Another version of an entry's story in a digest across several lists,
/// shown at the entry instead of on its own.
#[derive(Debug, Clone, Serialize)]
pub struct Version {
    /// The version's list, by its name in its language.
    pub name: String,
    pub permalink: String,
}

/// One post as a digest shows it.
pub struct Entry<'a> {
    /// Its number in the digest, from 1.
    pub number: usize,
    /// The section it opens, in a digest across several lists.
    pub section: Option<Section>,
    /// Its story's other versions in this digest.
    pub also_in: Vec<Version>,
    pub pending: &'a PendingPost,
    /// Subject as the table of contents shows it.
    pub subject: String,
    /// Author name, else address.
    pub author: String,
    /// Date in the site timezone with its zone, `YYYY-MM-DD HH:MM ZONE`.
    pub date: String,
    /// The first paragraphs, at most [`EXCERPT_CHARS`] characters.
    pub excerpt: Vec<String>,
    pub permalink: String,
}

#[derive(Serialize)]
struct TextContext<'a> {
    subject: &'a str,
    volume: u32,
    issue: u32,
    date: String,
    posts: usize,
    list: ListContext<'a>,
    site: SiteContext<'a>,
    post_address: &'a str,
    request_address: &'a str,
    owner_address: &'a str,
    subscribe_url: &'a str,
    unsubscribe_url: &'a str,
    archive_url: &'a str,
}

#[derive(Serialize)]
struct ListContext<'a> {
    code: &'a str,
    name: &'a str,
    title: &'a str,
    description: &'a str,
    address: &'a str,
}

#[derive(Serialize)]
struct SiteContext<'a> {
    name: &'a str,
    base_url: &'a str,
}

impl<'a> Digest<'a> {
    /// Prepares the words and entries of a digest.
    pub fn new(composition: &Composition<'a>) -> anyhow::Result<Digest<'a>> {
        let Composition {
            config,
            list,
            templates,
            number,
            issued_at,
            posts,
        } = *composition;
        let timezone = config.site.timezone;
        let date = issued_at.with_timezone(&timezone);
        let lang = templates.language(&list.lang);
        let labels = templates.labels(&lang);
        let addresses = ListAddresses::new(config, list);
        let subject = templates.render_str(
            &labels.subject,
            minijinja::context! {
                title => &list.title,
                name => &list.name,
                volume => number.volume,
                issue => number.issue,
            },
        )?;
        let subject = headers::unfold(&subject);
        let context = TextContext {
            subject: &subject,
            volume: number.volume,
            issue: number.issue,
            date: date.format("%Y-%m-%d").to_string(),
            posts: posts.len(),
            list: ListContext {
                code: &list.code,
                name: &list.name,
                title: &list.title,
                description: &list.description,
                address: &list.address,
            },
            site: SiteContext {
                name: &config.site.name,
                base_url: config.site.base_url.as_str(),
            },
            post_address: &addresses.post,
            request_address: &addresses.request,
            owner_address: &addresses.owner,
            subscribe_url: &addresses.subscribe_url,
            unsubscribe_url: &addresses.unsubscribe_url,
            archive_url: &addresses.archive_url,
        };
        let masthead = tidy_text(&templates.render("digest", &lang, "masthead.txt", &context)?);
        let footer = tidy_text(&templates.render("digest", &lang, "footer.txt", &context)?);

        let entries = posts
            .iter()
            .enumerate()
            .map(|(index, pending)| Entry::new(config, index + 1, pending, &addresses.archive_url))
            .collect();

        let mut seed = Sha256::new();
        seed.update(list.code.as_bytes());
        seed.update(number.volume.to_be_bytes());
        seed.update(number.issue.to_be_bytes());
        for pending in posts {
            seed.update(pending.post.id.to_be_bytes());
        }
        let seed = seed.finalize();
        let boundary_seed = HEXLOWER.encode(&seed[..8]);

        Ok(Digest {
            config,
            list,
            templates,
            addresses,
            lang,
            labels,
            volume: number.volume,
            issue: number.issue,
            subject,
            masthead,
            footer,
            date,
            entries,
            boundary_seed,
            trailer: format!(
                "End of {} Digest V{} Issue #{}",
                list.title, number.volume, number.issue
            ),
        })
    }

    /// The numbered table of contents: one entry per post, subject then
    /// author in parentheses (Mailman's layout), wrapped at 76 columns,
    /// after the heading.
    pub fn table_of_contents(&self) -> String {
        let mut out = format!("{}:\n\n", self.labels.topics);
        if self.entries.is_empty() {
            out.push_str(&format!("   {}\n", self.labels.no_posts));
        }
        for entry in &self.entries {
            if let Some(section) = &entry.section {
                out.push_str(&section.text());
            }
            let line = format!("{} ({})", entry.subject, entry.author);
            for (index, part) in wrap(&line, TOC_WIDTH - 6).iter().enumerate() {
                if index == 0 {
                    out.push_str(&format!("{:>4}. {part}\n", entry.number));
                } else {
                    out.push_str(&format!("      {part}\n"));
                }
            }
            out.push_str(&self.also_in_text(entry));
        }
        out
    }

    /// The lines under an entry naming its story's other versions, with
    /// their links; empty when it has none. A link is never broken: when
    /// the line is too long, it goes on a line of its own.
    pub fn also_in_text(&self, entry: &Entry<'_>) -> String {
        let width = TOC_WIDTH - 6;
        let mut out = String::new();
        for version in &entry.also_in {
            let words = format!("{} {}:", self.labels.also_in, version.name);
            let url = &version.permalink;
            if words.chars().count() + 1 + url.chars().count() <= width {
                out.push_str(&format!("      {words} {url}\n"));
                continue;
            }
            for part in wrap(&words, width) {
                out.push_str(&format!("      {part}\n"));
            }
            out.push_str(&format!("      {url}\n"));
        }
        out
    }

    /// A MIME boundary for `part` that occurs in none of `contents`.
    pub fn boundary(&self, part: &str, contents: &[&[u8]]) -> String {
        let mut attempt = 0;
        loop {
            let boundary = if attempt == 0 {
                format!("=_tidings_{}_{}", part, self.boundary_seed)
            } else {
                format!("=_tidings_{}_{}_{attempt}", part, self.boundary_seed)
            };
            let marker = format!("--{boundary}");
            let finder = memmem::Finder::new(marker.as_bytes());
            let taken = contents
                .iter()
                .any(|content| finder.find(content).is_some());
            if !taken {
                return boundary;
            }
            attempt += 1;
        }
    }
}

impl<'a> Entry<'a> {
    /// `pending` as the `number`th post of a digest.
    fn new(
        config: &Config,
        number: usize,
        pending: &'a PendingPost,
        archive_url: &str,
    ) -> Entry<'a> {
        let post = &pending.post;
        let author = if post.author_name.trim().is_empty() {
            post.author_address.clone()
        } else {
            headers::unfold(&post.author_name)
        };
        // When it was published (its Date, never later than its arrival),
        // in the site's timezone, saying which, as the feeds and the
        // archive's pages show it.
        let date = crate::site::pages::format_date(config, crate::feeds::entry_date(post));
        Entry {
            number,
            section: None,
            also_in: Vec::new(),
            pending,
            subject: headers::unfold(&post.subject),
            author,
            date,
            excerpt: excerpt(&post.body),
            permalink: post
                .key
                .as_deref()
                .map(|key| crate::feeds::permalink(config, key))
                .unwrap_or_else(|| archive_url.to_string()),
        }
    }
}

/// Rendered template text: trailing spaces and blank lines at either end
/// removed, LF line ends, ending in one LF.
fn tidy_text(text: &str) -> String {
    let lines: Vec<&str> = text.lines().map(str::trim_end).collect();
    let start = lines
        .iter()
        .position(|l| !l.is_empty())
        .unwrap_or(lines.len());
    let end = lines
        .iter()
        .rposition(|l| !l.is_empty())
        .map_or(start, |i| i + 1);
    let mut out = lines[start..end].join("\n");
    out.push('\n');
    out
}

/// The first paragraphs of a post body, each unwrapped onto one line, at
/// most [`EXCERPT_PARAGRAPHS`] and [`EXCERPT_CHARS`] characters; a cut
/// paragraph ends at a word with "…".
pub fn excerpt(body: &str) -> Vec<String> {
    let paragraphs = crate::text::paragraphs(body)
        .into_iter()
        .map(|lines| crate::text::join_words(lines.into_iter().flat_map(str::split_whitespace)));
    let mut out = Vec::new();
    let mut left = EXCERPT_CHARS;
    for paragraph in paragraphs.take(EXCERPT_PARAGRAPHS) {
        let length = paragraph.chars().count();
        if length <= left {
            left -= length;
            out.push(paragraph);
            continue;
        }
        let cut: String = paragraph.chars().take(left).collect();
        // Cut at the last space when there is one in the second half
        // (scripts without spaces are cut at the character).
        let cut = match cut.rfind(' ') {
            Some(space) if space > cut.len() / 2 => cut[..space].to_string(),
            _ => cut,
        };
        out.push(format!("{}…", cut.trim_end()));
        break;
    }
    out
}

/// Lines of `text` wrapped at `width` columns ([`crate::text::wrap`]).
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    crate::text::wrap(text, width)
}

#[cfg(test)]
pub(crate) mod tests;
