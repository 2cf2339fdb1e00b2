//! Commands by mail to LIST-request (pure): read from the subject and the
//! first lines of the body, as Mailman reads them.
//!
//! A line holds one command: `subscribe [mode]`, `unsubscribe`, `set mode
//! MODE` (also `set MODE`), `help`, `who am i` (also `whoami`, `info`),
//! `confirm TOKEN`, `end` (nothing after it is read). Quoted lines (`>`)
//! are skipped, a signature (`-- `) ends the commands, and so do three
//! lines in a row that are not commands (the rest is prose, a reply's
//! quote, a footer) or [`MAX_LINES`] lines read.

use crate::subscribers::Mode;

/// Lines of a body read for commands at most.
pub const MAX_LINES: usize = 25;

/// Lines in a row that are not commands before reading stops.
const PROSE: usize = 3;

/// One command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Subscribe the sender, in this mode or the default one.
    Subscribe(Option<Mode>),
    /// Unsubscribe the sender.
    Unsubscribe,
    /// Change the sender's mode.
    SetMode(Mode),
    /// Send the help text.
    Help,
    /// Say what the sender is subscribed to, and how.
    WhoAmI,
    /// Confirm a subscription asked for.
    Confirm(String),
    /// A line that looked like a command but was not understood.
    Unknown(String),
}

/// The commands in a message to LIST-request: the subject first, then the
/// body's first lines. A subject that is no command (often a reply's "Re:
/// ...") is not reported as unknown.
pub fn parse(subject: &str, body: &str) -> Vec<Command> {
    let mut commands = Vec::new();
    if let Some(command) = parse_line(without_reply_prefixes(subject)) {
        if !matches!(command, Command::Unknown(_)) {
            commands.push(command);
        }
    }
    let mut prose = 0;
    for line in body.lines().take(MAX_LINES) {
        let line = line.trim_end();
        if line == "--" || line == "-- " {
            break;
        }
        let line = line.trim();
        if line.is_empty() || line.starts_with('>') {
            continue;
        }
        match parse_line(line) {
            Some(Command::Unknown(text)) => {
                prose += 1;
                if prose >= PROSE {
                    break;
                }
                // Only the first prose lines are worth reporting.
                if prose == 1 {
                    commands.push(Command::Unknown(text));
                }
            }
            Some(command) => {
                prose = 0;
                commands.push(command);
            }
            None => break,
        }
    }
    // An unknown line followed by nothing else is prose after commands.
    if commands.len() > 1 {
        if let Some(Command::Unknown(_)) = commands.last() {
            commands.pop();
        }
    }
    commands
}

/// One line as a command; `None` for `end`.
fn parse_line(line: &str) -> Option<Command> {
    let words: Vec<String> = line
        .split_whitespace()
        .map(|word| {
            word.trim_matches(|c: char| c == '"' || c == '\'')
                .to_lowercase()
        })
        .collect();
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let command = match words.as_slice() {
        ["end"] | ["stop"] => return None,
        ["subscribe" | "join"] => Command::Subscribe(None),
        ["subscribe" | "join", mode] => match mode.parse() {
            Ok(mode) => Command::Subscribe(Some(mode)),
            Err(_) => Command::Unknown(line.to_string()),
        },
        ["unsubscribe" | "leave" | "signoff"] => Command::Unsubscribe,
        ["set", "mode", mode] | ["set", mode] | ["mode", mode] => match mode.parse() {
            Ok(mode) => Command::SetMode(mode),
            Err(_) => Command::Unknown(line.to_string()),
        },
        ["help"] | ["?"] => Command::Help,
        ["who", "am", "i"] | ["whoami"] | ["info"] | ["who"] => Command::WhoAmI,
        ["confirm", token] => Command::Confirm(token.to_string()),
        _ => Command::Unknown(line.to_string()),
    };
    Some(command)
}

/// A subject without the `Re:`, `Fwd:` and like prefixes mail clients add.
fn without_reply_prefixes(subject: &str) -> &str {
    let mut rest = subject.trim();
    loop {
        let lower = rest.to_ascii_lowercase();
        let prefix = [
            "re:", "aw:", "sv:", "fw:", "fwd:", "vs:", "odp:", "res:", "rif:",
        ]
        .iter()
        .find(|prefix| lower.starts_with(*prefix));
        match prefix {
            Some(prefix) => rest = rest[prefix.len()..].trim_start(),
            None => return rest,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_subject_and_the_first_body_lines_hold_commands() {
        assert_eq!(
            parse("subscribe plain", ""),
            [Command::Subscribe(Some(Mode::Plain))]
        );
        assert_eq!(
            parse("", "set mode nomail\r\nwho am i\r\n"),
            [Command::SetMode(Mode::NoMail), Command::WhoAmI]
        );
        assert_eq!(
            parse("Re: confirm abc123", ""),
            [Command::Confirm("abc123".into())]
        );
        assert_eq!(parse("UNSUBSCRIBE", ""), [Command::Unsubscribe]);
    }

    #[test]
    fn quotes_signatures_and_prose_end_or_skip_the_commands() {
        let body = "help\n> unsubscribe\n\nsubscribe\n-- \nunsubscribe\n";
        assert_eq!(parse("", body), [Command::Help, Command::Subscribe(None)]);
        let prose = "Hello, please add me.\nThanks a lot!\nMaria\nunsubscribe\n";
        assert_eq!(
            parse("", prose),
            [Command::Unknown("Hello, please add me.".into())]
        );
        let end = "whoami\nend\nunsubscribe\n";
        assert_eq!(parse("", end), [Command::WhoAmI]);
        // Prose after commands is not reported.
        assert_eq!(
            parse("", "subscribe\nThanks!\n"),
            [Command::Subscribe(None)]
        );
    }

    #[test]
    fn a_reply_subject_is_not_a_command_and_not_an_error() {
        assert_eq!(
            parse("Re: your digest", "subscribe html\n"),
            [Command::Subscribe(Some(Mode::Html))]
        );
        assert_eq!(
            parse("", "set mode weekly\n"),
            [Command::Unknown("set mode weekly".into())]
        );
    }
}
