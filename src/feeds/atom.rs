//! A [`Feed`] as Atom 1.0 (RFC 4287) (pure), with `atom_syndication`.
//!
//! Text constructs (RFC 4287, 3.1) are `type="text"` unless the text looks
//! like markup ([`looks_like_markup`]): then it is sent as `type="html"`,
//! escaped once more, so no reader can take a contributor's `<script>` or
//! entity for markup, and validators do not take it for undeclared HTML. Entries
//! of a feed of several languages carry their language as `xml:lang` on
//! their text, since `atom_syndication` has no `xml:lang` on `entry`.

use atom_syndication::{
    Content, Entry as AtomEntry, Feed as AtomFeed, FixedDateTime, Generator, Link, Person, Text,
};

use super::html::escape;
use super::text::looks_like_markup;
use super::{Entry, Feed, Format, GENERATOR, GENERATOR_VERSION};

/// The feed as an Atom document.
pub fn render_atom(feed: &Feed) -> anyhow::Result<Vec<u8>> {
    let atom = AtomFeed {
        title: text(&feed.title, None),
        id: feed.id.clone(),
        updated: FixedDateTime::from(feed.updated),
        authors: vec![person(&feed.publisher)],
        generator: Some(Generator {
            value: GENERATOR.to_string(),
            uri: None,
            version: Some(GENERATOR_VERSION.to_string()),
        }),
        links: vec![
            link(&feed.home_url, "alternate", "text/html"),
            link(
                &feed.self_url(Format::Atom),
                "self",
                Format::Atom.media_type(),
            ),
        ],
        subtitle: Some(text(&feed.description, None)),
        entries: feed.entries.iter().map(entry).collect(),
        lang: feed.lang.clone(),
        ..Default::default()
    };
    let mut bytes = atom.write_to(Vec::new())?;
    bytes.push(b'\n');
    Ok(bytes)
}

fn entry(entry: &Entry) -> AtomEntry {
    let lang = entry.lang.as_deref();
    AtomEntry {
        title: text(&entry.title, lang),
        id: entry.id.clone(),
        updated: FixedDateTime::from(entry.updated),
        published: Some(FixedDateTime::from(entry.date)),
        authors: entry.author.iter().map(|name| person(name)).collect(),
        links: std::iter::once(link(&entry.link, "alternate", "text/html"))
            .chain(entry.versions.iter().map(|version| Link {
                hreflang: Some(version.lang.clone()),
                ..link(&version.url, "alternate", "text/html")
            }))
            .collect(),
        summary: (!entry.summary.is_empty()).then(|| text(&entry.summary, lang)),
        content: Some(Content {
            lang: lang.map(str::to_string),
            value: Some(entry.content_html.clone()),
            content_type: Some("html".to_string()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A text construct that every reader shows as exactly `value`.
fn text(value: &str, lang: Option<&str>) -> Text {
    let mut text = if looks_like_markup(value) {
        Text::html(escape(value))
    } else {
        Text::plain(value)
    };
    text.lang = lang.map(str::to_string);
    text
}

fn person(name: &str) -> Person {
    Person {
        name: name.to_string(),
        ..Default::default()
    }
}

fn link(href: &str, rel: &str, media_type: &str) -> Link {
    Link {
        href: href.to_string(),
        rel: rel.to_string(),
        mime_type: Some(media_type.to_string()),
        ..Default::default()
    }
}
