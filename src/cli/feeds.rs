//! `tidings feeds` and `tidings site`.

use std::io::Write;

use anyhow::Context;

use super::open_store;
use crate::config::Config;
use crate::feeds;

/// Writes every feed now and prints what changed; with `after_ingest`
/// (what `ingest` starts after a post), only the feeds whose posts changed,
/// leaving the work to a rebuild already under way.
pub fn write(config: &Config, after_ingest: bool) -> anyhow::Result<()> {
    let db = open_store(config)?;
    if after_ingest {
        return feeds::regenerate_after_ingest(config, &db).map(drop);
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
    println!(
        "{} pages made, {} changed, {} removed in {}",
        report.pages,
        report.written,
        report.removed,
        out.display()
    );
    Ok(())
}
