//! A [`Feed`] as RSS 1.0 (RDF Site Summary) (pure), written with quick-xml:
//! no crate of the stack writes it. Dates, languages and authors are
//! Dublin Core (`dc:`), the full text `content:encoded` (RSS 1.0 modules),
//! and the generator `admin:generatorAgent`. Titles are plain text, escaped
//! once (RSS 1.0 titles are character data), and references are
//! hexadecimal, as in RSS 2.0 (see [`super::rss`]). An item's `rdf:about` is its
//! stable id, so it survives a change of address like the ids of the other
//! formats.

use std::io;

use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use quick_xml::Writer;

use super::html::escape;
use super::xml::with_hex_references;
use super::{Feed, Format, GENERATOR, GENERATOR_VERSION};

const RDF: &str = "http://www.w3.org/1999/02/22-rdf-syntax-ns#";
const RSS: &str = "http://purl.org/rss/1.0/";
const DC: &str = "http://purl.org/dc/elements/1.1/";
const CONTENT: &str = "http://purl.org/rss/1.0/modules/content/";
const ADMIN: &str = "http://webns.net/mvcb/";

/// The feed as an RSS 1.0 document.
pub fn render_rdf(feed: &Feed) -> anyhow::Result<Vec<u8>> {
    let mut writer = Writer::new(Vec::new());
    write_rdf(&mut writer, feed)?;
    let mut bytes = with_hex_references(&writer.into_inner());
    bytes.push(b'\n');
    Ok(bytes)
}

fn write_rdf(writer: &mut Writer<Vec<u8>>, feed: &Feed) -> io::Result<()> {
    writer.write_event(Event::Decl(BytesDecl::new("1.0", Some("utf-8"), None)))?;
    writer.write_event(Event::Start(BytesStart::new("rdf:RDF").with_attributes([
        ("xmlns:rdf", RDF),
        ("xmlns", RSS),
        ("xmlns:dc", DC),
        ("xmlns:content", CONTENT),
        ("xmlns:admin", ADMIN),
    ])))?;

    let self_url = feed.self_url(Format::Rdf);
    writer
        .create_element("channel")
        .with_attribute(("rdf:about", self_url.as_str()))
        .write_inner_content(|writer| {
            text_element(writer, "title", &feed.title)?;
            text_element(writer, "link", &feed.home_url)?;
            text_element(writer, "description", &feed.description)?;
            if let Some(lang) = &feed.lang {
                text_element(writer, "dc:language", lang)?;
            }
            text_element(writer, "dc:publisher", &feed.publisher)?;
            text_element(writer, "dc:date", &w3cdtf(feed.updated))?;
            // The mvcb module wants a URI for the generator; tidings has no
            // page of its own, so it names itself under the site.
            let generator = format!("{}#{GENERATOR}-{GENERATOR_VERSION}", feed.site_url);
            writer
                .create_element("admin:generatorAgent")
                .with_attribute(("rdf:resource", generator.as_str()))
                .write_empty()?;
            writer
                .create_element("items")
                .write_inner_content(|writer| {
                    writer
                        .create_element("rdf:Seq")
                        .write_inner_content(|writer| {
                            for entry in &feed.entries {
                                writer
                                    .create_element("rdf:li")
                                    .with_attribute(("rdf:resource", entry.id.as_str()))
                                    .write_empty()?;
                            }
                            Ok(())
                        })?;
                    Ok(())
                })?;
            Ok(())
        })?;

    for entry in &feed.entries {
        writer
            .create_element("item")
            .with_attribute(("rdf:about", entry.id.as_str()))
            .write_inner_content(|writer| {
                text_element(writer, "title", &entry.title)?;
                text_element(writer, "link", &entry.link)?;
                // Readers take an RSS 1.0 description for HTML, like RSS 2.0's.
                if !entry.summary.is_empty() {
                    text_element(writer, "description", &escape(&entry.summary))?;
                }
                if let Some(author) = &entry.author {
                    text_element(writer, "dc:creator", author)?;
                }
                text_element(writer, "dc:date", &w3cdtf(entry.date))?;
                if let Some(lang) = &entry.lang {
                    text_element(writer, "dc:language", lang)?;
                }
                text_element(writer, "content:encoded", &entry.content_html)?;
                Ok(())
            })?;
    }
    writer.write_event(Event::End(BytesEnd::new("rdf:RDF")))
}

fn text_element(writer: &mut Writer<Vec<u8>>, name: &str, text: &str) -> io::Result<()> {
    writer
        .create_element(name)
        .write_text_content(BytesText::new(text))?;
    Ok(())
}

/// A date as the W3C profile of ISO 8601 that `dc:date` takes.
fn w3cdtf(date: chrono::DateTime<chrono::Utc>) -> String {
    date.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
