//! `tidings subscribers`: the administrator's hand on the subscriber list:
//! add, remove, list, show, import, export, forget.
//!
//! Adding and importing ask each person to confirm, with the confirmation
//! the subscribe service sends ([`Service::ask`]), unless the operator says
//! `--no-confirm`: nobody is subscribed without having agreed to it. An
//! import is one transaction, whatever its size.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::path::Path;

use anyhow::Context;

use super::{check_list, open_store, open_store_to_write, RosterFormat, SubscribersCommand};
use crate::config::Config;
use crate::digest::DigestMode;
use crate::store::{self, people, subscribers, Transaction};
use crate::subscribe::{Asked, Service, Via};
use crate::subscribers::roster::{self, Entry, Problem, Roster};
use crate::subscribers::{checked_address, Added, Mode};
use crate::templates::Templates;
use crate::tokens::Secret;

/// Bad lines printed at most, before "and N more".
const PROBLEMS_SHOWN: usize = 20;

/// `tidings subscribers ...`.
pub fn subscribers(config: &Config, action: SubscribersCommand) -> anyhow::Result<()> {
    match action {
        SubscribersCommand::Add {
            list,
            mode,
            no_confirm,
            addresses,
        } => {
            check_list(config, &list)?;
            let mut entries = Vec::new();
            for (index, given) in addresses_from(addresses)?.into_iter().enumerate() {
                let address = checked_address(&given).with_context(|| {
                    format!(
                        "`{}` cannot be subscribed: {}",
                        given.trim(),
                        crate::subscribers::refusal(&given)
                    )
                })?;
                entries.push(Entry {
                    line: index as u64 + 1,
                    address,
                    name: String::new(),
                    mode: Some(mode),
                    lists: vec![list.clone()],
                });
            }
            subscribe(config, &entries, !no_confirm, false)
        }
        SubscribersCommand::Remove { list, addresses } => {
            check_list(config, &list)?;
            let addresses: Vec<String> = addresses_from(addresses)?
                .iter()
                .map(|given| checked_address(given).unwrap_or_else(|| given.trim().to_string()))
                .collect();
            let mut db = open_store(config)?;
            let now = crate::clock::unix_now();
            let removed = store::transaction(&mut db, |tx| {
                subscribers::remove(tx, &list, &addresses, now)
            })?;
            let mut out = std::io::stdout().lock();
            writeln!(
                out,
                "{list}: {removed} removed, {} were not subscribed",
                addresses.len() - removed
            )?;
            Ok(())
        }
        SubscribersCommand::List { list } => {
            if let Some(code) = &list {
                check_list(config, code)?;
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
            Ok(())
        }
        SubscribersCommand::Show { address } => show(config, &address),
        SubscribersCommand::Combine {
            address,
            lists,
            mode,
            schedule,
            off,
        } => combine(config, &address, lists, mode, schedule, off),
        SubscribersCommand::Import {
            path,
            format,
            list,
            mode,
            no_confirm,
            dry_run,
        } => {
            if let Some(code) = &list {
                check_list(config, code)?;
            }
            if format == RosterFormat::Mailman && list.is_none() {
                anyhow::bail!("`mailman members` output names no list: give --list");
            }
            let text = read_input(&path)?;
            let roster = match format {
                RosterFormat::Csv => roster::read_csv(text.as_bytes()),
                RosterFormat::Mailman => roster::read_mailman(&text),
            };
            let entries = with_defaults(config, roster, list.as_deref(), mode)?;
            subscribe(config, &entries, !no_confirm, dry_run)
        }
        SubscribersCommand::Export {
            list,
            address: None,
        } => {
            if let Some(code) = &list {
                check_list(config, code)?;
            }
            let db = open_store(config)?;
            let rows = people::roster(&db, list.as_deref())?;
            roster::write_csv(std::io::stdout().lock(), rows).context("writing the CSV")?;
            Ok(())
        }
        SubscribersCommand::Export {
            address: Some(address),
            ..
        } => {
            let address = stored_form(&address);
            let db = open_store(config)?;
            let data = people::data_of(&db, &address)?;
            let document = serde_json::json!({ "address": address, "stored": data });
            let mut out = std::io::stdout().lock();
            serde_json::to_writer_pretty(&mut out, &document)?;
            writeln!(out)?;
            Ok(())
        }
        SubscribersCommand::Enable { list, address } => {
            if let Some(code) = &list {
                check_list(config, code)?;
            }
            let address = stored_form(&address);
            let mut db = open_store(config)?;
            let enabled = store::transaction(&mut db, |tx| {
                let mut enabled = Vec::new();
                for subscriber in subscribers::list(tx, list.as_deref())? {
                    if subscriber.address.eq_ignore_ascii_case(&address)
                        && store::bounces::enable(tx, subscriber.id)?
                    {
                        enabled.push(subscriber.list_code);
                    }
                }
                Ok::<_, store::Error>(enabled)
            })?;
            let mut out = std::io::stdout().lock();
            match enabled.is_empty() {
                true => writeln!(out, "{address} was not disabled on any list")?,
                false => writeln!(out, "{address} re-enabled on {}", enabled.join(", "))?,
            }
            Ok(())
        }
        SubscribersCommand::Forget { address } => {
            let address = stored_form(&address);
            let mut db = open_store(config)?;
            let now = crate::clock::unix_now();
            let forgotten = people::erase(&mut db, &address, now)?;
            let mut out = std::io::stdout().lock();
            if !forgotten.anything() {
                writeln!(out, "nothing was stored about {address}")?;
            } else {
                writeln!(
                    out,
                    "forgot {address}: {} person, {} subscriptions, {} requests, \
                     {} digest deliveries, {} post deliveries, {} messages to them, \
                     {} messages from them, {} rows of a digest across lists",
                    forgotten.people,
                    forgotten.subscriptions,
                    forgotten.requests,
                    forgotten.deliveries,
                    forgotten.post_deliveries,
                    forgotten.outgoing,
                    forgotten.mail,
                    forgotten.combined
                )?;
            }
            if forgotten.posts_kept > 0 {
                writeln!(
                    out,
                    "{} posts they wrote are kept (published writing is the archive's)",
                    forgotten.posts_kept
                )?;
            }
            Ok(())
        }
    }
}

/// An address as given on the command line, in the form it is stored in
/// (checked), or as given when it is no address (odd rows can be looked
/// up and erased too).
fn stored_form(given: &str) -> String {
    checked_address(given).unwrap_or_else(|| given.trim().to_string())
}

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

/// The file at `path`, or stdin for `-`.
fn read_input(path: &Path) -> anyhow::Result<String> {
    if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .lock()
            .read_to_string(&mut text)
            .context("reading stdin")?;
        Ok(text)
    } else {
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
    }
}

/// The entries of `roster`, each with a list and a mode (the file's, else
/// `list` and `mode`, else the list's default mode); refuses the whole file
/// when a line is bad or names an unknown list, listing the lines.
fn with_defaults(
    config: &Config,
    mut roster: Roster,
    list: Option<&str>,
    mode: Option<Mode>,
) -> anyhow::Result<Vec<Entry>> {
    for entry in &mut roster.entries {
        if entry.lists.is_empty() {
            match list {
                Some(code) => entry.lists.push(code.to_string()),
                None => roster.problems.push(Problem {
                    line: entry.line,
                    message: "names no list: give --list".into(),
                }),
            }
        }
        for code in &entry.lists {
            if config.list(code).is_none() {
                roster.problems.push(Problem {
                    line: entry.line,
                    message: format!("no list has the code `{code}` in {}", config.source),
                });
            }
        }
        if entry.mode.is_none() {
            entry.mode = mode;
        }
    }
    if roster.problems.is_empty() {
        return Ok(roster.entries);
    }
    roster.problems.sort_by_key(|problem| problem.line);
    for problem in roster.problems.iter().take(PROBLEMS_SHOWN) {
        eprintln!("{problem}");
    }
    if roster.problems.len() > PROBLEMS_SHOWN {
        eprintln!("and {} more", roster.problems.len() - PROBLEMS_SHOWN);
    }
    anyhow::bail!(
        "{} lines could not be imported: nothing was imported",
        roster.problems.len()
    )
}

/// What subscribing did on one list.
#[derive(Debug, Default)]
struct Tally {
    added: usize,
    changed: usize,
    unchanged: usize,
    asked: usize,
    too_many: usize,
}

/// Subscribes each entry to each of its lists, in one transaction: asking
/// each to confirm (`confirm`), or at once. With `dry_run`, does it all and
/// takes it back, and says what it would have done.
fn subscribe(
    config: &Config,
    entries: &[Entry],
    confirm: bool,
    dry_run: bool,
) -> anyhow::Result<()> {
    // The same address twice for a list: the last line counts.
    let mut wanted: HashMap<(String, String), usize> = HashMap::with_capacity(entries.len());
    for (index, entry) in entries.iter().enumerate() {
        for list in &entry.lists {
            wanted.insert((list.clone(), entry.address.to_ascii_lowercase()), index);
        }
    }
    let mut db = open_store_to_write(config)?;
    let now = crate::clock::unix_now();
    let asking = match confirm {
        true => Some((
            Templates::load(&config.site.templates_dir).context("loading the templates")?,
            Secret::load_or_create(&config.site.data_dir)?,
        )),
        false => None,
    };
    let service = asking.as_ref().map(|(templates, secret)| Service {
        config,
        templates,
        secret,
        now,
    });
    let work = |tx: &Transaction<'_>| -> anyhow::Result<BTreeMap<String, Tally>> {
        let mut tallies: BTreeMap<String, Tally> = BTreeMap::new();
        for (index, entry) in entries.iter().enumerate() {
            if !entry.name.is_empty() {
                let person = subscribers::person_id(tx, &entry.address, now)?;
                subscribers::set_name(tx, person, &entry.name)?;
            }
            for code in &entry.lists {
                let key = (code.clone(), entry.address.to_ascii_lowercase());
                if wanted.get(&key) != Some(&index) {
                    continue;
                }
                let list = config.list(code).context("a checked list is configured")?;
                let mode = entry.mode.unwrap_or(list.default_mode);
                let tally = tallies.entry(list.code.clone()).or_default();
                match &service {
                    Some(service) => {
                        match service.ask(tx, list, &entry.address, mode, Via::Operator)? {
                            Asked::Sent { .. } => tally.asked += 1,
                            Asked::AlreadySubscribed => tally.unchanged += 1,
                            Asked::TooMany => tally.too_many += 1,
                        }
                    }
                    None => {
                        let added = subscribers::add(
                            tx,
                            &list.code,
                            std::slice::from_ref(&entry.address),
                            mode,
                            now,
                        )?;
                        match added.first() {
                            Some(Added::New) => tally.added += 1,
                            Some(Added::Updated) => tally.changed += 1,
                            _ => tally.unchanged += 1,
                        }
                    }
                }
            }
        }
        Ok(tallies)
    };
    let tallies = match dry_run {
        true => store::rehearse(&mut db, work)?,
        false => store::transaction(&mut db, work)?,
    };
    let mut out = std::io::stdout().lock();
    if dry_run {
        writeln!(out, "dry run: nothing was stored or sent")?;
    }
    for (list, tally) in &tallies {
        if confirm {
            writeln!(
                out,
                "{list}: {} asked to confirm, {} already subscribed, {} not asked \
                 (they had their confirmations for today)",
                tally.asked, tally.unchanged, tally.too_many
            )?;
        } else {
            writeln!(
                out,
                "{list}: {} added, {} changed, {} already subscribed",
                tally.added, tally.changed, tally.unchanged
            )?;
        }
    }
    Ok(())
}

/// `tidings subscribers show ADDRESS`: the person and each list they
/// follow, left or asked to follow, with mode and state.
fn show(config: &Config, given: &str) -> anyhow::Result<()> {
    let address = stored_form(given);
    let db = open_store(config)?;
    let now = crate::clock::unix_now();
    let person = subscribers::person(&db, &address)?;
    let asked = people::unconfirmed(&db, &address, now)?;
    if person.is_none() && asked.is_empty() {
        anyhow::bail!("nothing is stored about {address}");
    }
    let mut out = std::io::stdout().lock();
    let mut listed = 0;
    let mut current = Vec::new();
    if let Some(person) = &person {
        let name = match person.name.is_empty() {
            true => String::new(),
            false => format!(" ({})", person.name),
        };
        writeln!(
            out,
            "{}{name}, known since {}",
            person.address,
            date(person.created_at)
        )?;
        for following in people::following(&db, person.id)? {
            let mut state = match (following.removed_at, following.next_mode) {
                (Some(at), _) => format!("left {}", date(at)),
                (None, Some(next)) => format!(
                    "subscribed since {}, {next} after the next digest",
                    date(following.confirmed_at)
                ),
                (None, None) => format!("subscribed since {}", date(following.confirmed_at)),
            };
            if let (None, Some(at)) = (following.removed_at, following.disabled_at) {
                state.push_str(&format!(
                    ", disabled by bounces since {} (tidings subscribers enable)",
                    date(at)
                ));
            }
            if following.removed_at.is_none() {
                let chosen = following.next_mode.unwrap_or(following.mode);
                current.push((following.list_code.clone(), chosen));
            }
            writeln!(
                out,
                "  {}\t{}\t{state}",
                following.list_code, following.mode
            )?;
            listed += 1;
        }
    } else {
        writeln!(out, "{address}")?;
    }
    // A request that was answered some other way (the operator's
    // --no-confirm, the preferences page) is no longer waiting.
    let waiting = asked
        .iter()
        .filter(|request| !current.contains(&(request.list_code.clone(), request.mode)));
    for request in waiting {
        writeln!(
            out,
            "  {}\t{}\tunconfirmed: asked {} by {}, until {}",
            request.list_code,
            request.mode,
            date(request.created_at),
            request.via,
            date(request.expires_at)
        )?;
        listed += 1;
    }
    if listed == 0 {
        writeln!(out, "  follows no list")?;
    }
    if let Some(person) = &person {
        if let Some(choice) = store::combined::get(&db, person.id)? {
            writeln!(
                out,
                "  one digest across {} ({}, {})",
                choice.lists.join(", "),
                choice.mode,
                choice.schedule
            )?;
        }
    }
    Ok(())
}

/// `tidings subscribers combine`: chooses (or with `off` ends) one digest
/// across the person's lists.
fn combine(
    config: &Config,
    given: &str,
    lists: Vec<String>,
    mode: DigestMode,
    schedule: Option<String>,
    off: bool,
) -> anyhow::Result<()> {
    let address = stored_form(given);
    let mut db = open_store_to_write(config)?;
    let person = subscribers::person(&db, &address)?
        .with_context(|| format!("{address} follows no list"))?;
    if off {
        let stopped = store::transaction(&mut db, |tx| store::combined::stop(tx, person.id))?;
        let mut out = std::io::stdout().lock();
        match stopped {
            true => writeln!(
                out,
                "{address}: no digest across lists from now on; each list sends its own"
            )?,
            false => writeln!(out, "{address} had no digest across lists")?,
        }
        return Ok(());
    }
    let schedules = &config.site.combined_schedules;
    let schedule = match schedule {
        Some(name) if schedules.contains_key(&name) => name,
        Some(name) => anyhow::bail!(
            "no combined schedule `{name}` in {}: choose one of {}",
            config.source,
            schedules.keys().cloned().collect::<Vec<_>>().join(", ")
        ),
        None => schedules.keys().next().cloned().unwrap_or_default(),
    };
    let following: Vec<_> = subscribers::of_person(&db, person.id)?
        .into_iter()
        .filter(|s| s.mode.digest().is_some())
        .map(|s| s.list_code)
        .collect();
    let lists = if lists.is_empty() {
        config
            .lists
            .iter()
            .map(|l| l.code.clone())
            .filter(|code| following.contains(code))
            .collect()
    } else {
        let mut once: Vec<String> = Vec::new();
        for code in lists {
            check_list(config, &code)?;
            if !following.contains(&code) {
                anyhow::bail!(
                    "{address} gets no digest of {code}: subscribe them in a digest mode first"
                );
            }
            if !once.contains(&code) {
                once.push(code);
            }
        }
        once
    };
    if lists.is_empty() {
        anyhow::bail!("{address} gets no list's digest: there is nothing to combine");
    }
    let now = crate::clock::unix_now();
    store::transaction(&mut db, |tx| {
        store::combined::choose(tx, person.id, &schedule, mode, &lists, now)
    })?;
    writeln!(
        std::io::stdout().lock(),
        "{address}: one digest across {} ({mode}, {schedule})",
        lists.join(", ")
    )?;
    Ok(())
}

/// Unix seconds as a UTC date and time, for people.
fn date(seconds: i64) -> String {
    chrono::DateTime::from_timestamp(seconds, 0)
        .map(|at| at.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|| seconds.to_string())
}
