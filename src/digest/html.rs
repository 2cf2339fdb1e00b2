//! The HTML digest: multipart/alternative (RFC 2046 5.1.4) of the RFC 1153
//! text and a text/html page rendered from `templates/digest/digest.html`
//! (table of contents with anchors, each post's first lines and a link to
//! its permalink; inline styles, no scripts, no remote images), so Gmail,
//! Outlook and K-9 show a readable page instead of a pile of attachments.
//!
//! Gmail clips a message whose HTML passes about 102 KB and hides what
//! follows, the footer with its unsubscribe link included, so the HTML part
//! keeps within the list's `digest_html_budget`: past it the last posts,
//! from the last up, show only their titles (linked to their pages), and
//! on a day too big even for that the last titles give way to a line
//! linking the archive ([`Shortening`], found by binary search over
//! rendered pages; the footer is always rendered and counted). The text
//! alternative is the RFC 1153 text while it is within the same budget and
//! the page is whole, else the summary of what the page shows.

use serde::Serialize;

use super::headers::text_entity;
use super::{plain, summary, Digest};

#[derive(Serialize)]
struct PageContext<'a> {
    lang: &'a str,
    subject: &'a str,
    date: String,
    labels: &'a crate::templates::Labels,
    posts: Vec<PostContext<'a>>,
    masthead: Vec<Vec<&'a str>>,
    footer: Vec<Vec<&'a str>>,
    /// Whether some posts show only their title (the notice is shown).
    shortened: bool,
    archive_url: &'a str,
    /// The line standing for the posts left to the archive, if any.
    more_posts: Option<String>,
}

#[derive(Serialize)]
struct PostContext<'a> {
    number: usize,
    subject: &'a str,
    author: &'a str,
    date: &'a str,
    excerpt: &'a [String],
    permalink: &'a str,
    /// Whether the post has its section (heading, excerpt, link) or only
    /// its title in the table of contents, linked to its page.
    whole: bool,
    /// The section it opens, in a digest across several lists.
    section: Option<&'a super::Section>,
    /// Its story's other versions in this digest.
    also_in: &'a [super::Version],
}

/// How much of a day's posts the HTML page shows: the posts from `whole`
/// on show only their titles, those from `listed` on are left to the
/// archive (`whole <= listed <= posts`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shortening {
    pub whole: usize,
    pub listed: usize,
}

impl Shortening {
    /// Every post whole.
    pub fn none(posts: usize) -> Shortening {
        Shortening {
            whole: posts,
            listed: posts,
        }
    }

    /// Step `step` of `0..=2 * posts`, each showing less than the one
    /// before: first the last posts lose their sections one by one, from
    /// the last up, then their titles.
    fn step(posts: usize, step: usize) -> Shortening {
        if step <= posts {
            Shortening {
                whole: posts - step,
                listed: posts,
            }
        } else {
            Shortening {
                whole: 0,
                listed: (2 * posts).saturating_sub(step),
            }
        }
    }

    /// Whether every post is shown whole.
    pub fn is_none(&self, posts: usize) -> bool {
        self.whole >= posts
    }
}

/// The HTML page of a digest as sent: within the list's
/// `digest_html_budget` once made a text/html part, and how it was
/// shortened to get there.
pub fn render_html(digest: &Digest<'_>) -> anyhow::Result<(String, Shortening)> {
    let posts = digest.entries.len();
    let budget = digest.list.digest_html_budget;
    let fits = |page: &str| text_entity("html", None, page).len() <= budget;
    let whole = render_page(digest, Shortening::none(posts))?;
    if fits(&whole) {
        return Ok((whole, Shortening::none(posts)));
    }
    // The size falls with each step, so the first step that fits is found
    // by bisection; the last step (a line for the archive, the masthead and
    // the footer) is taken even if it does not fit a budget that small.
    let (mut low, mut high) = (1, 2 * posts);
    let mut best = None;
    while low <= high {
        let middle = low + (high - low) / 2;
        let page = render_page(digest, Shortening::step(posts, middle))?;
        if fits(&page) {
            best = Some((page, Shortening::step(posts, middle)));
            high = middle - 1;
        } else {
            low = middle + 1;
        }
    }
    match best {
        Some(found) => Ok(found),
        None => {
            let last = Shortening::step(posts, 2 * posts);
            Ok((render_page(digest, last)?, last))
        }
    }
}

/// The HTML page of a digest showing what `shortening` says.
pub fn render_page(digest: &Digest<'_>, shortening: Shortening) -> anyhow::Result<String> {
    let left = digest.entries.len() - shortening.listed;
    let more_posts = if left > 0 {
        Some(digest.templates.render_str(
            &digest.labels.more_posts,
            minijinja::context! { count => left },
        )?)
    } else {
        None
    };
    let context = PageContext {
        lang: &digest.list.lang,
        subject: &digest.subject,
        date: digest.date.format("%Y-%m-%d").to_string(),
        labels: &digest.labels,
        posts: digest
            .entries
            .iter()
            .take(shortening.listed)
            .map(|entry| PostContext {
                number: entry.number,
                subject: &entry.subject,
                author: &entry.author,
                date: &entry.date,
                excerpt: &entry.excerpt,
                permalink: &entry.permalink,
                whole: entry.number <= shortening.whole,
                section: entry.section.as_ref(),
                also_in: &entry.also_in,
            })
            .collect(),
        masthead: paragraphs(&digest.masthead),
        footer: paragraphs(&digest.footer),
        shortened: !shortening.is_none(digest.entries.len()),
        archive_url: &digest.addresses.archive_url,
        more_posts,
    };
    let page = digest
        .templates
        .render("digest", &digest.lang, "digest.html", &context)?;
    Ok(page)
}

/// The multipart/alternative entity: the plain text first, the HTML last
/// (the richest alternative goes last). The text is the RFC 1153 digest
/// while that is within the HTML budget and the page whole; else the
/// summary of the posts as the page shows them, so the alternative never
/// doubles a big day's message.
pub fn render_html_entity(digest: &Digest<'_>) -> anyhow::Result<Vec<u8>> {
    let (page, shortening) = render_html(digest)?;
    let html = text_entity("html", None, &page);
    let full = text_entity("plain", None, &plain::render_plain(digest));
    let text = if shortening.is_none(digest.entries.len())
        && full.len() <= digest.list.digest_html_budget
    {
        full
    } else {
        text_entity(
            "plain",
            None,
            &summary::render_summary_shortened(digest, shortening)?,
        )
    };
    let boundary = digest.boundary("alternative", &[&text, &html]);
    let mut out = Vec::with_capacity(text.len() + html.len() + 512);
    out.extend_from_slice(
        format!("Content-Type: multipart/alternative; boundary=\"{boundary}\"\r\n\r\n").as_bytes(),
    );
    super::mime::write_parts(&mut out, &boundary, &[&text, &html]);
    Ok(out)
}

/// Text split into paragraphs (at blank lines), each a list of lines
/// without their indentation, which HTML would not show.
fn paragraphs(text: &str) -> Vec<Vec<&str>> {
    crate::text::paragraphs(text)
        .into_iter()
        .map(|lines| lines.into_iter().map(str::trim_start).collect())
        .collect()
}
