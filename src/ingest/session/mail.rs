//! MAIL FROM (RFC 5321 4.1.1.2) with the SIZE parameter (RFC 1870): the
//! sender, and a message refused before it is sent when it says it is too
//! big.

use std::borrow::Cow;

use smtp_proto::MailFrom;

use super::{reply, Flow, Session};

impl Session {
    /// MAIL: opens a transaction unless the client has not said hello, has
    /// one open, or declares a size over the limit.
    pub(super) fn mail(&mut self, from: MailFrom<Cow<'_, str>>, out: &mut Vec<u8>) -> Flow {
        let limit = self.config.ingest.max_message_bytes;
        if !self.greeted {
            reply(out, "503 5.5.1 say hello first");
        } else if self.transaction.sender.is_some() {
            reply(out, "503 5.5.1 sender already given");
        } else if from.size > limit {
            let size = from.size;
            reply(
                out,
                &format!("552 5.3.4 message size {size} exceeds the limit of {limit} bytes"),
            );
        } else {
            self.transaction.sender = Some(from.address.into_owned());
            reply(out, "250 2.1.0 sender ok");
        }
        Flow::Continue
    }
}
