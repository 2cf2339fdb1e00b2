//! A post's plain text as the HTML content of a feed entry (pure):
//! paragraphs kept, web addresses made links, everything else escaped.

use linkify::{LinkFinder, LinkKind};

use super::text::xml_safe;
use crate::text::paragraphs;

/// Schemes made into links; anything else (`javascript:`, `data:`, mail
/// addresses) stays text.
const LINKED_SCHEMES: &[&str] = &["http://", "https://", "ftp://"];

/// The body as HTML: one `<p>` per paragraph (lines separated by blank
/// lines), a `<br>` for each line break inside one, http(s) and ftp URLs as
/// links. Every character of the text is escaped, so nothing a contributor
/// writes can become markup.
pub fn body_html(body: &str) -> String {
    let body = xml_safe(body);
    let mut finder = LinkFinder::new();
    finder.kinds(&[LinkKind::Url]);
    let mut html = String::with_capacity(body.len() + body.len() / 8);
    for paragraph in paragraphs(&body) {
        html.push_str("<p>");
        for (index, line) in paragraph.iter().enumerate() {
            if index > 0 {
                html.push_str("<br>\n");
            }
            for span in finder.spans(line) {
                let text = span.as_str();
                let linked = span.kind().is_some()
                    && LINKED_SCHEMES
                        .iter()
                        .any(|scheme| starts_with_ignore_case(text, scheme));
                if linked {
                    let text = escape(text);
                    html.push_str("<a href=\"");
                    html.push_str(&text);
                    html.push_str("\">");
                    html.push_str(&text);
                    html.push_str("</a>");
                } else {
                    html.push_str(&escape(text));
                }
            }
        }
        html.push_str("</p>\n");
    }
    html
}

/// `text` with `&`, `<`, `>` and `"` as HTML character references, fit for
/// element content and double-quoted attributes. (Not `&apos;`, which HTML 4
/// readers do not know.)
pub fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len() + text.len() / 16);
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            _ => escaped.push(c),
        }
    }
    escaped
}

fn starts_with_ignore_case(text: &str, prefix: &str) -> bool {
    text.get(..prefix.len())
        .is_some_and(|start| start.eq_ignore_ascii_case(prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paragraphs_and_lines_are_kept() {
        assert_eq!(
            body_html("One\ntwo\n\n\n  \nThree\n"),
            "<p>One<br>\ntwo</p>\n<p>Three</p>\n"
        );
    }

    #[test]
    fn urls_become_links_and_everything_is_escaped() {
        let html = body_html("See https://example.org/a?b=1&c=<2> (or http://x.org/).\n<script>alert(1)</script> & \"x\"");
        assert_eq!(
            html,
            "<p>See <a href=\"https://example.org/a?b=1&amp;c=\">https://example.org/a?b=1&amp;c=</a>&lt;2&gt; (or <a href=\"http://x.org/\">http://x.org/</a>).<br>\n&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;x&quot;</p>\n"
        );
    }

    #[test]
    fn other_schemes_and_addresses_stay_text() {
        let html = body_html("javascript://%0aalert(1) mailto:a@example.org a@example.org");
        assert!(!html.contains("<a "), "{html}");
    }

    #[test]
    fn control_characters_never_reach_the_html() {
        assert_eq!(body_html("a\u{1}b\u{fffe}\r\n"), "<p>ab</p>\n");
    }
}
