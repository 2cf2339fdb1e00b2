//! Read-only newsgroups over NNTP (RFC 3977; STARTTLS RFC 4642): every list
//! a group `PREFIX.CODE`, and `PREFIX.all` for all lists, read from the
//! same store as feeds and pages. `command` parses lines (pure), `session`
//! answers them from the store (sans-IO: a line and a connection in, reply
//! bytes out), `listener` is the I/O around it with the mail listeners'
//! limits. Posting is refused (440): contributors post by mail, where
//! moderation applies.

pub mod command;
pub mod listener;
pub mod session;

use crate::config::Config;
use crate::store::newsgroups::ALL;

/// One newsgroup.
#[derive(Debug, Clone)]
pub struct Group {
    /// Its name, e.g. `a-infos.gr`.
    pub name: String,
    /// The list's code, or [`ALL`] for the group of all lists.
    pub code: String,
    /// What LIST NEWSGROUPS says of it, in the list's own language.
    pub description: String,
    /// The list's posting address (none for the group of all lists).
    pub address: Option<String>,
}

/// The groups served and what every session says of the site.
#[derive(Debug, Clone)]
pub struct Newsroom {
    /// The groups, the lists' in the order of lists.toml, then all lists'.
    pub groups: Vec<Group>,
    /// The host named in greetings and Xref fields: the site's domain.
    pub host: String,
    /// Whether STARTTLS is offered (a certificate is configured).
    pub starttls: bool,
}

impl Newsroom {
    /// The groups of `config`'s lists.
    pub fn new(config: &Config, starttls: bool) -> Newsroom {
        let prefix = &config.site.newsgroups_prefix;
        let mut groups: Vec<Group> = config
            .lists
            .iter()
            .map(|list| Group {
                name: format!("{prefix}.{}", list.code),
                code: list.code.clone(),
                description: one_line(&list.description),
                address: Some(list.address.clone()),
            })
            .collect();
        groups.push(Group {
            name: format!("{prefix}.all"),
            code: ALL.to_string(),
            description: one_line(&format!("{}: all lists", config.site.name)),
            address: None,
        });
        Newsroom {
            groups,
            host: config.site.domain.clone(),
            starttls,
        }
    }

    /// The group named `name`.
    pub fn group(&self, name: &str) -> Option<&Group> {
        self.groups.iter().find(|group| group.name == name)
    }

    /// The name of the group of list `code`.
    pub fn name_of(&self, code: &str) -> Option<&str> {
        self.groups
            .iter()
            .find(|group| group.code == code)
            .map(|group| group.name.as_str())
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
