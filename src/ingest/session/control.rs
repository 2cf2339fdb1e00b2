//! The verbs around a transaction: RSET, NOOP, QUIT, VRFY and HELP
//! (RFC 5321 4.1.1.5-4.1.1.10), the verbs tidings does not offer, and the
//! replies to lines smtp-proto cannot parse.

use smtp_proto::Error as ProtoError;

use super::{reply, Flow, Session, State, Transaction};

impl Session {
    /// RSET: the transaction is dropped, the greeting stays.
    pub(super) fn reset(&mut self, out: &mut Vec<u8>) -> Flow {
        self.transaction = Transaction::default();
        reply(out, "250 2.0.0 reset");
        Flow::Continue
    }

    /// QUIT: 221, then the connection closes.
    pub(super) fn quit(&mut self, out: &mut Vec<u8>) -> Flow {
        reply(out, &format!("221 2.0.0 {} bye", self.config.site.domain));
        self.state = State::Closed;
        Flow::Close
    }
}

/// NOOP.
pub(super) fn noop(out: &mut Vec<u8>) -> Flow {
    reply(out, "250 2.0.0 ok");
    Flow::Continue
}

/// VRFY: 252, as RFC 5321 3.5.3 allows a server that will not say.
pub(super) fn verify(out: &mut Vec<u8>) -> Flow {
    reply(out, "252 2.5.0 cannot verify, send a message and see");
    Flow::Continue
}

/// HELP.
pub(super) fn help(out: &mut Vec<u8>) -> Flow {
    reply(
        out,
        "214 2.0.0 tidings accepts posts for its lists; see the list's help address",
    );
    Flow::Continue
}

/// STARTTLS, AUTH, BDAT, EXPN, ETRN, ATRN, BURL: parsed, but not offered.
pub(super) fn not_implemented(out: &mut Vec<u8>) -> Flow {
    reply(out, "502 5.5.1 command not implemented");
    Flow::Continue
}

/// The one reply to a command line over [`super::MAX_COMMAND_LINE`].
pub(super) fn line_too_long(out: &mut Vec<u8>) {
    reply(out, "500 5.5.2 line too long");
}

/// The reply to a line smtp-proto could not parse.
pub(super) fn syntax_error(error: &ProtoError, out: &mut Vec<u8>) {
    let text = match error {
        ProtoError::UnknownCommand => "500 5.5.2 unknown command".into(),
        ProtoError::ResponseTooLong => "500 5.5.2 line too long".into(),
        ProtoError::InvalidSenderAddress => "501 5.1.7 bad sender address syntax".into(),
        ProtoError::InvalidRecipientAddress => "501 5.1.3 bad recipient address syntax".into(),
        ProtoError::SyntaxError { syntax } => format!("501 5.5.4 syntax: {syntax}"),
        ProtoError::InvalidParameter { param } => format!("501 5.5.4 invalid parameter {param}"),
        ProtoError::UnsupportedParameter { param } => {
            format!("555 5.5.4 unsupported parameter {param}")
        }
        ProtoError::NeedsMoreData { .. } | ProtoError::InvalidResponse { .. } => {
            "500 5.5.2 syntax error".into()
        }
    };
    reply(out, &text);
}
