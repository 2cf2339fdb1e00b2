//! A post's raw message as the archive offers it for download: the bytes
//! as received, with every mail address written `local at domain`, the way
//! Mailman's archives do, so that harvesters reading the page find none.
//! Message-IDs (Message-ID, In-Reply-To, References) stay as they are:
//! they name messages, not people, and a mail client threads by them.
//!
//! Parts sent in base64 or quoted-printable are left as they are: their
//! addresses are encoded, not readable in the file.

use memchr::memchr_iter;

/// `raw` with its addresses obfuscated.
pub fn obfuscate(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + raw.len() / 64);
    let mut copied = 0;
    let mut in_id_header = false;
    let mut line_start = 0;
    let header_end = find_header_end(raw);
    for at in memchr_iter(b'@', raw) {
        // Which header line this `@` is on, for the headers' part.
        if at < header_end {
            let start = raw[..at]
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |i| i + 1);
            if start != line_start {
                line_start = start;
                let first = raw[start];
                if first != b' ' && first != b'\t' {
                    in_id_header = is_id_header(&raw[start..at]);
                }
            }
            if in_id_header {
                continue;
            }
        }
        let local = at > 0 && is_local_byte(raw[at - 1]);
        let domain = raw.get(at + 1).is_some_and(|&b| b.is_ascii_alphanumeric());
        if local && domain {
            out.extend_from_slice(&raw[copied..at]);
            out.extend_from_slice(b" at ");
            copied = at + 1;
        }
    }
    out.extend_from_slice(&raw[copied..]);
    out
}

fn is_local_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b".!#$%&'*+/=?^_`{|}~-".contains(&byte)
}

fn is_id_header(line: &[u8]) -> bool {
    let name = line.split(|&b| b == b':').next().unwrap_or_default();
    [
        "message-id",
        "in-reply-to",
        "references",
        "resent-message-id",
    ]
    .iter()
    .any(|id| name.eq_ignore_ascii_case(id.as_bytes()))
}

fn find_header_end(raw: &[u8]) -> usize {
    memchr::memmem::find(raw, b"\r\n\r\n")
        .or_else(|| memchr::memmem::find(raw, b"\n\n"))
        .unwrap_or(raw.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_obfuscated_and_message_ids_kept() {
        let raw = b"From: Ana <ana.p@example.org>\r\nCc: b@x.net,\r\n c+d@y.org\r\n\
Message-ID: <123@host.example>\r\nReferences: <1@a.b>\r\n <2@c.d>\r\n\r\n\
Write to info@collective.example or @someone on social.\r\n";
        let out = String::from_utf8(obfuscate(raw)).unwrap();
        assert!(out.contains("From: Ana <ana.p at example.org>"), "{out}");
        assert!(out.contains("Cc: b at x.net,\r\n c+d at y.org"), "{out}");
        assert!(out.contains("Message-ID: <123@host.example>"), "{out}");
        assert!(out.contains("References: <1@a.b>\r\n <2@c.d>"), "{out}");
        assert!(
            out.contains("info at collective.example or @someone"),
            "{out}"
        );
        assert!(!out.contains("ana.p@"));
    }
}
