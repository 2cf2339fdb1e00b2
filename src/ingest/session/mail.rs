//! MAIL FROM (RFC 5321 4.1.1.2) with the SIZE parameter (RFC 1870): the
//! sender, and a message refused before it is sent when it says it is too
//! big.

use std::borrow::Cow;

use smtp_proto::MailFrom;

use super::{reply, Flow, Session};

impl Session {
    /// MAIL: opens a transaction unless the client has not said hello, has
    /// one open, or declares a size over the limit.
    pub(super) fn mail(
        &mut self,
        from: MailFrom<Cow<'_, str>>,
        line: &[u8],
        out: &mut Vec<u8>,
    ) -> Flow {
        let limit = self.config.ingest.max_message_bytes;
        if !self.greeted {
            reply(out, "503 5.5.1 say hello first");
        } else if self.transaction.sender.is_some() {
            reply(out, "503 5.5.1 sender already given");
        } else {
            match declared_size(line).unwrap_or(Some(from.size)) {
                None => reply(
                    out,
                    &format!("552 5.3.4 declared message size exceeds the limit of {limit} bytes"),
                ),
                Some(size) if size > limit => reply(
                    out,
                    &format!("552 5.3.4 message size {size} exceeds the limit of {limit} bytes"),
                ),
                Some(_) => {
                    self.transaction.sender = Some(from.address.into_owned());
                    reply(out, "250 2.1.0 sender ok");
                }
            }
        }
        Flow::Continue
    }
}

/// The `SIZE=` parameter as written on the MAIL line: `None` when there is
/// none, `Some(None)` when its digits do not fit a `usize`. smtp-proto
/// saturates such a number and then keeps reading digits, so that
/// `SIZE=99999999999999999999999` comes out as 999; this reads it again.
fn declared_size(line: &[u8]) -> Option<Option<usize>> {
    // Parameters follow the path's closing '>'.
    let start = line.iter().position(|&byte| byte == b'>')? + 1;
    line[start..]
        .split(|byte| byte.is_ascii_whitespace())
        .find_map(|parameter| {
            let (key, digits) = parameter.split_at_checked(5)?;
            let is_size = key.eq_ignore_ascii_case(b"SIZE=")
                && !digits.is_empty()
                && digits.iter().all(u8::is_ascii_digit);
            is_size.then(|| std::str::from_utf8(digits).ok()?.parse().ok())
        })
}

#[cfg(test)]
mod tests {
    use super::declared_size;

    #[test]
    fn the_declared_size_is_read_exactly_or_found_too_big() {
        assert_eq!(declared_size(b"MAIL FROM:<a@b>\r\n"), None);
        assert_eq!(
            declared_size(b"MAIL FROM:<a@b> SIZE=1200\r\n"),
            Some(Some(1200))
        );
        assert_eq!(
            declared_size(b"MAIL FROM:<a@b> BODY=8BITMIME size=7\r\n"),
            Some(Some(7))
        );
        assert_eq!(
            declared_size(b"MAIL FROM:<a@b> SIZE=99999999999999999999999\r\n"),
            Some(None)
        );
        assert_eq!(declared_size(b"MAIL FROM:<size=5@b>\r\n"), None);
    }
}
