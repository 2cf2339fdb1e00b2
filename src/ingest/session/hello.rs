//! The greeting and the hello verbs: EHLO and HELO (RFC 5321 4.1.1.1) for
//! SMTP, LHLO (RFC 2033 4.1) for LMTP; and the 421 a client gets instead of
//! a greeting when every slot is taken.

use std::borrow::Cow;

use smtp_proto::EhloResponse;

use super::{reply, Flow, Protocol, Session, Transaction};

/// Which hello the client said.
pub(super) enum Verb {
    Ehlo,
    Helo,
    Lhlo,
}

/// The 220 greeting of a session.
pub(super) fn greeting(domain: &str, protocol: Protocol) -> String {
    format!("220 {domain} tidings {} ready\r\n", protocol.name())
}

/// The reply to a client that connects when the listener is full, in all or
/// for the client's address; the driver closes the connection after it
/// (RFC 5321 3.1: 421 instead of the greeting).
pub fn too_many_connections(domain: &str) -> Vec<u8> {
    format!("421 4.7.0 {domain} too many connections, try again later\r\n").into_bytes()
}

/// Adds the XFORWARD line to the EHLO/LHLO reply that begins at `start`
/// in `out`, before its last line (smtp-proto knows no such extension).
fn offer_xforward(out: &mut Vec<u8>, start: usize) {
    let reply = &out[start..];
    // The last line begins after the CRLF that ends the one before it.
    let last = reply[..reply.len().saturating_sub(2)]
        .windows(2)
        .rposition(|pair| pair == b"\r\n")
        .map_or(start, |at| start + at + 2);
    if last == start {
        // A one-line reply ("250 host"): it becomes the first of two.
        out[start + 3] = b'-';
        out.extend_from_slice(format!("250 {}\r\n", super::xforward::OFFERED).as_bytes());
        return;
    }
    let line = format!("250-{}\r\n", super::xforward::OFFERED);
    out.splice(last..last, line.into_bytes());
}

impl Session {
    /// EHLO, HELO or LHLO: a fresh start, with the extensions tidings offers.
    pub(super) fn hello(&mut self, verb: Verb, host: &str, out: &mut Vec<u8>) -> Flow {
        let domain = &self.config.site.domain;
        match (self.protocol, verb) {
            (Protocol::Lmtp, Verb::Lhlo) | (Protocol::Smtp, Verb::Ehlo) => {
                let mut response = EhloResponse::new(Cow::Borrowed(domain.as_str()));
                response.capabilities = smtp_proto::EXT_PIPELINING
                    | smtp_proto::EXT_8BIT_MIME
                    | smtp_proto::EXT_SMTP_UTF8
                    | smtp_proto::EXT_SIZE
                    | smtp_proto::EXT_ENHANCED_STATUS_CODES;
                response.size = self.config.ingest.max_message_bytes;
                let start = out.len();
                response
                    .write(&mut *out)
                    .expect("writing to a Vec cannot fail");
                if self.forwarding {
                    offer_xforward(out, start);
                }
            }
            (Protocol::Smtp, Verb::Helo) => reply(out, &format!("250 {domain} hello {host}")),
            (protocol, _) => {
                self.errors += 1;
                let expected = match protocol {
                    Protocol::Lmtp => "LHLO",
                    Protocol::Smtp => "EHLO or HELO",
                };
                reply(
                    out,
                    &format!("500 5.5.1 this is {}: say {expected}", protocol.name()),
                );
                return Flow::Continue;
            }
        }
        self.greeted = true;
        self.helo = host.to_string();
        self.transaction = Transaction::default();
        Flow::Continue
    }
}
