//! Benchmark fixture: the one-click unsubscribe tokens of given subscribers,
//! as the daemon signs them into every digest's List-Unsubscribe URL.
//!
//! ```text
//! cargo run --example unsubscribe_tokens -- DATA_DIR < ids > tokens
//! ```
//!
//! Reads subscriber ids on stdin, one a line, and prints each one's token
//! (the part after `/unsubscribe/`), one a line, in the same order, signed
//! with `DATA_DIR/secret` (made when there is none yet, as the daemon does).
//! It is an example, not a command: tokens are the secrets of other
//! people's links, and only a benchmark on a store of made-up subscribers
//! has a use for them in bulk (benches/subscribers.py).

use std::io::{BufRead, BufWriter, Write};
use std::path::PathBuf;

use tidings::tokens::{Purpose, Secret};

fn main() -> anyhow::Result<()> {
    let data_dir: PathBuf = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .ok_or_else(|| anyhow::anyhow!("usage: unsubscribe_tokens DATA_DIR < ids"))?;
    let secret = Secret::load_or_create(&data_dir)?;
    let mut out = BufWriter::new(std::io::stdout().lock());
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        let id: i64 = line
            .trim()
            .parse()
            .map_err(|_| anyhow::anyhow!("not a subscriber id: {line:?}"))?;
        writeln!(out, "{}", secret.sign(Purpose::Unsubscribe, id, None))?;
    }
    out.flush()?;
    Ok(())
}
