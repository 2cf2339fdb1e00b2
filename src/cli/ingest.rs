//! `tidings ingest` (one message from an MTA pipe) and `tidings import`
//! (archives).

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;

use super::{check_list, create_store};
use crate::config::{self, Config};
use crate::feeds;
use crate::ingest::import::Arrival;
use crate::ingest::{self, Envelope};

/// What the MTA said of the client a piped message came from, as given
/// (`--client-ip`, `--helo`).
pub struct Client {
    pub ip: Option<String>,
    pub helo: Option<String>,
}

/// `tidings ingest`: stores the message on stdin and exits with what the
/// MTA acts on (see [`ingest::pipe`]).
pub fn ingest(
    path: Option<&Path>,
    list: Option<String>,
    sender: Option<String>,
    client: Client,
    mut recipients: Vec<String>,
) -> ExitCode {
    // A broken configuration is the operator's fault, not the sender's:
    // the MTA keeps the message and retries.
    let config = match config::load(path) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("tidings: configuration: {error:#}");
            return ExitCode::from(ingest::pipe::EX_TEMPFAIL);
        }
    };
    if recipients.is_empty() {
        if let Ok(recipient) = std::env::var("ORIGINAL_RECIPIENT") {
            recipients.push(recipient);
        }
    }
    // Postfix's local(8) and pipe(8) ($SENDER, ${sender}) say who sent it;
    // an empty sender is the null sender of a bounce.
    let sender = sender.or_else(|| std::env::var("SENDER").ok());
    // Postfix's local(8) exports the client as $CLIENT_ADDRESS and
    // $CLIENT_HELO; pipe(8) passes ${client_address} and ${client_helo}
    // as arguments. "unknown" (a locally submitted message) is no address.
    let client_ip = client
        .ip
        .or_else(|| std::env::var("CLIENT_ADDRESS").ok())
        .and_then(|ip| ip.trim().parse::<std::net::IpAddr>().ok());
    let helo = client
        .helo
        .or_else(|| std::env::var("CLIENT_HELO").ok())
        .unwrap_or_default();
    let envelope = Envelope {
        list_code: list,
        recipients,
    };
    let delivery = ingest::pipe::deliver_from(
        &config,
        &envelope,
        sender.as_deref(),
        client_ip,
        &helo,
        std::io::stdin().lock(),
    );
    if delivery.published {
        start_feed_refresh(path);
    }
    if delivery.exit_code == 0 {
        tracing::info!("{}", delivery.message);
    } else {
        // Postfix quotes this line in the bounce or the deferral reason.
        eprintln!("{}", delivery.message);
    }
    ExitCode::from(delivery.exit_code)
}

/// `tidings import`: every message under `paths`, then the feeds. With
/// `deliver`, the posts go to subscribers as mail that arrives does.
pub fn import(
    config: &Config,
    list: Option<String>,
    deliver: bool,
    paths: &[PathBuf],
) -> anyhow::Result<()> {
    if let Some(code) = &list {
        check_list(config, code)?;
    }
    let mut db = create_store(config)?;
    let started = Instant::now();
    let envelope = Envelope {
        list_code: list,
        recipients: Vec::new(),
    };
    let summary = ingest::import::import(
        config,
        &mut db,
        &envelope,
        paths,
        if deliver {
            Arrival::New
        } else {
            Arrival::Archive
        },
        std::io::stderr().is_terminal(),
    )?;
    // The feeds are written even when the reader of this output has gone.
    let said = write!(
        std::io::stdout().lock(),
        "{}",
        summary.render(started.elapsed().as_secs_f64())
    );
    let feeds = feeds::regenerate_after_ingest(config, &db).context("writing the feeds")?;
    let said = said.and_then(|()| {
        let written = feeds.written.len();
        writeln!(std::io::stdout().lock(), "  feeds written {written:>6}")
    });
    if !summary.unreadable.is_empty() {
        anyhow::bail!(
            "{} source(s) could not be read to the end",
            summary.unreadable.len()
        );
    }
    Ok(said?)
}

/// Once a post is published, its feeds are brought up to date by a
/// detached `tidings feeds --after-ingest`: the MTA has its answer as soon as
/// the post is on disk, and a burst of deliveries shares one rebuild (see
/// `feeds::regenerate_after_ingest`). A failure to start it is only logged:
/// the post is safe, and the next rebuild shows it.
fn start_feed_refresh(config_path: Option<&Path>) {
    let Ok(program) = std::env::current_exe() else {
        tracing::warn!("feeds not refreshed: cannot find the tidings binary");
        return;
    };
    let mut command = std::process::Command::new(program);
    if let Some(path) = config_path {
        command.arg("--config").arg(path);
    }
    command
        .args(["feeds", "--after-ingest"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    if let Err(error) = command.spawn() {
        tracing::warn!(%error, "feeds not refreshed");
    }
}
