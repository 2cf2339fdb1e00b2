//! Mail passed on as it came: to postmaster for the operator (RFC 5321
//! 4.5.1), and the same way to whoever answers an address of ours.
//!
//! The message keeps every byte, its own signatures included; a
//! `Delivered-To` field naming the address it came through goes on top, as
//! an MTA's local delivery adds it, and the envelope sender stays the
//! original one, so a failure goes back to whoever sent it, as with an
//! alias. A message that already carries that `Delivered-To` has been
//! through here once: passing it on again would be a loop, so it is kept,
//! marked failed with the reason, and not sent.

use crate::deliver::{MessageKind, NewMessage};

/// A message to pass on, and whether it may be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forward {
    pub message: NewMessage,
    /// Why it must not be sent, when it has come round before.
    pub looped: Option<String>,
}

/// Passes `content`, received through `via` from envelope `sender`, on to
/// `to`.
pub fn forward(via: &str, to: &str, sender: &str, content: &[u8]) -> Forward {
    let field = format!("Delivered-To: {via}\r\n");
    let looped = delivered_to(content, via)
        .then(|| format!("not passed on to {to}: it has been through {via} already (a mail loop)"));
    let mut message = Vec::with_capacity(field.len() + content.len() + 2);
    message.extend_from_slice(field.as_bytes());
    message.extend_from_slice(content);
    if !message.ends_with(b"\n") {
        message.extend_from_slice(b"\r\n");
    }
    Forward {
        message: NewMessage {
            kind: MessageKind::Forward,
            list_code: None,
            sender: sender.to_string(),
            recipient: to.to_string(),
            message,
            sign: false,
        },
        looped,
    }
}

/// Whether the header of `content` has a `Delivered-To` naming `address`.
fn delivered_to(content: &[u8], address: &str) -> bool {
    let Some(headers) = mail_parser::MessageParser::new().parse_headers(content) else {
        return false;
    };
    let found = headers
        .header_values("Delivered-To")
        .filter_map(|value| value.as_text())
        .any(|value| value.trim().eq_ignore_ascii_case(address));
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forward_keeps_every_byte_and_names_the_address_it_came_through() {
        let content =
            b"From: a@example.org\r\nSubject: hello\r\nDKIM-Signature: v=1; x\r\n\r\nbody\r\n";
        let passed = forward(
            "postmaster@lists.example.org",
            "ops@example.net",
            "a@example.org",
            content,
        );
        assert_eq!(passed.looped, None);
        assert_eq!(passed.message.recipient, "ops@example.net");
        assert_eq!(passed.message.sender, "a@example.org");
        assert!(
            !passed.message.sign,
            "mail passed on keeps its own signatures"
        );
        let expected = [
            b"Delivered-To: postmaster@lists.example.org\r\n".as_slice(),
            content,
        ]
        .concat();
        assert_eq!(passed.message.message, expected);
    }

    #[test]
    fn a_message_that_came_through_before_is_a_loop() {
        let content =
            b"Delivered-To: POSTMASTER@lists.example.org\r\nSubject: again\r\n\r\nbody\r\n";
        let again = forward(
            "postmaster@lists.example.org",
            "ops@example.net",
            "",
            content,
        );
        let reason = again.looped.expect("a loop");
        assert!(reason.contains("mail loop"), "{reason}");
        // Another address's Delivered-To is no loop.
        let content = b"Delivered-To: someone@example.net\r\nSubject: once\r\n\r\nbody";
        let once = forward(
            "postmaster@lists.example.org",
            "ops@example.net",
            "",
            content,
        );
        assert_eq!(once.looped, None);
        assert!(once.message.message.ends_with(b"body\r\n"));
    }
}
