//! A [`Feed`] as RSS 2.0 (pure), with the `rss` crate.
//!
//! RSS 2.0 has no element for an item's author name without an address nor
//! for its language, so those are Dublin Core (`dc:creator`, `dc:language`);
//! the full text is `content:encoded`, and the self link `atom:link
//! rel="self"`, as the RSS Advisory Board's RSS Profile recommends.
//!
//! A title is plain text, escaped once as XML requires: the RSS Best
//! Practices Profile has item titles as plain text, and readers such as
//! newsboat show an escaped `&lt;` as `&lt;`, so escaping twice would put
//! entities on their screens. References are written in hex
//! ([`with_hex_references`]), as the profile recommends, which tells readers
//! following it that a title with `<` in it is character data.

use rss::extension::atom::{AtomExtension, Link};
use rss::extension::dublincore::DublinCoreExtension;
use rss::{Channel, Guid, Item};

use super::html::escape;
use super::xml::with_hex_references;
use super::{Feed, Format, GENERATOR, GENERATOR_VERSION};

/// The feed as an RSS 2.0 document.
pub fn render_rss(feed: &Feed) -> anyhow::Result<Vec<u8>> {
    let items = feed
        .entries
        .iter()
        .map(|entry| {
            let dublin_core = DublinCoreExtension {
                creators: entry.author.iter().cloned().collect(),
                languages: entry.lang.iter().cloned().collect(),
                ..Default::default()
            };
            Item {
                title: Some(entry.title.clone()),
                link: Some(entry.link.clone()),
                // The description is HTML: the plain summary, escaped.
                description: (!entry.summary.is_empty()).then(|| escape(&entry.summary)),
                guid: Some(Guid {
                    value: entry.id.clone(),
                    permalink: false,
                }),
                pub_date: Some(entry.date.to_rfc2822()),
                content: Some(entry.content_html.clone()),
                dublin_core_ext: (!dublin_core.creators.is_empty()
                    || !dublin_core.languages.is_empty())
                .then_some(dublin_core),
                ..Default::default()
            }
        })
        .collect();
    let channel = Channel {
        title: feed.title.clone(),
        link: feed.home_url.clone(),
        description: feed.description.clone(),
        language: feed.lang.clone(),
        generator: Some(format!("{GENERATOR} {GENERATOR_VERSION}")),
        last_build_date: Some(feed.updated.to_rfc2822()),
        docs: Some("https://www.rssboard.org/rss-specification".to_string()),
        atom_ext: Some(AtomExtension {
            links: vec![Link {
                href: feed.self_url(Format::Rss),
                rel: "self".to_string(),
                mime_type: Some(Format::Rss.media_type().to_string()),
                ..Default::default()
            }],
        }),
        items,
        ..Default::default()
    };
    let mut bytes = with_hex_references(&channel.write_to(Vec::new())?);
    bytes.push(b'\n');
    Ok(bytes)
}
