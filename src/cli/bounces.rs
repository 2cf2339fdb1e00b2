//! `tidings bounces`: recent bounces, scores, disabled subscribers.

use std::io::Write;

use super::open_store;
use crate::config::Config;
use crate::store::bounces;

/// Prints the bounces of the last `days` days (newest first), each
/// subscriber's score, and the subscribers bounces disabled.
pub fn show(config: &Config, days: u32) -> anyhow::Result<()> {
    let store = open_store(config)?;
    // One read transaction: the bounces, the scores and the disabled are
    // one moment's, even while the daemon records a bounce.
    let db = store.unchecked_transaction()?;
    let now = crate::clock::unix_now();
    let date = |at: i64| {
        chrono::DateTime::from_timestamp(at, 0)
            .unwrap_or_default()
            .format("%Y-%m-%d %H:%M")
            .to_string()
    };
    let recent = bounces::recent(&db, now - i64::from(days) * 86_400, 200)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "bounces of the last {days} days: {}", recent.len())?;
    for bounce in &recent {
        writeln!(
            out,
            "  {}  {:<12} {:<9} {:<4} {}{}",
            date(bounce.at),
            bounce.list_code,
            if bounce.permanent {
                "permanent"
            } else {
                "temporary"
            },
            bounce.source,
            bounce.address,
            if bounce.subscriber_id.is_none() {
                "  (not a subscriber)"
            } else {
                ""
            }
        )?;
    }
    let scores = bounces::scores(
        &db,
        |code| {
            config
                .list(code)
                .map(|list| list.bounces)
                .unwrap_or(config.site.bounces)
        },
        now,
    )?;
    writeln!(out, "scores:")?;
    for (list, address, score, disabled_at) in &scores {
        let threshold = config
            .list(list)
            .map_or(config.site.bounces.threshold, |l| l.bounces.threshold);
        writeln!(
            out,
            "  {list:<12} {score:>4.1} of {threshold}  {address}{}",
            if disabled_at.is_some() {
                "  (disabled)"
            } else {
                ""
            }
        )?;
    }
    let disabled = bounces::disabled(&db)?;
    writeln!(out, "disabled by bounces: {}", disabled.len())?;
    for (list, address, at) in &disabled {
        writeln!(out, "  {list:<12} since {}  {address}", date(*at))?;
    }
    Ok(())
}
