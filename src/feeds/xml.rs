//! A detail of how the RSS formats are written (pure).

use memchr::memmem;

/// `xml` with the character references the RSS Advisory Board's RSS Profile
/// recommends: `&#x26;` for `&amp;`, `&#x3C;` for `&lt;` and `&#x3E;` for
/// `&gt;`, outside CDATA sections (inside one, text is not parsed, so it
/// stays as it is). To every XML parser the document says the same; to
/// readers and validators that follow the profile, a title escaped this way
/// is plainly character data, not HTML.
pub fn with_hex_references(xml: &[u8]) -> Vec<u8> {
    const CDATA_START: &[u8] = b"<![CDATA[";
    const CDATA_END: &[u8] = b"]]>";
    let mut out = Vec::with_capacity(xml.len() + xml.len() / 32);
    let mut at = 0;
    while at < xml.len() {
        let rest = &xml[at..];
        if rest.starts_with(CDATA_START) {
            let end = memmem::find(rest, CDATA_END).map_or(rest.len(), |end| end + CDATA_END.len());
            out.extend_from_slice(&rest[..end]);
            at += end;
            continue;
        }
        let (reference, replacement): (&[u8], &[u8]) = if rest.starts_with(b"&amp;") {
            (b"&amp;", b"&#x26;")
        } else if rest.starts_with(b"&lt;") {
            (b"&lt;", b"&#x3C;")
        } else if rest.starts_with(b"&gt;") {
            (b"&gt;", b"&#x3E;")
        } else {
            out.push(rest[0]);
            at += 1;
            continue;
        };
        out.extend_from_slice(replacement);
        at += reference.len();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_become_hexadecimal_outside_cdata_only() {
        let xml = b"<t a=\"&amp;\">&lt;b&gt; &amp;lt;</t><d><![CDATA[&lt; &amp;]]></d>&amp;";
        assert_eq!(
            String::from_utf8(with_hex_references(xml)).unwrap(),
            "<t a=\"&#x26;\">&#x3C;b&#x3E; &#x26;lt;</t><d><![CDATA[&lt; &amp;]]></d>&#x26;"
        );
    }
}
