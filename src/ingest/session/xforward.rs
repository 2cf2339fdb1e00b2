//! XFORWARD (Postfix's XFORWARD_README): an MTA in front of tidings (Postfix
//! with `lmtp_send_xforward_command = yes` or `smtp_send_xforward_command =
//! yes`) names the client it received the message from, so that SPF checks
//! that client, not the MTA. Offered and taken only from a peer on loopback
//! (as the driver tells [`Session::set_peer`]); anyone else gets 550.
//!
//! `XFORWARD ADDR=192.0.2.1 HELO=mail.example.org` before MAIL; attribute
//! values are xtext (RFC 3461 4), `[UNAVAILABLE]` and `[TEMPUNAVAIL]` mean
//! unknown, an IPv6 ADDR may carry the `IPV6:` prefix. What is given lasts
//! until the end of the transaction (DATA, RSET or a new hello).

use std::net::IpAddr;

use super::{reply, Flow, Session};

/// The attributes tidings takes, as offered in EHLO/LHLO. NAME and PROTO
/// are taken and ignored: Postfix sends them with the others.
pub(super) const OFFERED: &str = "XFORWARD NAME ADDR PROTO HELO";

/// Whether `line` is an XFORWARD command (which smtp-proto does not know).
pub(super) fn is_xforward(line: &[u8]) -> bool {
    line.len() >= 9 && line[..8].eq_ignore_ascii_case(b"XFORWARD") && line[8] == b' '
}

impl Session {
    /// Tells the session its peer's address: each message's client, unless
    /// a peer on loopback (the MTA in front) names another by XFORWARD.
    pub fn set_peer(&mut self, address: IpAddr) {
        self.peer = Some(address);
        self.forwarding = address.is_loopback();
    }

    /// XFORWARD: records the forwarded client's address and HELO for the
    /// transaction to come.
    pub(super) fn xforward(&mut self, line: &[u8], out: &mut Vec<u8>) -> Flow {
        if !self.forwarding {
            self.errors += 1;
            reply(out, "550 5.7.0 XFORWARD is not permitted from this client");
            return Flow::Continue;
        }
        if !self.greeted {
            reply(out, "503 5.5.1 say hello first");
            return Flow::Continue;
        }
        if self.transaction.sender.is_some() {
            reply(out, "503 5.5.1 XFORWARD goes before MAIL");
            return Flow::Continue;
        }
        let text = String::from_utf8_lossy(&line[9..]);
        let mut address = None;
        let mut helo = None;
        for attribute in text.split_ascii_whitespace() {
            let Some((name, value)) = attribute.split_once('=') else {
                self.errors += 1;
                reply(out, "501 5.5.4 XFORWARD takes NAME=VALUE attributes");
                return Flow::Continue;
            };
            let value = decode_xtext(value).filter(|value| {
                !value.eq_ignore_ascii_case("[UNAVAILABLE]")
                    && !value.eq_ignore_ascii_case("[TEMPUNAVAIL]")
            });
            match name.to_ascii_uppercase().as_str() {
                "ADDR" => address = Some(value.as_deref().and_then(parse_address)),
                "HELO" => helo = Some(value),
                "NAME" | "PROTO" | "SOURCE" | "IDENT" | "PORT" => {}
                _ => {
                    self.errors += 1;
                    reply(
                        out,
                        &format!("501 5.5.4 XFORWARD attribute {name} is not offered"),
                    );
                    return Flow::Continue;
                }
            }
        }
        if let Some(address) = address {
            self.transaction.forwarded_client = Some(address);
        }
        if let Some(helo) = helo {
            self.transaction.forwarded_helo = Some(helo.unwrap_or_default());
        }
        reply(out, "250 2.0.0 ok");
        Flow::Continue
    }
}

/// An xtext value (RFC 3461 4: `+XX` for a byte); `None` when malformed.
fn decode_xtext(value: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(value.len());
    let mut rest = value.as_bytes();
    while let Some((&byte, tail)) = rest.split_first() {
        if byte == b'+' {
            let hex = std::str::from_utf8(tail.get(..2)?).ok()?;
            bytes.push(u8::from_str_radix(hex, 16).ok()?);
            rest = &tail[2..];
        } else {
            bytes.push(byte);
            rest = tail;
        }
    }
    String::from_utf8(bytes).ok()
}

/// An ADDR value: an IPv4 or IPv6 address, the latter maybe `IPV6:`-prefixed.
fn parse_address(value: &str) -> Option<IpAddr> {
    let value = match value.get(..5) {
        Some(prefix) if prefix.eq_ignore_ascii_case("IPV6:") => &value[5..],
        _ => value,
    };
    value.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_xtext_and_addresses_may_say_ipv6() {
        assert_eq!(
            decode_xtext("mail+2Eexample").as_deref(),
            Some("mail.example")
        );
        assert_eq!(decode_xtext("bad+4"), None);
        assert_eq!(parse_address("192.0.2.1"), "192.0.2.1".parse().ok());
        assert_eq!(
            parse_address("IPV6:2001:db8::1"),
            "2001:db8::1".parse().ok()
        );
        assert_eq!(parse_address("[UNAVAILABLE]"), None);
        assert!(is_xforward(b"xforward ADDR=1.2.3.4\r\n"));
        assert!(!is_xforward(b"XFORWARDED\r\n"));
    }
}
