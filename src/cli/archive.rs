//! `tidings backup` and `tidings export`: the store copied whole, and a
//! list's archive as an mbox.

use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::Context;
use chrono::DateTime;

use crate::config::Config;
use crate::store;

/// Copies the store to `file` (see [`store::backup`]).
pub fn backup(config: &Config, file: &Path) -> anyhow::Result<()> {
    anyhow::ensure!(
        !file.exists(),
        "{} exists: give a new file name",
        file.display()
    );
    let db = super::open_store(config)?;
    let started = std::time::Instant::now();
    store::backup(&db, file)?;
    let size = std::fs::metadata(file).map_or(0, |m| m.len());
    writeln!(
        std::io::stdout().lock(),
        "wrote {} ({:.1} MB) in {:.1} s",
        file.display(),
        size as f64 / 1e6,
        started.elapsed().as_secs_f64()
    )?;
    Ok(())
}

/// Writes the published posts of `list` (of every list when `None`) to
/// `mbox`, oldest first, in the mboxrd format: each message as received
/// with LF line ends after a `From sender date` line, any line of it
/// matching `>*From ` quoted with one more `>`, and a blank line after it.
/// Written under a temporary name and renamed, so a reader never finds
/// half an mbox.
pub fn export(config: &Config, list: Option<&str>, mbox: &Path) -> anyhow::Result<()> {
    if let Some(code) = list {
        anyhow::ensure!(
            config.list(code).is_some(),
            "there is no list {code:?} in the configuration"
        );
    }
    let db = super::open_store(config)?;
    // A name of its own beside the mbox, never a file of the operator's.
    let file_name = mbox
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| "export".to_string());
    let partial = mbox.with_file_name(format!(".{file_name}.partial"));
    let written = write_mbox(&db, list, &partial).and_then(|count| {
        std::fs::rename(&partial, mbox).with_context(|| format!("writing {}", mbox.display()))?;
        Ok(count)
    });
    if written.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    let count = written?;
    writeln!(
        std::io::stdout().lock(),
        "wrote {count} posts to {}",
        mbox.display()
    )?;
    Ok(())
}

/// Writes the mbox of `list` to `path` and flushes it; how many posts.
fn write_mbox(db: &store::Connection, list: Option<&str>, path: &Path) -> anyhow::Result<usize> {
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut out = BufWriter::new(file);
    let count = store::posts::each_published_raw(db, list, |post| {
        write_message(&mut out, &post.sender, post.received_at, &post.raw)
            .with_context(|| format!("writing {}", path.display()))
    })?;
    let file = out.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    Ok(count)
}

/// One message in mboxrd form.
fn write_message(
    out: &mut impl Write,
    sender: &str,
    received_at: i64,
    raw: &[u8],
) -> std::io::Result<()> {
    let sender = match sender.trim() {
        "" => "MAILER-DAEMON",
        // The separator line is split at spaces by readers.
        address if address.contains(char::is_whitespace) => "MAILER-DAEMON",
        address => address,
    };
    let date = DateTime::from_timestamp(received_at, 0)
        .unwrap_or_default()
        .format("%a %b %e %H:%M:%S %Y");
    writeln!(out, "From {sender} {date}")?;
    let mut lines = raw.split(|&byte| byte == b'\n').peekable();
    while let Some(line) = lines.next() {
        if lines.peek().is_none() && line.is_empty() {
            break;
        }
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let quoted = line
            .iter()
            .position(|&b| b != b'>')
            .is_some_and(|at| line[at..].starts_with(b"From "));
        if quoted {
            out.write_all(b">")?;
        }
        out.write_all(line)?;
        out.write_all(b"\n")?;
    }
    out.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_lines_are_quoted_one_level_more_and_line_ends_are_lf() {
        let mut out = Vec::new();
        write_message(
            &mut out,
            "ana@example.org",
            0,
            b"Subject: x\r\n\r\nFrom here on\r\n>From there\r\nFromage\r\n",
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "From ana@example.org Thu Jan  1 00:00:00 1970\nSubject: x\n\n>From here on\n>>From there\nFromage\n\n"
        );
    }
}
