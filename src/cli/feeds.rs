//! `tidings feeds`.

use std::io::Write;

use anyhow::Context;

use super::open_store_to_write;
use crate::config::Config;
use crate::feeds;

/// Writes every feed now and prints what changed; with `after_ingest`
/// (what `ingest` starts after a post), only the feeds whose posts changed,
/// leaving the work to a rebuild already under way.
pub fn write(config: &Config, after_ingest: bool) -> anyhow::Result<()> {
    let db = open_store_to_write(config)?;
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
