//! `tidings status`.

use std::io::Write;

use anyhow::Context;

use super::open_store;
use crate::config::Config;
use crate::post::Status;
use crate::store::{deliveries, posts, subscribers};

/// `tidings status`: one line per list.
pub fn status(config: &Config) -> anyhow::Result<()> {
    let db = open_store(config)?;
    let posts = posts::count_by_list(&db).context("counting posts")?;
    let queue = deliveries::summary(&db, 0).context("reading the outbox")?;
    let readers = subscribers::count_by_list(&db).context("counting subscribers")?;
    let count = |list: &str, status: Status| {
        posts
            .iter()
            .filter(|(code, s, _)| code.as_deref() == Some(list) && *s == status)
            .map(|(_, _, n)| n)
            .sum::<u64>()
    };

    let timezone = config.site.timezone;
    let now = crate::clock::now().with_timezone(&timezone);
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{:<11} {:>10} {:>6} {:>11}  {:<22} {:>7}",
        "list",
        "published",
        "held",
        "subscribers",
        format!("next digest ({timezone})"),
        "outbox"
    )?;
    for list in &config.lists {
        let subscribers = readers
            .iter()
            .find(|(code, _)| *code == list.code)
            .map_or(0, |(_, count)| *count);
        let next = list
            .schedule
            .after(&now)
            .next()
            .map(|at| at.format("%Y-%m-%d %H:%M").to_string())
            .unwrap_or_else(|| "never".to_string());
        writeln!(
            out,
            "{:<11} {:>10} {:>6} {:>11}  {:<22} {:>7}",
            list.code,
            count(&list.code, Status::Published),
            count(&list.code, Status::Held),
            subscribers,
            next,
            queue.waiting(Some(&list.code))
        )?;
    }
    let unfiled: u64 = posts
        .iter()
        .filter(|(code, status, _)| code.is_none() && *status == Status::Held)
        .map(|(_, _, n)| n)
        .sum();
    let rejected: u64 = posts
        .iter()
        .filter(|(_, status, _)| *status == Status::Rejected)
        .map(|(_, _, n)| n)
        .sum();
    writeln!(out, "held without a list: {unfiled}; rejected: {rejected}")?;
    Ok(())
}
