//! A notice: a message tidings writes to one person about a list (a
//! confirmation to give, a welcome, a goodbye, the answer to commands, a
//! link), in the list's language, from the list's -request address.
//!
//! Each carries List-Id (RFC 2919) and `Auto-Submitted: auto-replied` (RFC
//! 3834), so mail systems and other lists know it for automatic and answer
//! it with nothing; the envelope sender is the VERP address
//! `LIST-bounces+user=host@domain`, so a bounce names the person.

use anyhow::Context;
use serde_json::Value;

use super::Service;
use crate::config::List;
use crate::deliver::{MessageKind, NewMessage};
use crate::digest::headers::{self, ListAddresses};

/// A notice to compose.
pub struct Notice<'a> {
    pub list: &'a List,
    pub to: &'a str,
    /// Names `mail/LANG/TEMPLATE.txt` and the `TEMPLATE_subject` label.
    pub template: &'a str,
    /// What the template sees, besides the list and the site.
    pub context: Value,
    /// Where replies go, when not to the -request address.
    pub reply_to: Option<String>,
    /// The Message-ID of the message this answers.
    pub replying_to: Option<&'a str>,
}

impl Notice<'_> {
    /// The whole message, queued as it is (and signed by the outbox).
    pub fn compose(self, service: &Service<'_>) -> anyhow::Result<NewMessage> {
        let config = service.config;
        let templates = service.templates;
        let list = self.list;
        let lang = templates.language(&list.lang);
        let addresses = ListAddresses::new(config, list);
        let mut context = self.context;
        if let Value::Object(map) = &mut context {
            map.insert(
                "list".into(),
                serde_json::json!({
                    "code": list.code,
                    "name": list.name,
                    "title": list.title,
                    "description": list.description,
                    "address": list.address,
                    "request": addresses.request,
                    "owner": addresses.owner,
                    "archive_url": addresses.archive_url,
                    "subscribe_url": addresses.subscribe_url,
                }),
            );
            map.insert(
                "site".into(),
                serde_json::json!({"name": config.site.name, "url": config.site.base_url.as_str()}),
            );
            map.insert(
                "labels".into(),
                serde_json::to_value(templates.labels_of("mail", &lang))?,
            );
        }
        let subject_label = templates.label("mail", &lang, &format!("{}_subject", self.template));
        let subject = templates
            .render_str(&subject_label, &context)
            .with_context(|| format!("the subject of the {} notice", self.template))?;
        let body = templates.render("mail", &lang, &format!("{}.txt", self.template), &context)?;
        let date = chrono::DateTime::from_timestamp(service.now, 0)
            .unwrap_or_default()
            .with_timezone(&config.site.timezone);
        let mut head = String::with_capacity(1024);
        head.push_str(&format!("Date: {}\r\n", headers::rfc5322_date(&date)));
        head.push_str(&headers::mailbox_field(
            "From",
            &list.title,
            &addresses.request,
        ));
        head.push_str(&format!("To: {}\r\n", self.to));
        if let Some(reply_to) = &self.reply_to {
            head.push_str(&format!("Reply-To: {reply_to}\r\n"));
        }
        head.push_str(&headers::unstructured("Subject", subject.trim()));
        head.push_str(&format!(
            "Message-ID: <notice.{}@{}>\r\n",
            random_part()?,
            addresses.domain
        ));
        if let Some(id) = self.replying_to.filter(|id| is_message_id(id)) {
            head.push_str(&format!("In-Reply-To: {id}\r\nReferences: {id}\r\n"));
        }
        head.push_str(&addresses.list_id_field(&list.title));
        head.push_str("Auto-Submitted: auto-replied\r\n");
        head.push_str("MIME-Version: 1.0\r\n");
        let mut message = head.into_bytes();
        message.extend(headers::text_entity("plain", None, &tidy(&body)));
        Ok(NewMessage {
            kind: MessageKind::Notice,
            list_code: Some(list.code.clone()),
            sender: addresses.verp_sender(self.to),
            recipient: self.to.to_string(),
            message,
            sign: true,
        })
    }
}

/// A template's text with runs of blank lines made one and no trailing
/// white space, as mail clients show it best.
fn tidy(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut blank = 0;
    for line in text.trim().lines() {
        let line = line.trim_end();
        if line.is_empty() {
            blank += 1;
            if blank > 1 {
                continue;
            }
        } else {
            blank = 0;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Whether `id` can go into In-Reply-To as it is: `<...>`, one line,
/// printable ASCII (it came from a stranger's header).
fn is_message_id(id: &str) -> bool {
    id.len() <= 250
        && id.starts_with('<')
        && id.ends_with('>')
        && id.bytes().all(|b| b.is_ascii_graphic())
}

/// 16 random bytes in hex: a Message-ID never reused, whatever the store.
fn random_part() -> anyhow::Result<String> {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| anyhow::anyhow!("no system randomness"))?;
    Ok(data_encoding::HEXLOWER.encode(&bytes))
}
