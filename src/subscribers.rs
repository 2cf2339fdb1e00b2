//! Subscribers: who reads each list by email, and how.
//!
//! A person (one address) may follow several lists; each subscription has a
//! [`Mode`]: a digest format, each post as it arrives, or no mail for now.

pub mod roster;

use crate::digest::DigestMode;
use crate::post::named;

/// A mail address as a person gives it (a form, a command, a file), checked
/// and with its domain lowercased; `None` when it is none that mail can be
/// sent to ([`refusal`] says why). The one check of every way in: the web
/// form, mail commands and the operator's commands.
pub fn checked_address(given: &str) -> Option<String> {
    check(given).ok()
}

/// Why `given` is no address a subscriber can have, in words for the
/// person who gave it; empty for one that is.
pub fn refusal(given: &str) -> &'static str {
    check(given).err().unwrap_or("")
}

fn check(given: &str) -> Result<String, &'static str> {
    let given = given.trim();
    let parsed: lettre::Address = given.parse().map_err(|_| "not a mail address")?;
    let (user, domain) = (parsed.user(), parsed.domain());
    if given.len() > 254 {
        return Err("longer than the 254 characters an address may have");
    }
    // Mail to these cannot be sent from here: a domain literal names a
    // host, not a mail domain, and relays refuse it; a quoted local part
    // ("a b"@x) is refused or mangled by the relays and clients between.
    if domain.starts_with('[') {
        return Err("a domain literal ([1.2.3.4]) is no mail domain");
    }
    if !domain.contains('.') {
        return Err("its domain has no dot, so no mail reaches it from outside");
    }
    if user.starts_with('"') {
        return Err("a quoted local part (\"...\"@) is not delivered by the relays between");
    }
    Ok(format!("{user}@{}", domain.to_ascii_lowercase()))
}

/// How a subscriber receives a list.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, clap::ValueEnum, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The MIME digest (RFC 2046).
    Mime,
    /// The plain-text digest (RFC 1153).
    Plain,
    /// The HTML digest with its plain-text alternative.
    Html,
    /// The table of contents with each post's first lines and link.
    Summary,
    /// Each post as it arrives.
    Post,
    /// Nothing for now (subscribed, suspended).
    #[value(name = "nomail")]
    #[serde(rename = "nomail")]
    NoMail,
}

impl Mode {
    /// Every mode.
    pub const ALL: [Mode; 6] = [
        Mode::Mime,
        Mode::Plain,
        Mode::Html,
        Mode::Summary,
        Mode::Post,
        Mode::NoMail,
    ];

    /// The name used in SQL, commands and pages.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Mime => "mime",
            Mode::Plain => "plain",
            Mode::Html => "html",
            Mode::Summary => "summary",
            Mode::Post => "post",
            Mode::NoMail => "nomail",
        }
    }

    /// The digest format of a digest mode.
    pub fn digest(self) -> Option<DigestMode> {
        match self {
            Mode::Mime => Some(DigestMode::Mime),
            Mode::Plain => Some(DigestMode::Plain),
            Mode::Html => Some(DigestMode::Html),
            Mode::Summary => Some(DigestMode::Summary),
            Mode::Post | Mode::NoMail => None,
        }
    }

    /// What the mode sends, for deciding when a change takes effect.
    fn kind(self) -> Kind {
        match self {
            Mode::Post => Kind::Posts,
            Mode::NoMail => Kind::Nothing,
            _ => Kind::Digests,
        }
    }

    /// Whether a change from `self` to `to` waits for the list's next
    /// digest: leaving digests for posts or no mail (the posts pending for
    /// the digest then come in it, one last time), and leaving posts for
    /// digests (the posts of that digest came one by one already). Other
    /// changes take effect at once: another digest format, no mail from
    /// posts, and anything from no mail.
    pub fn waits_for_digest(self, to: Mode) -> bool {
        matches!(
            (self.kind(), to.kind()),
            (Kind::Digests, Kind::Posts | Kind::Nothing) | (Kind::Posts, Kind::Digests)
        )
    }
}

impl From<DigestMode> for Mode {
    fn from(mode: DigestMode) -> Mode {
        match mode {
            DigestMode::Mime => Mode::Mime,
            DigestMode::Plain => Mode::Plain,
            DigestMode::Html => Mode::Html,
            DigestMode::Summary => Mode::Summary,
        }
    }
}

named!(Mode: "delivery mode");

#[derive(PartialEq, Eq)]
enum Kind {
    Digests,
    Posts,
    Nothing,
}

/// A person: one address, whatever lists they follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub id: i64,
    pub address: String,
    pub name: String,
    /// Unix seconds.
    pub created_at: i64,
}

/// A subscriber: one person's subscription to one list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscriber {
    pub id: i64,
    pub list_code: String,
    pub person_id: i64,
    pub address: String,
    pub mode: Mode,
    /// A change waiting for the list's next digest.
    pub next_mode: Option<Mode>,
    /// Unix seconds.
    pub created_at: i64,
}

impl Subscriber {
    /// The mode the subscriber will be in once any waiting change applied.
    pub fn chosen_mode(&self) -> Mode {
        self.next_mode.unwrap_or(self.mode)
    }
}

/// What subscribing an address did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    /// A new subscriber.
    New,
    /// Already subscribed; the mode was updated (or a removed subscriber
    /// came back).
    Updated,
    /// Already subscribed in this mode.
    Unchanged,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_addresses_mail_can_reach_are_taken_and_each_refusal_says_why() {
        assert_eq!(
            checked_address(" Ana@Example.ORG ").as_deref(),
            Some("Ana@example.org")
        );
        assert_eq!(
            checked_address("a.b+list@example.org").as_deref(),
            Some("a.b+list@example.org")
        );
        for (given, why) in [
            ("\"a b\"@example.org", "quoted"),
            ("\"ab\"@example.org", "quoted"),
            ("a@[127.0.0.1]", "literal"),
            ("a@localhost", "dot"),
            ("a@", "not a mail address"),
        ] {
            assert_eq!(checked_address(given), None, "{given}");
            assert!(refusal(given).contains(why), "{given}: {}", refusal(given));
        }
    }

    #[test]
    fn changes_between_digests_posts_and_no_mail_wait_for_the_next_digest() {
        assert!(Mode::Mime.waits_for_digest(Mode::Post));
        assert!(Mode::Summary.waits_for_digest(Mode::NoMail));
        assert!(Mode::Post.waits_for_digest(Mode::Html));
        assert!(!Mode::Mime.waits_for_digest(Mode::Plain));
        assert!(!Mode::Post.waits_for_digest(Mode::NoMail));
        assert!(!Mode::NoMail.waits_for_digest(Mode::Mime));
        assert!(!Mode::NoMail.waits_for_digest(Mode::Post));
        assert_eq!("nomail".parse::<Mode>(), Ok(Mode::NoMail));
        assert_eq!(Mode::Post.digest(), None);
        assert_eq!(Mode::from(DigestMode::Html), Mode::Html);
    }
}
