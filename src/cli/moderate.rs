//! `tidings moderate`: held posts for a moderator on the server: list
//! them, show one, approve or reject some or all. The feeds are made again
//! once for the whole batch; the daemon's page builder follows the changes
//! the store's triggers record, and per-post delivery and the next digest
//! take an approved post like any published one.

use std::io::Write;

use anyhow::Context;

use super::open_store;
use crate::config::Config;
use crate::moderation::{self, Decided, Decision};
use crate::post::Status;
use crate::store::{self, posts};
use crate::subscribe::Service;
use crate::templates::Templates;
use crate::tokens::Secret;

/// Who a decision on the command line is recorded as.
fn operator() -> String {
    let user = std::env::var("USER").unwrap_or_else(|_| "operator".to_string());
    format!("{user} (tidings moderate)")
}

/// `tidings moderate list`: every held post, oldest first, with why.
pub fn list(config: &Config) -> anyhow::Result<()> {
    let db = open_store(config)?;
    let held = posts::list(
        &db,
        &posts::PostFilter {
            status: Some(Status::Held),
            ..Default::default()
        },
    )?;
    let mut out = std::io::stdout().lock();
    for post in &held {
        writeln!(
            out,
            "{:>6}  {:<4} {:<28} {}  [{}]",
            post.id,
            post.list_code.as_deref().unwrap_or("-"),
            post.author_address,
            post.subject,
            post.reason.as_deref().unwrap_or("")
        )?;
    }
    writeln!(out, "{} held", held.len())?;
    if held.iter().any(|post| post.list_code.is_none()) {
        writeln!(
            out,
            "posts under - have no list: approve them with --list CODE, or reject them"
        )?;
    }
    Ok(())
}

/// `tidings moderate show ID`: a held post as a moderator sees it.
pub fn show(config: &Config, id: i64) -> anyhow::Result<()> {
    super::posts::show(config, id, false)?;
    let db = open_store(config)?;
    if let Some((by, at)) = posts::decision(&db, id)? {
        let at = chrono::DateTime::from_timestamp(at, 0).unwrap_or_default();
        let at = at.format("%Y-%m-%d %H:%M UTC");
        writeln!(std::io::stdout().lock(), "Decided by:  {by} at {at}")?;
    }
    Ok(())
}

/// `tidings moderate approve|reject ID... | --all`: decides (an approval
/// with `--list` files the posts under that list first), tells the senders
/// of refused posts, then makes the feeds again once.
pub fn decide(config: &Config, ids: &[i64], all: bool, decision: &Decision) -> anyhow::Result<()> {
    anyhow::ensure!(
        all || !ids.is_empty(),
        "name the posts (ids from `tidings moderate list`) or give --all"
    );
    if let Decision::ApproveInto(code) = decision {
        anyhow::ensure!(
            config.list(code).is_some(),
            "no list {code} in {}: give the code of one of its lists",
            config.source
        );
    }
    let templates = Templates::load(&config.site.templates_dir).context("loading the templates")?;
    let secret = Secret::load_or_create(&config.site.data_dir)?;
    let mut db = open_store(config)?;
    let service = Service {
        config,
        templates: &templates,
        secret: &secret,
        now: crate::clock::unix_now(),
    };
    let by = operator();
    let (published, rejected, skipped) = store::transaction(&mut db, |tx| {
        let ids = match all {
            true => posts::held_before(tx, i64::MAX)?,
            false => ids.to_vec(),
        };
        let (mut published, mut rejected, mut skipped) = (0, 0, Vec::new());
        for id in ids {
            match moderation::decide(tx, &service, id, decision, &by)? {
                Decided::Published { .. } => published += 1,
                Decided::Rejected => rejected += 1,
                Decided::NotHeld => skipped.push(format!("post {id} is not held")),
                Decided::NoList => skipped.push(format!(
                    "post {id} has no list (no list serves its language): approve it with --list CODE"
                )),
            }
        }
        Ok::<_, anyhow::Error>((published, rejected, skipped))
    })?;
    for line in &skipped {
        eprintln!("tidings: {line}");
    }
    // The feeds and pages follow even when the reader of this output has
    // gone (`tidings moderate approve --all | head -1`).
    let mut said = writeln!(
        std::io::stdout().lock(),
        "published {published}, rejected {rejected}, skipped {}",
        skipped.len()
    );
    if published > 0 {
        let report =
            crate::feeds::regenerate_after_ingest(config, &db).context("writing the feeds")?;
        said = said.and_then(|()| {
            let written = report.written.len();
            writeln!(std::io::stdout().lock(), "feeds written {written}")
        });
        // The approved posts' pages, and the listings they join.
        super::feeds::site_changes(config, &mut db)?;
    }
    Ok(said?)
}

/// `tidings moderate expire`: refuses posts held past `hold_days`.
pub fn expire(config: &Config) -> anyhow::Result<()> {
    let templates = Templates::load(&config.site.templates_dir).context("loading the templates")?;
    let secret = Secret::load_or_create(&config.site.data_dir)?;
    let mut db = open_store(config)?;
    let service = Service {
        config,
        templates: &templates,
        secret: &secret,
        now: crate::clock::unix_now(),
    };
    let expired = store::transaction(&mut db, |tx| moderation::expire(tx, &service))?;
    writeln!(std::io::stdout().lock(), "expired {expired}")?;
    Ok(())
}
