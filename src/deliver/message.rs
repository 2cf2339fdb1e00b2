//! One recipient's message: the personal header fields around a digest
//! body rendered once, a post as its contributor sent it under the list's
//! fields ([`PreparedPost`]), or a single queued message as it is
//! ([`single`]).
//!
//! Every message carries Date, Message-ID at our domain, From the list, To
//! the one subscriber (no other subscriber's address ever appears),
//! Subject, List-Id (RFC 2919), List-Post, List-Help, List-Subscribe,
//! List-Archive (RFC 2369), List-Unsubscribe with the subscriber's
//! one-click URL and a mailto plus List-Unsubscribe-Post (RFC 8058),
//! Precedence: list, and a DKIM-Signature per configured key. The envelope
//! sender is the VERP address `LIST-bounces+user=host@domain`.

use std::str::FromStr;
use std::sync::Arc;

use chrono::DateTime;
use lettre::address::Envelope;
use lettre::Address;

use super::dkim::{BodyHash, Signer};
use super::transport::{close_data, dot_stuff, Outgoing};
use super::{DueDelivery, NewMessage};
use crate::config::{Config, List, Transport};
use crate::digest::headers::{self, ListAddresses};
use crate::digest::original::Original;
use crate::digest::{DigestMode, DigestRecord};

/// What every recipient of one format of one digest shares.
pub struct Prepared {
    pub digest_id: i64,
    pub mode: DigestMode,
    pub addresses: ListAddresses,
    /// Date and From fields.
    leading: String,
    /// The Subject field.
    subject: String,
    /// MIME-Version and the shared List-* fields.
    trailing: String,
    /// The rendered entity (Content-* fields, blank line, body) as stored.
    entity: Variant,
    /// Whether DKIM signatures are made.
    sign: bool,
    domain: String,
    /// The digest's random Message-ID part ([`DigestRecord::nonce`]).
    nonce: Option<String>,
    /// The entity made 7-bit for a relay without 8BITMIME, made when one
    /// first needs it.
    seven_bit: std::sync::OnceLock<Option<Variant>>,
}

/// An entity with what sending it needs.
struct Variant {
    entity: Vec<u8>,
    /// The entity dot-stuffed and closed for SMTP's DATA phase, when it is
    /// UTF-8 (a digest carrying an original in another 8-bit charset is
    /// not, and goes through lettre's encoder instead).
    data_entity: Option<Arc<str>>,
    /// The body's DKIM hash, when there are keys.
    body_hash: Option<BodyHash>,
}

impl Variant {
    fn new(entity: Vec<u8>, sign: bool) -> Variant {
        let body_hash = sign.then(|| Signer::body_hash(body_of(&entity)));
        let data_entity = std::str::from_utf8(&entity).ok().map(|text| {
            let mut data = String::with_capacity(text.len() + text.len() / 64);
            dot_stuff(text, &mut data);
            close_data(&mut data);
            Arc::from(data)
        });
        Variant {
            entity,
            data_entity,
            body_hash,
        }
    }
}

impl Prepared {
    /// Prepares a digest body for fan-out; `sign` computes the body hash
    /// the DKIM signatures need.
    pub fn new(
        config: &Config,
        list: &List,
        digest: &DigestRecord,
        mode: DigestMode,
        subject: &str,
        entity: Vec<u8>,
        sign: bool,
    ) -> Prepared {
        let addresses = ListAddresses::new(config, list);
        let date = DateTime::from_timestamp(digest.issued_at, 0)
            .unwrap_or_default()
            .with_timezone(&config.site.timezone);
        let leading = format!(
            "Date: {}\r\n{}",
            headers::rfc5322_date(&date),
            headers::mailbox_field("From", &list.title, &list.address)
        );
        let subject = format!("Subject:{subject}\r\n");
        let trailing = format!(
            "MIME-Version: 1.0\r\n{}",
            addresses.shared_fields(&list.title)
        );
        Prepared {
            digest_id: digest.id,
            mode,
            addresses,
            leading,
            subject,
            trailing,
            entity: Variant::new(entity, sign),
            sign,
            domain: config.site.domain.clone(),
            nonce: digest.nonce.clone(),
            seven_bit: std::sync::OnceLock::new(),
        }
    }

    /// The Message-ID of the digest to one subscriber: the same on a retry,
    /// so a message sent twice after a crash can be recognised, and with
    /// the digest's random part, so no other installation or rebuilt
    /// database issues it for another message.
    pub fn message_id(&self, delivery: &DueDelivery) -> String {
        match &self.nonce {
            Some(nonce) => format!(
                "<digest.{}.{}.{nonce}@{}>",
                self.digest_id, delivery.subscriber_id, self.domain
            ),
            None => format!(
                "<digest.{}.{}@{}>",
                self.digest_id, delivery.subscriber_id, self.domain
            ),
        }
    }

    /// The entity to send where 8-bit text is taken or not: the stored one,
    /// or for a relay without 8BITMIME its 8bit text made quoted-printable.
    fn variant(&self, eight_bit: bool) -> &Variant {
        if eight_bit {
            return &self.entity;
        }
        self.seven_bit
            .get_or_init(|| {
                headers::downgrade_8bit(&self.entity.entity)
                    .map(|entity| Variant::new(entity, self.sign))
            })
            .as_ref()
            .unwrap_or(&self.entity)
    }

    /// The whole message for `delivery`, for SMTP in DATA form when the
    /// body allows it: DKIM-Signature fields, personal and shared fields,
    /// then the entity, 7-bit where the way out does not take 8-bit text.
    pub fn message(
        &self,
        delivery: &DueDelivery,
        signers: &[Signer],
        smtp: bool,
        eight_bit: bool,
    ) -> anyhow::Result<Outgoing> {
        let variant = self.variant(eight_bit);
        let (signatures, fields) = self.header(delivery, signers, variant)?;
        match &variant.data_entity {
            Some(entity) if smtp => {
                // The header ends in CRLF, so the entity begins a line.
                let mut head = String::with_capacity(signatures.len() + fields.len() + 8);
                dot_stuff(std::str::from_utf8(&signatures)?, &mut head);
                dot_stuff(&fields, &mut head);
                Ok(Outgoing::Data {
                    head,
                    shared: entity.clone(),
                })
            }
            _ => {
                let mut bytes =
                    Vec::with_capacity(signatures.len() + fields.len() + variant.entity.len());
                bytes.extend_from_slice(&signatures);
                bytes.extend_from_slice(fields.as_bytes());
                bytes.extend_from_slice(&variant.entity);
                Ok(Outgoing::Bytes(bytes))
            }
        }
    }

    /// The whole message for `delivery` as it is.
    pub fn message_bytes(
        &self,
        delivery: &DueDelivery,
        signers: &[Signer],
    ) -> anyhow::Result<Vec<u8>> {
        match self.message(delivery, signers, false, true)? {
            Outgoing::Bytes(bytes) => Ok(bytes),
            Outgoing::Data { .. } => unreachable!("asked for the message as it is"),
        }
    }

    /// The header of `delivery`'s message: its DKIM-Signature fields, and
    /// the rest of its fields.
    fn header(
        &self,
        delivery: &DueDelivery,
        signers: &[Signer],
        variant: &Variant,
    ) -> anyhow::Result<(Vec<u8>, String)> {
        let mut fields = String::with_capacity(1024);
        fields.push_str(&self.leading);
        fields.push_str("To: ");
        fields.push_str(&delivery.address);
        fields.push_str("\r\n");
        fields.push_str(&self.subject);
        fields.push_str("Message-ID: ");
        fields.push_str(&self.message_id(delivery));
        fields.push_str("\r\n");
        fields.push_str(&self.trailing);
        fields.push_str(&self.addresses.unsubscribe_fields(&delivery.token));
        let mut signatures = Vec::with_capacity(512 * signers.len());
        if let Some(body_hash) = variant.body_hash {
            for signer in signers {
                signatures.extend(signer.sign(&[fields.as_bytes(), &variant.entity], body_hash)?);
            }
        }
        Ok((signatures, fields))
    }

    /// The SMTP envelope: the VERP sender and the one recipient.
    pub fn envelope(&self, delivery: &DueDelivery) -> anyhow::Result<Envelope> {
        verp_envelope(&self.addresses, &delivery.address)
    }
}

/// A single queued message as it goes out: its envelope (the null sender
/// when `sender` is empty) and its bytes, with a DKIM-Signature per key in
/// front when it is to be signed.
///
/// For a relay that does not take 8-bit text (`eight_bit` false), a
/// message whose entity is 8bit text goes quoted-printable
/// ([`seven_bit`]), and is signed as such.
pub fn single(
    message: &NewMessage,
    signers: &[Signer],
    eight_bit: bool,
) -> anyhow::Result<(Envelope, Vec<u8>)> {
    let sender = match message.sender.as_str() {
        "" => None,
        sender => Some(
            Address::from_str(sender)
                .map_err(|e| anyhow::anyhow!("bad envelope sender {sender}: {e}"))?,
        ),
    };
    let recipient = Address::from_str(&message.recipient)
        .map_err(|e| anyhow::anyhow!("bad recipient address {}: {e}", message.recipient))?;
    let envelope = Envelope::new(sender, vec![recipient])?;
    let downgraded = (!eight_bit && !message.message.is_ascii())
        .then(|| seven_bit(&message.message))
        .flatten();
    let bytes = downgraded.as_deref().unwrap_or(&message.message);
    if !message.sign || signers.is_empty() {
        return Ok((envelope, bytes.to_vec()));
    }
    let body_hash = Signer::body_hash(body_of(bytes));
    let mut signed = Vec::with_capacity(bytes.len() + 512 * signers.len());
    for signer in signers {
        signed.extend(signer.sign(&[bytes], body_hash)?);
    }
    signed.extend_from_slice(bytes);
    Ok((envelope, signed))
}

/// A single message whose entity (its fields from `Content-Type` to the
/// end of the header, and the body) is 8bit text, made 7-bit
/// ([`headers::downgrade_8bit`]); `None` for any other message, which goes
/// as it is.
pub fn seven_bit(message: &[u8]) -> Option<Vec<u8>> {
    let header_end = memchr::memmem::find(message, b"\r\n\r\n")?;
    let at = memchr::memmem::find(&message[..header_end], b"\r\nContent-Type: ")? + 2;
    let entity = headers::downgrade_8bit(&message[at..])?;
    let mut out = Vec::with_capacity(at + entity.len());
    out.extend_from_slice(&message[..at]);
    out.extend_from_slice(&entity);
    (out.is_ascii()).then_some(out)
}

/// The body of an entity: what follows its first blank line.
fn body_of(entity: &[u8]) -> &[u8] {
    memchr::memmem::find(entity, b"\r\n\r\n")
        .map_or(&entity[entity.len()..], |at| &entity[at + 4..])
}

/// What every recipient of one post sent as it arrives shares: the post as
/// the contributor sent it, under the list's own fields.
///
/// The raw message stays byte for byte (only bare LF line ends become
/// CRLF, as any MTA would send them), so the author's DKIM signature
/// still verifies at the subscriber; on top come the list's DKIM
/// signatures, the subscriber's List-Unsubscribe fields (RFC 8058) and the
/// shared List-* fields (RFC 2369, 2919). To, From, Subject and
/// Message-ID stay the author's; the envelope sender is the VERP address,
/// so bounces come back to the list and not to the author.
pub struct PreparedPost {
    pub post_id: i64,
    pub addresses: ListAddresses,
    /// The shared List-* fields, then the raw message.
    shared: Vec<u8>,
    /// `shared` dot-stuffed and closed for SMTP's DATA phase, when it is
    /// UTF-8.
    data_shared: Option<Arc<str>>,
    /// The raw message's body hash, when there are keys.
    body_hash: Option<BodyHash>,
}

impl PreparedPost {
    /// Prepares the raw message of post `post_id` for its list's post
    /// subscribers; `sign` computes the body hash the list's DKIM
    /// signatures need.
    ///
    /// Through sendmail, a header with raw UTF-8 fields (RFC 6532) is
    /// written in ASCII first ([`Original::with_ascii_header`]): Postfix's
    /// sendmail marks such a message as needing SMTPUTF8 and bounces it at
    /// the first relay that does not offer it. (Over SMTP it goes as it
    /// came, not marked SMTPUTF8, for the same reason: `transport.rs`.)
    pub fn new(config: &Config, list: &List, post_id: i64, raw: &[u8], sign: bool) -> PreparedPost {
        let addresses = ListAddresses::new(config, list);
        let raw = headers::message_crlf(raw);
        let raw = match config.delivery.transport {
            Transport::Sendmail => Original::parse(&raw).with_ascii_header().unwrap_or(raw),
            _ => raw,
        };
        let mut shared = addresses.shared_fields(&list.title).into_bytes();
        shared.extend_from_slice(&raw);
        let body_hash = sign.then(|| Signer::body_hash(body_of(&raw)));
        let data_shared = std::str::from_utf8(&shared).ok().map(|text| {
            let mut data = String::with_capacity(text.len() + text.len() / 64);
            dot_stuff(text, &mut data);
            close_data(&mut data);
            Arc::from(data)
        });
        PreparedPost {
            post_id,
            addresses,
            shared,
            data_shared,
            body_hash,
        }
    }

    /// The whole message for `delivery`, for SMTP in DATA form when the
    /// message allows it: the list's DKIM-Signature fields and the
    /// subscriber's List-Unsubscribe fields, then what every recipient
    /// shares.
    pub fn message(
        &self,
        delivery: &DueDelivery,
        signers: &[Signer],
        smtp: bool,
    ) -> anyhow::Result<Outgoing> {
        let fields = self.addresses.unsubscribe_fields(&delivery.token);
        let mut signatures = Vec::with_capacity(512 * signers.len());
        if let Some(body_hash) = self.body_hash {
            for signer in signers {
                signatures.extend(signer.sign(&[fields.as_bytes(), &self.shared], body_hash)?);
            }
        }
        match &self.data_shared {
            Some(shared) if smtp => {
                let mut head = String::with_capacity(signatures.len() + fields.len() + 8);
                dot_stuff(std::str::from_utf8(&signatures)?, &mut head);
                dot_stuff(&fields, &mut head);
                Ok(Outgoing::Data {
                    head,
                    shared: shared.clone(),
                })
            }
            _ => {
                let mut bytes =
                    Vec::with_capacity(signatures.len() + fields.len() + self.shared.len());
                bytes.extend_from_slice(&signatures);
                bytes.extend_from_slice(fields.as_bytes());
                bytes.extend_from_slice(&self.shared);
                Ok(Outgoing::Bytes(bytes))
            }
        }
    }

    /// The SMTP envelope: the VERP sender and the one recipient.
    pub fn envelope(&self, delivery: &DueDelivery) -> anyhow::Result<Envelope> {
        verp_envelope(&self.addresses, &delivery.address)
    }
}

/// An envelope from the VERP sender of `recipient` to `recipient` alone.
fn verp_envelope(addresses: &ListAddresses, recipient: &str) -> anyhow::Result<Envelope> {
    let sender = addresses.verp_sender(recipient);
    let from = Address::from_str(&sender)
        .map_err(|e| anyhow::anyhow!("bad envelope sender {sender}: {e}"))?;
    let to = Address::from_str(recipient)
        .map_err(|e| anyhow::anyhow!("bad recipient address {recipient}: {e}"))?;
    Ok(Envelope::new(Some(from), vec![to])?)
}
