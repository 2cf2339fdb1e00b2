//! The command line as clap reads it: every command, its flags and its help.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::digest::DigestMode;
use crate::post::Status;
use crate::subscribers::Mode;

/// tidings: a multilingual mailing-list digest and syndication daemon.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    /// The configuration file (default: ./lists.toml, else the embedded sample).
    #[arg(long, global = true, env = "TIDINGS_CONFIG")]
    pub config: Option<PathBuf>,

    /// Log lines for people (human) or for log collectors (json).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Lines for people reading a terminal.
    Human,
    /// One JSON object a line, for journald and log collectors.
    Json,
}

/// A command.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: LMTP and SMTP listeners, the scheduler and the HTTP side.
    Serve {
        /// LMTP listener address, over lists.toml (port 0 picks a free port).
        #[arg(long)]
        lmtp_listen: Option<std::net::SocketAddr>,
        /// SMTP listener address, over lists.toml.
        #[arg(long)]
        smtp_listen: Option<std::net::SocketAddr>,
        /// HTTP listener address, over lists.toml.
        #[arg(long)]
        http_listen: Option<std::net::SocketAddr>,
        /// Run the clock from this time (RFC 3339) on, for tests.
        #[arg(long, hide = true)]
        at: Option<String>,
    },
    /// Check the configuration and print every problem with file:line:column.
    Check,
    /// Show each list: posts, subscribers, the next digest time, the outbox depth.
    Status,
    /// Set up a new service in DIR: a commented lists.toml, the templates to
    /// edit, the systemd unit and a data directory; then print the next
    /// steps (the Postfix lines, the commands that install the unit).
    Init {
        /// The directory (made when missing; files in it are never replaced).
        dir: std::path::PathBuf,
        /// The mail domain of the list addresses.
        #[arg(long, default_value = "lists.example.org")]
        domain: String,
        /// The public URL of the feeds and archive pages.
        #[arg(long, default_value = "http://127.0.0.1:8080/")]
        base_url: String,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell to write the script for.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), e.g. `tidings man > tidings.1`.
    Man,
    /// Write a consistent copy of the store to FILE, while the daemon runs.
    Backup {
        /// Where the copy goes; must not exist.
        file: std::path::PathBuf,
    },
    /// Write the published posts of a list (or of all) as an mbox, each as
    /// it was received, for mutt, Mailman or public-inbox.
    Export {
        /// Only the posts of this list.
        #[arg(long)]
        list: Option<String>,
        /// The mbox file to write (mboxrd: "From " lines in posts quoted).
        #[arg(long)]
        mbox: std::path::PathBuf,
    },
    /// Store one message read on stdin, as an MTA pipe delivers it.
    ///
    /// Exits 0 once stored or held, 65 when the message must bounce, 75 when
    /// the MTA should retry later.
    Ingest {
        /// File the post under this list code when its subject has no tag.
        #[arg(long)]
        list: Option<String>,
        /// The envelope sender (Postfix pipe: ${sender}); defaults to
        /// $SENDER. An empty one is the null sender of a bounce.
        #[arg(long, allow_hyphen_values = true)]
        sender: Option<String>,
        /// The address of the client the MTA received the message from,
        /// checked by SPF when the list verifies (Postfix pipe:
        /// ${client_address}); defaults to $CLIENT_ADDRESS. An empty or
        /// unknown one leaves SPF `none`.
        #[arg(long)]
        client_ip: Option<String>,
        /// The host that client named in HELO/EHLO (Postfix pipe:
        /// ${client_helo}); defaults to $CLIENT_HELO.
        #[arg(long)]
        helo: Option<String>,
        /// Envelope recipient(s); defaults to $ORIGINAL_RECIPIENT.
        /// A list's posting address takes a post, its other addresses are
        /// answered as mail to them; any other address at the domain exits 67.
        recipients: Vec<String>,
    },
    /// Import mbox files, Maildir folders and message files. An archive is
    /// old news: its posts go into the pages, feeds and newsgroups, and to
    /// no subscriber, unless --deliver.
    Import {
        /// File untagged posts sent to no list address under this list code
        /// (for importing one list's archive).
        #[arg(long)]
        list: Option<String>,
        /// Treat the messages as mail just arrived: their posts go into the
        /// lists' next digests and to each post subscriber (for mail kept
        /// while tidings could not take it, not for an archive).
        #[arg(long)]
        deliver: bool,
        /// Files or folders to import.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Write the RSS, Atom, RDF and JSON feeds of every list and of all
    /// lists now, and print the files that changed.
    Feeds {
        /// Rebuild only the feeds whose posts changed, and leave the work to a
        /// rebuild already under way: what `ingest` starts after a post.
        #[arg(long, hide = true)]
        after_ingest: bool,
    },
    /// Write the archive's pages (home, lists, days, months, years, a page
    /// per post, feeds) as static files, and print what changed.
    Site {
        /// Write here instead of [site] site_dir.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Issue the digests that are due and deliver everything queued.
    ///
    /// A list's digest is due at each slot of its digest_schedule, or early
    /// once its pending text passes digest_size_threshold; `--now` issues
    /// one now. Deliveries queued or deferred earlier go out too.
    Digest {
        /// Only this list.
        #[arg(long)]
        list: Option<String>,
        /// Issue now, whatever the schedule says (still none without posts
        /// unless the list sets digest_send_empty).
        #[arg(long)]
        now: bool,
        /// Print the digests that would be issued, one message per format,
        /// as an mbox on stdout, and record nothing.
        #[arg(long)]
        dry_run: bool,
        /// Issue the digests but leave their delivery to a later run.
        #[arg(long)]
        no_deliver: bool,
        /// Take this time (RFC 3339) as now, for numbering and schedules.
        #[arg(long, hide = true)]
        at: Option<String>,
    },
    /// Show the outbox: deliveries per list and state, the oldest deferred,
    /// the last errors.
    Queue {
        #[command(subcommand)]
        action: Option<QueueCommand>,
    },
    /// Subscribers, for administrators: add, remove, list, show, import,
    /// export, forget.
    Subscribers {
        #[command(subcommand)]
        action: SubscribersCommand,
    },
    /// Held posts: list, show, approve or reject them.
    Moderate {
        #[command(subcommand)]
        action: ModerateCommand,
    },
    /// Recent bounces, subscribers' bounce scores, and the subscribers
    /// bounces disabled.
    Bounces {
        /// Bounces of the last DAYS days.
        #[arg(long, default_value_t = 7)]
        days: u32,
    },
    /// List stored posts, or show one.
    Posts {
        #[command(subcommand)]
        show: Option<PostsCommand>,
        /// Only posts of this list.
        #[arg(long)]
        list: Option<String>,
        /// Only posts with this status.
        #[arg(long, value_enum)]
        status: Option<Status>,
        /// Only the newest N.
        #[arg(long)]
        limit: Option<usize>,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
}

/// `tidings moderate`.
#[derive(Debug, Subcommand)]
pub enum ModerateCommand {
    /// Every held post, with why it is held.
    List,
    /// One post, with why it is held and who decided about it.
    Show {
        /// The post's id, as `tidings moderate list` shows it.
        id: i64,
    },
    /// Publish held posts; their feeds are written once.
    Approve {
        /// The posts' ids, as `tidings moderate list` shows them.
        ids: Vec<i64>,
        /// Every held post.
        #[arg(long)]
        all: bool,
        /// Publish them under this list (its code), whatever they were
        /// filed under: for a post no list could take (a language no list
        /// serves) or one filed under the wrong list.
        #[arg(long)]
        list: Option<String>,
    },
    /// Refuse held posts; each sender is told the reason.
    Reject {
        /// The posts' ids, as `tidings moderate list` shows them.
        ids: Vec<i64>,
        /// Every held post.
        #[arg(long)]
        all: bool,
        /// What the senders are told.
        #[arg(long, default_value = "the moderators declined it")]
        reason: String,
    },
    /// Refuse the posts held longer than hold_days, telling their senders.
    Expire,
}

/// `tidings posts show`.
#[derive(Debug, Subcommand)]
pub enum PostsCommand {
    /// Show one post, or its original bytes.
    Show {
        /// The post's id, as `tidings posts` shows it.
        id: i64,
        /// Print the message exactly as it was received.
        #[arg(long)]
        raw: bool,
    },
}

/// `tidings queue retry`.
#[derive(Debug, Subcommand)]
pub enum QueueCommand {
    /// Make every deferred delivery due now and deliver.
    Retry {
        /// Take this time (RFC 3339) as now.
        #[arg(long, hide = true)]
        at: Option<String>,
    },
}

/// `tidings subscribers ...`.
#[derive(Debug, Subcommand)]
pub enum SubscribersCommand {
    /// Subscribe addresses to a list (or change their mode). Each is sent
    /// the list's confirmation and stays unconfirmed until they answer it,
    /// unless --no-confirm.
    Add {
        /// The list (its code, e.g. en).
        #[arg(long)]
        list: String,
        /// The delivery mode.
        #[arg(long, value_enum, default_value_t = Mode::Mime)]
        mode: Mode,
        /// Subscribe at once, asking nobody: only for people who agreed
        /// to it already (an operator's own list).
        #[arg(long)]
        no_confirm: bool,
        /// Addresses; `-` reads one per line from stdin.
        #[arg(required = true)]
        addresses: Vec<String>,
    },
    /// Unsubscribe addresses; their pending deliveries are dropped.
    Remove {
        /// The list (its code, e.g. en).
        #[arg(long)]
        list: String,
        /// Addresses; `-` reads one per line from stdin.
        #[arg(required = true)]
        addresses: Vec<String>,
    },
    /// List subscribers: list, address, mode.
    List {
        /// Only this list.
        #[arg(long)]
        list: Option<String>,
    },
    /// Show a person: their name, and each list they follow or asked to
    /// follow, with mode and state.
    Show {
        /// The person's address.
        address: String,
    },
    /// One digest across several lists for a person who follows them: a
    /// section per list in the order given, a story in several of their
    /// languages once. Those lists then send the person no digest of their
    /// own (each post comes once).
    Combine {
        /// The person's address.
        address: String,
        /// The lists it covers, in order (codes, comma-separated); default:
        /// every list the person follows in a digest mode.
        #[arg(long, value_delimiter = ',')]
        lists: Vec<String>,
        /// Its format.
        #[arg(long, value_enum, default_value_t = DigestMode::Html)]
        mode: DigestMode,
        /// A schedule of [site] combined_schedules (default: the first by
        /// name, `daily` of the shipped ones).
        #[arg(long)]
        schedule: Option<String>,
        /// Stop it: what is still owed goes out at once, and each list
        /// sends its own digest again.
        #[arg(long, conflicts_with_all = ["lists", "schedule"])]
        off: bool,
    },
    /// Import subscribers from a CSV file (address, name, mode, lists) or
    /// from the output of Mailman 3's `mailman members LIST`, in one
    /// transaction. Each is sent the confirmation of each list and stays
    /// unconfirmed until they answer it, unless --no-confirm.
    Import {
        /// The file; `-` reads stdin.
        path: PathBuf,
        /// What the file is.
        #[arg(long, value_enum, default_value_t = RosterFormat::Csv)]
        format: RosterFormat,
        /// The list of rows that name none (required for mailman).
        #[arg(long)]
        list: Option<String>,
        /// The mode of rows that name none (default: the list's default_mode).
        #[arg(long, value_enum)]
        mode: Option<Mode>,
        /// Subscribe at once, asking nobody: only for people who agreed
        /// to it already (an operator's own list).
        #[arg(long)]
        no_confirm: bool,
        /// Say what the import would do, and store and send nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Write current subscribers as CSV (address, name, mode, lists) on
    /// stdout, as `import` reads it; with --address, everything stored
    /// about one person as JSON (a data request).
    Export {
        /// Only this list.
        #[arg(long, conflicts_with = "address")]
        list: Option<String>,
        /// Everything about this address, as JSON.
        #[arg(long)]
        address: Option<String>,
    },
    /// Erase everything stored about a person (GDPR erasure): name,
    /// address, subscriptions, requests, the deliveries and messages to
    /// them, the mail they sent to the service addresses. Their links stop
    /// working. The posts they wrote stay.
    Forget {
        /// The person's address.
        address: String,
    },
    /// Re-enable an address that bounces disabled, on one list or on
    /// every list; its bounces so far no longer count.
    Enable {
        /// Only this list.
        #[arg(long)]
        list: Option<String>,
        /// The subscriber's address.
        address: String,
    },
}

/// The file formats `subscribers import` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RosterFormat {
    /// address, name, mode, lists (a header row names the columns).
    Csv,
    /// What `mailman members LIST` prints: `Name <address>` a line.
    Mailman,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    /// Every command under `command` (itself included) whose about text or
    /// an argument's help is missing, named by its path, e.g.
    /// `tidings subscribers add --list`.
    fn undocumented(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
        let path = match path {
            "" => command.get_name().to_string(),
            _ => format!("{path} {}", command.get_name()),
        };
        if command.get_about().is_none() {
            missing.push(format!("{path}: no about text"));
        }
        for arg in command.get_arguments() {
            let id = arg.get_id().as_str();
            if matches!(id, "help" | "version") {
                continue;
            }
            if arg.get_help().is_none() {
                let name = match arg.get_long() {
                    Some(long) => format!("--{long}"),
                    None => id.to_uppercase(),
                };
                missing.push(format!("{path} {name}: no help"));
            }
        }
        for sub in command.get_subcommands() {
            undocumented(sub, &path, missing);
        }
    }

    #[test]
    fn every_command_and_argument_has_its_help() {
        let mut missing = Vec::new();
        undocumented(&Cli::command(), "", &mut missing);
        assert!(missing.is_empty(), "undocumented:\n{}", missing.join("\n"));
    }

    #[test]
    fn the_help_walk_names_what_lacks_help() {
        let command = clap::Command::new("demo")
            .about("A demo.")
            .arg(clap::Arg::new("bare").long("bare"))
            .subcommand(clap::Command::new("quiet"));
        let mut missing = Vec::new();
        undocumented(&command, "", &mut missing);
        assert_eq!(
            missing,
            ["demo --bare: no help", "demo quiet: no about text"]
        );
    }
}
