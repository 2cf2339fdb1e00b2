//! `tidings feeds` and `tidings site`.

use std::io::Write;

use anyhow::Context;

use super::{open_store, open_store_to_write};
use crate::config::Config;
use crate::feeds;

/// Writes every feed now and prints what changed; with `after_ingest`
/// (what `ingest` starts after a post), only the feeds whose posts changed,
/// leaving the work to a rebuild already under way.
pub fn write(config: &Config, after_ingest: bool) -> anyhow::Result<()> {
    let mut db = open_store_to_write(config)?;
    if after_ingest {
        feeds::regenerate_after_ingest(config, &db)?;
        return site_changes(config, &mut db);
    }
    let report =
        feeds::regenerate(config, &db, feeds::Mode::Everything).context("writing the feeds")?;
    let mut out = std::io::stdout().lock();
    for path in &report.written {
        writeln!(out, "wrote {}", path.display())?;
    }
    writeln!(
        out,
        "{} feed files written, {} unchanged in {}",
        report.written.len(),
        report.unchanged,
        config.site.feeds_dir.display()
    )?;
    Ok(())
}

/// The lock in `data_dir` that lets one command at a time make pages.
pub const SITE_LOCK: &str = "site.lock";

/// Makes the archive pages that changed posts touch, as the daemon does
/// after each feed refresh: what the pipe starts after a post, and what
/// `moderate approve` does after its feeds, so the pages follow the mail
/// without a daemon.
pub(super) fn site_changes(
    config: &Config,
    db: &mut crate::store::Connection,
) -> anyhow::Result<()> {
    const BATCH: usize = 2_000;
    // One builder at a time: every piped post starts one of these, and on
    // a site to make whole each would make all of it at once. The next in
    // line finds the pages made and the changes taken.
    let lock_path = config.site.data_dir.join(SITE_LOCK);
    let _lock = crate::files::LockFile::acquire(&lock_path)
        .with_context(|| format!("locking {}", lock_path.display()))?;
    let templates = crate::templates::Templates::load(&config.site.templates_dir)
        .context("loading the templates")?;
    let dir = &config.site.site_dir;
    loop {
        let stale = crate::site::is_stale(config, &templates, dir);
        let changes = crate::store::archive::changes(db, if stale { usize::MAX } else { BATCH })?;
        let now = crate::clock::now().timestamp();
        let scope = crate::site::Scope::Changed(&changes);
        let report = crate::site::build(config, &templates, db, dir, scope, now)
            .context("writing the archive's pages")?;
        crate::store::transaction(db, |tx| crate::store::archive::changes_done(tx, &changes))?;
        if report.full || changes.len() < BATCH {
            return Ok(());
        }
    }
}

/// Writes every page of the archive into `out` (else `[site] site_dir`)
/// and says how many changed.
pub fn site(config: &Config, out: Option<std::path::PathBuf>) -> anyhow::Result<()> {
    let db = open_store(config)?;
    let templates = crate::templates::Templates::load(&config.site.templates_dir)
        .context("loading the templates")?;
    let out = out.unwrap_or_else(|| config.site.site_dir.clone());
    let now = crate::clock::Clock::System.now().timestamp();
    let report = crate::site::build(config, &templates, &db, &out, crate::site::Scope::Full, now)
        .context("writing the site")?;
    writeln!(
        std::io::stdout().lock(),
        "{} pages made, {} changed, {} removed in {}",
        report.pages,
        report.written,
        report.removed,
        out.display()
    )?;
    Ok(())
}
