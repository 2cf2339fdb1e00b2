//! The HTML digest: multipart/alternative (RFC 2046 5.1.4) of the RFC 1153
//! text and a text/html page rendered from `templates/digest/digest.html`
//! (table of contents with anchors, each post's first lines and a link to
//! its permalink; inline styles, no scripts, no remote images), so Gmail,
//! Outlook and K-9 show a readable page instead of a pile of attachments.

use serde::Serialize;

use super::headers::text_entity;
use super::{plain, Digest};

#[derive(Serialize)]
struct PageContext<'a> {
    lang: &'a str,
    subject: &'a str,
    date: String,
    labels: &'a crate::templates::Labels,
    posts: Vec<PostContext<'a>>,
    masthead: Vec<Vec<&'a str>>,
    footer: Vec<Vec<&'a str>>,
}

#[derive(Serialize)]
struct PostContext<'a> {
    number: usize,
    subject: &'a str,
    author: &'a str,
    date: &'a str,
    excerpt: &'a [String],
    permalink: &'a str,
}

/// The HTML page of a digest.
pub fn render_html(digest: &Digest<'_>) -> anyhow::Result<String> {
    let context = PageContext {
        lang: &digest.list.lang,
        subject: &digest.subject,
        date: digest.date.format("%Y-%m-%d").to_string(),
        labels: &digest.labels,
        posts: digest
            .entries
            .iter()
            .map(|entry| PostContext {
                number: entry.number,
                subject: &entry.subject,
                author: &entry.author,
                date: &entry.date,
                excerpt: &entry.excerpt,
                permalink: &entry.permalink,
            })
            .collect(),
        masthead: paragraphs(&digest.masthead),
        footer: paragraphs(&digest.footer),
    };
    let page = digest
        .templates
        .render("digest", &digest.lang, "digest.html", &context)?;
    Ok(page)
}

/// The multipart/alternative entity: the plain text first, the HTML last
/// (the richest alternative goes last).
pub fn render_html_entity(digest: &Digest<'_>) -> anyhow::Result<Vec<u8>> {
    let text = text_entity("plain", None, &plain::render_plain(digest));
    let html = text_entity("html", None, &render_html(digest)?);
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
