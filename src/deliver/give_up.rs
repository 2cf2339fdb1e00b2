//! Giving up: a delivery still not made `give_up_after_hours` after its
//! digest was issued, its post received or its message queued is failed
//! and never tried again.
//!
//! As Mailman counts a message given up after its retries as a bounce, a
//! given-up digest or post counts against its subscriber as a temporary
//! bounce (0.5) when the relay was deferring that very recipient: its
//! last try was answered with a 4xx (not 421) to RCPT TO or to DATA
//! ([`transport::deferred_for_recipient`]), and the relay took the same
//! digest or post for another subscriber, so it was working. A relay that
//! was down, timed out, closed the session (421), refused MAIL FROM or
//! deferred everyone counts against nobody: the subscriber did nothing
//! wrong. Single messages (notices, forwards, digests across lists) go
//! through lettre's own transaction, which says no command, and count
//! against nobody either.

use super::transport;
use crate::config::Config;
use crate::store::{bounces, deliveries, outgoing, post_deliveries, Transaction};
use crate::subscribe::Service;

/// Fails every delivery and message whose retry age is over at `now`, and
/// counts a bounce against each subscriber the relay was deferring, in
/// the caller's transaction; queues the final notice of each it disables
/// when `service` is given. Returns how many were given up.
pub fn give_up_old(
    tx: &Transaction<'_>,
    config: &Config,
    service: Option<&Service<'_>>,
    now: i64,
) -> anyhow::Result<usize> {
    let before = now - config.delivery.give_up_after_hours * 3600;
    let deferred = bounces::giving_up(tx, before)?;
    let given_up = deliveries::give_up(tx, before, now)?
        + post_deliveries::give_up(tx, before, now)?
        + outgoing::give_up(tx, before, now)?;
    for giving_up in deferred {
        if !transport::deferred_for_recipient(&giving_up.last_reply) {
            continue;
        }
        let Some(list) = config.list(&giving_up.list_code) else {
            continue;
        };
        let reply = format!(
            "given up: not delivered in time; last reply: {}",
            giving_up.last_reply
        );
        let recorded = bounces::record(
            tx,
            &bounces::NewBounce {
                list_code: &list.code,
                address: &giving_up.address,
                permanent: false,
                source: "smtp",
                message_id: None,
                reply: Some(&reply),
            },
            list.bounces,
            now,
        )?;
        if let (true, Some(service)) = (recorded.disabled, service) {
            crate::bounce::queue_final_notice(tx, service, list, &recorded)?;
        }
    }
    Ok(given_up)
}
