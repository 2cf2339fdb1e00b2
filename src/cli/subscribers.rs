//! `tidings subscribers`: the administrator's hand on the subscriber list.

use std::io::Write;
use std::str::FromStr;

use anyhow::Context;

use super::{check_list, open_store, SubscribersCommand};
use crate::config::Config;
use crate::store::{self, subscribers};
use crate::subscribers::Added;

/// Addresses from the command line, `-` meaning one per line on stdin.
fn addresses_from(arguments: Vec<String>) -> anyhow::Result<Vec<String>> {
    use std::io::BufRead;
    let mut addresses = Vec::new();
    for argument in arguments {
        if argument == "-" {
            for line in std::io::stdin().lock().lines() {
                let line = line.context("reading addresses from stdin")?;
                let line = line.trim();
                if !line.is_empty() && !line.starts_with('#') {
                    addresses.push(line.to_string());
                }
            }
        } else {
            addresses.push(argument);
        }
    }
    Ok(addresses)
}

/// `tidings subscribers add|remove|list`.
pub fn subscribers(config: &Config, action: SubscribersCommand) -> anyhow::Result<()> {
    let check_list = |code: &str| check_list(config, code);
    match action {
        SubscribersCommand::Add {
            list,
            mode,
            addresses,
        } => {
            check_list(&list)?;
            let mut entries = Vec::new();
            for address in addresses_from(addresses)? {
                let parsed = lettre::Address::from_str(&address)
                    .map_err(|e| anyhow::anyhow!("`{address}` is not a mail address: {e}"))?;
                let address = format!("{}@{}", parsed.user(), parsed.domain().to_ascii_lowercase());
                entries.push(address);
            }
            let mut db = open_store(config)?;
            let now = crate::clock::unix_now();
            let added = store::transaction(&mut db, |tx| {
                subscribers::add(tx, &list, &entries, mode, now)
            })?;
            let count = |kind: Added| added.iter().filter(|a| **a == kind).count();
            println!(
                "{list}: {} added, {} changed, {} already subscribed",
                count(Added::New),
                count(Added::Updated),
                count(Added::Unchanged)
            );
        }
        SubscribersCommand::Remove { list, addresses } => {
            check_list(&list)?;
            let addresses = addresses_from(addresses)?;
            let mut db = open_store(config)?;
            let now = crate::clock::unix_now();
            let removed = store::transaction(&mut db, |tx| {
                subscribers::remove(tx, &list, &addresses, now)
            })?;
            println!(
                "{list}: {removed} removed, {} were not subscribed",
                addresses.len() - removed
            );
        }
        SubscribersCommand::List { list } => {
            if let Some(code) = &list {
                check_list(code)?;
            }
            let db = open_store(config)?;
            let mut out = std::io::stdout().lock();
            for subscriber in subscribers::list(&db, list.as_deref())? {
                writeln!(
                    out,
                    "{}\t{}\t{}",
                    subscriber.list_code,
                    subscriber.address,
                    subscriber.mode.as_str()
                )?;
            }
        }
    }
    Ok(())
}
