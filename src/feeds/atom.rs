//! A [`Feed`] as Atom 1.0 (RFC 4287) (pure), with `atom_syndication`.
//!
//! Text constructs (RFC 4287, 3.1) are `type="text"` unless the text looks
//! like markup ([`looks_like_markup`]): then it is sent as `type="html"`,
//! escaped once more, so no reader can take a contributor's `<script>` or
//! entity for markup, and validators do not take it for undeclared HTML.
//!
//! Each entry whose language is not the feed's carries it as `xml:lang` on
//! the `entry` element and on its text constructs; `atom_syndication` has
//! no `xml:lang` on `entry`, so [`with_entry_languages`] adds it to what the
//! crate wrote. The feed of all lists says `xml:lang="mul"` (several
//! languages, BCP 47), so no entry inherits a wrong one.

use atom_syndication::{
    Content, Entry as AtomEntry, Feed as AtomFeed, FixedDateTime, Generator, Link, Person, Text,
};

use quick_xml::events::{BytesStart, Event};
use quick_xml::{Reader, Writer};

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
        lang: Some(feed.lang.clone().unwrap_or_else(|| SEVERAL.to_string())),
        ..Default::default()
    };
    let written = atom.write_to(Vec::new())?;
    let languages: Vec<Option<&str>> = feed
        .entries
        .iter()
        .map(|entry| entry.lang.as_deref())
        .collect();
    let mut bytes = with_entry_languages(&written, &languages)?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// BCP 47's code for content in several languages.
const SEVERAL: &str = "mul";

/// `xml` (an Atom feed) with `xml:lang` on the n-th `entry` element when
/// `languages[n]` names one; everything else as it was.
fn with_entry_languages(xml: &[u8], languages: &[Option<&str>]) -> anyhow::Result<Vec<u8>> {
    if languages.iter().all(Option::is_none) {
        return Ok(xml.to_vec());
    }
    let mut reader = Reader::from_reader(xml);
    let mut writer = Writer::new(Vec::with_capacity(xml.len() + languages.len() * 16));
    let mut languages = languages.iter();
    let mut depth = 0usize;
    loop {
        let event = reader.read_event()?;
        match event {
            Event::Eof => break,
            Event::Start(start) => {
                depth += 1;
                // The feed is depth 1; its entries depth 2.
                let language = (depth == 2 && start.name().as_ref() == b"entry")
                    .then(|| languages.next().copied().flatten())
                    .flatten();
                match language {
                    Some(lang) => {
                        let mut with_lang = BytesStart::new("entry");
                        with_lang.extend_attributes(start.attributes().flatten());
                        with_lang.push_attribute(("xml:lang", lang));
                        writer.write_event(Event::Start(with_lang))?;
                    }
                    None => writer.write_event(Event::Start(start))?,
                }
            }
            Event::End(end) => {
                depth = depth.saturating_sub(1);
                writer.write_event(Event::End(end))?;
            }
            other => writer.write_event(other)?,
        }
    }
    Ok(writer.into_inner())
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
