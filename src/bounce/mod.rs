//! Bounce processing: mail to `LIST-bounces[+user=host]` is read
//! ([`detect`]), stored with what was found (never published, never
//! answered, never bounced back), and scored against the list's
//! subscribers ([`score`]); at the threshold a subscriber is disabled and
//! told once, with the link that re-enables them. A 5xx reply in tidings'
//! own SMTP session counts the same way ([`record_smtp_refusal`]).
//!
//! With VERP the envelope recipient names the subscriber, and is what
//! counts: a bounce to `LIST-bounces+ana=example.org@` that reports any
//! failure is a bounce of ana@example.org (permanent when any failure it
//! reports is). Without VERP, each address the bounce reports counts.

pub mod detect;
pub mod score;

use serde_json::json;

use crate::config::{Config, List};
use crate::store::{self, bounces, Transaction};
use crate::subscribe::notice::Notice;
use crate::subscribe::Service;

/// Reads and stores one message to `list`'s -bounces address, scores what
/// it reports and queues the final notice of each subscriber it disables;
/// says what became of it (for logs and the pipe).
pub fn process(
    tx: &Transaction<'_>,
    service: &Service<'_>,
    list_code: &str,
    verp: Option<&str>,
    recipient: &str,
    sender: &str,
    raw: &[u8],
) -> anyhow::Result<String> {
    let config = service.config;
    let found = detect::detect(raw, &config.site.domain);
    let message_id = bounces::store_message(
        tx,
        &bounces::NewBounceMessage {
            list_code,
            recipient,
            sender,
            found: &found,
            message: raw,
        },
        service.now,
    )?;
    let Some(list) = config.list(list_code) else {
        return Ok(format!("bounce {message_id} kept: no list {list_code}"));
    };
    let source = found.format.unwrap_or("text");
    let failures: Vec<(String, bool)> = match verp {
        Some(address) if !found.failures.is_empty() => {
            vec![(
                address.to_string(),
                found.failures.iter().any(|f| f.permanent),
            )]
        }
        _ => found
            .failures
            .iter()
            .map(|f| (f.address.clone(), f.permanent))
            .collect(),
    };
    if failures.is_empty() {
        return Ok(format!("bounce {message_id} kept: no failure found in it"));
    }
    let mut disabled = 0;
    for (address, permanent) in &failures {
        let recorded = bounces::record(
            tx,
            &bounces::NewBounce {
                list_code,
                address,
                permanent: *permanent,
                source,
                message_id: Some(message_id),
                reply: None,
            },
            list.bounces,
            service.now,
        )?;
        if recorded.disabled {
            disabled += 1;
            queue_final_notice(tx, service, list, &recorded)?;
        }
    }
    Ok(format!(
        "bounce {message_id} read ({source}): {} failure(s), {disabled} subscriber(s) disabled",
        failures.len()
    ))
}

/// Counts a 5xx reply to a message tidings sent `address` for `list_code`
/// like a bounce; queues the final notice when it disables them and
/// templates are at hand.
pub fn record_smtp_refusal(
    tx: &Transaction<'_>,
    config: &Config,
    service: Option<&Service<'_>>,
    list_code: &str,
    address: &str,
    reply: &str,
    now: i64,
) -> anyhow::Result<()> {
    let Some(list) = config.list(list_code) else {
        return Ok(());
    };
    let recorded = bounces::record(
        tx,
        &bounces::NewBounce {
            list_code,
            address,
            permanent: true,
            source: "smtp",
            message_id: None,
            reply: Some(reply),
        },
        list.bounces,
        now,
    )?;
    if let (true, Some(service)) = (recorded.disabled, service) {
        queue_final_notice(tx, service, list, &recorded)?;
    }
    Ok(())
}

/// Whether an SMTP reply the outbox recorded is a permanent refusal (5xx),
/// as lettre words it ("permanent error (550): ...") or as the server
/// wrote it.
pub fn is_smtp_refusal(reply: &str) -> bool {
    let reply = reply.trim_start();
    reply.starts_with("permanent error (5")
        || (reply.len() >= 3
            && reply.as_bytes()[0] == b'5'
            && reply.as_bytes()[1..3].iter().all(u8::is_ascii_digit))
}

/// The one notice a disabled subscriber gets: why, and how to re-enable;
/// for a bounce message, a 5xx or a delivery given up.
pub(crate) fn queue_final_notice(
    tx: &Transaction<'_>,
    service: &Service<'_>,
    list: &List,
    recorded: &bounces::Recorded,
) -> anyhow::Result<()> {
    let Some((_, person_id, address)) = &recorded.subscriber else {
        return Ok(());
    };
    let notice = Notice {
        list,
        to: address,
        template: "disabled",
        context: json!({
            "address": address,
            "prefs_url": service.preferences_url(*person_id),
            "score": recorded.score,
            "threshold": list.bounces.threshold,
            "window_days": list.bounces.window_days,
        }),
        reply_to: None,
        replying_to: None,
    }
    .compose(service)?;
    store::outgoing::queue(tx, &notice, service.now)?;
    Ok(())
}
