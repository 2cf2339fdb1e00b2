//! RCPT TO (RFC 5321 4.1.1.3): which recipients tidings takes, through the
//! routing table of [`crate::ingest::route`].
//!
//! A list's posting address, its service addresses (-request, -subscribe,
//! -unsubscribe, -confirm, -bounces, -owner) and postmaster are accepted;
//! unknown names at the site domain are refused (550 5.1.1) and other
//! domains too (550 5.7.1), so tidings never relays.

use std::borrow::Cow;

use smtp_proto::RcptTo;

use super::{reply, Flow, Recipient, Session};
use crate::ingest::route::{route, Refusal};

impl Session {
    /// RCPT: one recipient more, or the reason it is not ours.
    pub(super) fn rcpt(
        &mut self,
        to: RcptTo<Cow<'_, str>>,
        line: &[u8],
        out: &mut Vec<u8>,
    ) -> Flow {
        if self.transaction.sender.is_none() {
            reply(out, "503 5.5.1 need MAIL before RCPT");
            return Flow::Continue;
        }
        if self.transaction.recipients.len() >= self.rules.max_recipients {
            reply(out, "452 4.5.3 too many recipients");
            return Flow::Continue;
        }
        // smtp-proto gives both `<>` and `<postmaster>` as an empty address.
        let address = match to.address {
            address if !address.is_empty() => address.into_owned(),
            _ if names_bare_postmaster(line) => "postmaster".to_string(),
            _ => {
                reply(out, "501 5.1.3 bad recipient address syntax");
                return Flow::Continue;
            }
        };
        match route(&self.config, &address) {
            Ok(route) if route.is_handled() => {
                reply(out, "250 2.1.5 recipient ok");
                self.transaction
                    .recipients
                    .push(Recipient { address, route });
            }
            Ok(route) => reply(
                out,
                &format!(
                    "550 5.1.1 <{address}>: {} addresses are not yet supported by tidings",
                    route.kind()
                ),
            ),
            Err(Refusal::Unknown) => {
                reply(out, &format!("550 5.1.1 <{address}>: no such list here"))
            }
            Err(Refusal::Relay) => {
                reply(out, &format!("550 5.7.1 <{address}>: relay access denied"))
            }
            Err(Refusal::NotAnAddress) => {
                reply(out, &format!("550 5.1.3 <{address}>: not a mail address"))
            }
        }
        Flow::Continue
    }
}

/// Whether the RCPT line names `<postmaster>` without a domain, which
/// RFC 5321 4.1.1.3 requires a server to accept.
fn names_bare_postmaster(line: &[u8]) -> bool {
    line.to_ascii_lowercase()
        .windows(b"<postmaster>".len())
        .any(|window| window == b"<postmaster>")
}
