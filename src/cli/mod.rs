//! The command line: clap types in [`args`], one function per command in
//! the file of its group, and [`run`], which dispatches and maps every
//! outcome to output and an exit code.

mod archive;
mod args;
mod bounces;
mod check;
mod digest;
mod feeds;
mod ingest;
mod init;
mod moderate;
mod posts;
mod status;
mod subscribers;

use std::io::{ErrorKind, Write};
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;

pub use args::{
    Cli, Command, LogFormat, ModerateCommand, PostsCommand, QueueCommand, RosterFormat,
    SubscribersCommand,
};

use crate::config::{self, Config, ConfigErrors};
use crate::moderation::Decision;
use crate::store::{self, Connection};

/// Runs the parsed command line.
pub fn run(cli: Cli) -> ExitCode {
    let path = config::locate(cli.config.as_deref());
    let path = path.as_deref();
    match cli.command {
        Command::Serve {
            lmtp_listen,
            smtp_listen,
            http_listen,
            at,
        } => {
            let overrides = crate::serve::Overrides {
                lmtp: lmtp_listen,
                smtp: smtp_listen,
                http: http_listen,
            };
            with_config(path, |config| {
                if let Some(at) = at.as_deref() {
                    crate::clock::start_at(crate::clock::Clock::from_argument(Some(at))?.now());
                }
                crate::serve::run(path.map(Path::to_path_buf), config, overrides)
            })
        }
        Command::Check => check::check(path),
        Command::Ingest {
            list,
            sender,
            client_ip,
            helo,
            recipients,
        } => ingest::ingest(
            path,
            list,
            sender,
            ingest::Client {
                ip: client_ip,
                helo,
            },
            recipients,
        ),
        Command::Import {
            list,
            deliver,
            paths,
        } => with_config(path, |config| {
            ingest::import(&config, list, deliver, &paths)
        }),
        Command::Feeds { after_ingest } => {
            with_config(path, |config| feeds::write(&config, after_ingest))
        }
        Command::Posts {
            show: Some(PostsCommand::Show { id, raw }),
            ..
        } => with_config(path, |config| posts::show(&config, id, raw)),
        Command::Posts {
            show: None,
            list,
            status,
            limit,
            json,
        } => with_config(path, |config| {
            let filter = store::posts::PostFilter {
                list_code: list,
                status,
                limit,
            };
            posts::list(&config, &filter, json)
        }),
        Command::Digest {
            list,
            now,
            dry_run,
            no_deliver,
            at,
        } => with_config(path, |config| {
            let run = digest::Run {
                list,
                force: now,
                dry_run,
                deliver: !no_deliver,
            };
            digest::digest(&config, run, at.as_deref())
        }),
        Command::Queue { action: None } => with_config(path, |config| digest::show_queue(&config)),
        Command::Queue {
            action: Some(QueueCommand::Retry { at }),
        } => with_config(path, |config| digest::retry_queue(&config, at.as_deref())),
        Command::Subscribers { action } => {
            with_config(path, |config| subscribers::subscribers(&config, action))
        }
        Command::Moderate { action } => with_config(path, |config| match action {
            ModerateCommand::List => moderate::list(&config),
            ModerateCommand::Show { id } => moderate::show(&config, id),
            ModerateCommand::Approve { ids, all, list } => {
                let decision = match list {
                    Some(list) => Decision::ApproveInto(list),
                    None => Decision::Approve,
                };
                moderate::decide(&config, &ids, all, &decision)
            }
            ModerateCommand::Reject { ids, all, reason } => {
                moderate::decide(&config, &ids, all, &Decision::Reject(reason))
            }
            ModerateCommand::Expire => moderate::expire(&config),
        }),
        Command::Bounces { days } => with_config(path, |config| bounces::show(&config, days)),
        Command::Site { out } => with_config(path, |config| feeds::site(&config, out)),
        Command::Status => with_config(path, |config| status::status(&config)),
        Command::Init {
            dir,
            domain,
            base_url,
        } => match init::init(&dir, &domain, &base_url) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) if is_broken_pipe(&error) => ExitCode::SUCCESS,
            Err(error) => {
                print_error(&error);
                ExitCode::FAILURE
            }
        },
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            // clap_complete panics when its writer fails: it writes here,
            // and the script goes out as any other output.
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut command, "tidings", &mut script);
            printed(std::io::stdout().lock().write_all(&script))
        }
        Command::Man => {
            let command = <Cli as clap::CommandFactory>::command();
            printed(clap_mangen::Man::new(command).render(&mut std::io::stdout().lock()))
        }
        Command::Backup { file } => with_config(path, |config| archive::backup(&config, &file)),
        Command::Export { list, mbox } => with_config(path, |config| {
            archive::export(&config, list.as_deref(), &mbox)
        }),
    }
}

/// Loads the configuration and runs `command` with it; a broken
/// configuration or a failed command is printed and exits 1. Output cut
/// short by its reader (`tidings posts | head`) is no failure: the command
/// ends quietly, as one killed by SIGPIPE would.
fn with_config(
    path: Option<&Path>,
    command: impl FnOnce(Config) -> anyhow::Result<()>,
) -> ExitCode {
    match config::load(path).and_then(command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) if is_broken_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => {
            print_error(&error);
            ExitCode::FAILURE
        }
    }
}

/// How a command that only prints ends: output cut short by its reader
/// is no failure (see [`with_config`]).
fn printed(written: std::io::Result<()>) -> ExitCode {
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) if error.kind() == ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: writing the output: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Whether `error` comes from a write to a reader that has gone, also
/// when serde_json or csv wrapped the io error (neither gives it as a
/// source).
fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error
        .chain()
        .any(|cause| io_error_kind(cause) == Some(ErrorKind::BrokenPipe))
}

/// The kind of the io error `error` is or wraps.
fn io_error_kind(error: &(dyn std::error::Error + 'static)) -> Option<ErrorKind> {
    if let Some(io) = error.downcast_ref::<std::io::Error>() {
        return Some(io.kind());
    }
    if let Some(json) = error.downcast_ref::<serde_json::Error>() {
        return json.io_error_kind();
    }
    match error.downcast_ref::<csv::Error>().map(csv::Error::kind) {
        Some(csv::ErrorKind::Io(io)) => Some(io.kind()),
        _ => None,
    }
}

/// Prints an error for the operator: each configuration problem on its own
/// lines, anything else with its causes.
fn print_error(error: &anyhow::Error) {
    match error.downcast_ref::<ConfigErrors>() {
        Some(errors) => eprintln!("{errors}"),
        None => eprintln!("error: {error:#}"),
    }
}

/// Opens the store of `config` for an administrator's command, which
/// never makes one: see [`existing_store`].
fn open_store(config: &Config) -> anyhow::Result<Connection> {
    let path = existing_store(config)?;
    store::open(&path).with_context(|| format!("opening the store {}", path.display()))
}

/// Opens the store of `config`, made when there is none: for the commands
/// that take mail in (`import`; `serve` and `ingest` open their own).
fn create_store(config: &Config) -> anyhow::Result<Connection> {
    let path = config.database_path();
    store::open(&path).with_context(|| format!("opening the store {}", path.display()))
}

/// Opens the store of `config` for a command that writes into it (adding
/// subscribers, writing feeds): made when there is none only for a
/// configuration of the operator's (a lists.toml found or given), so a new
/// site can import subscribers and publish its first, empty, feeds before
/// the first start; with the embedded sample, as [`open_store`].
fn open_store_to_write(config: &Config) -> anyhow::Result<Connection> {
    match config.source == config::EMBEDDED_NAME {
        true => open_store(config),
        false => create_store(config),
    }
}

/// Opens the store of `config` as a [`store::Handle`], for the commands
/// that share code with the daemon (digests and the outbox); never makes
/// one.
fn open_handle(config: &Config) -> anyhow::Result<store::Handle> {
    let path = existing_store(config)?;
    store::Handle::open(&path, 1).with_context(|| format!("opening the store {}", path.display()))
}

/// The store of `config`, which must exist: an administrator's command run
/// in the wrong directory would otherwise make an empty store and report
/// success into it. Without a lists.toml (the embedded sample in use) it
/// says on stderr which configuration and store it uses.
fn existing_store(config: &Config) -> anyhow::Result<std::path::PathBuf> {
    let path = config.database_path();
    if config.source == config::EMBEDDED_NAME {
        eprintln!(
            "tidings: no ./lists.toml and no --config: using the embedded sample configuration \
             and the store {}",
            path.display()
        );
    }
    if !path.exists() {
        anyhow::bail!(
            "there is no store {} (configuration {}): give --config with your lists.toml, \
             or run from its directory; `tidings serve`, `ingest` and `import` make a new store",
            path.display(),
            config.source
        );
    }
    Ok(path)
}

/// Fails unless `code` names a list of `config`.
fn check_list(config: &Config, code: &str) -> anyhow::Result<()> {
    if config.list(code).is_none() {
        anyhow::bail!("no list has the code `{code}` in {}", config.source);
    }
    Ok(())
}
