//! The subscriber's side of a list: joining with a confirmation (double
//! opt-in), leaving, changing how mail comes, by mail to the list's
//! service addresses and on the web.
//!
//! Every flow runs in the caller's write transaction, and what it sends is
//! queued there too ([`crate::store::outgoing`]), so a subscription and its
//! confirmation, or a departure and its goodbye, happen together or not at
//! all. The rules that protect people:
//! - nobody can subscribe a third party: a subscription takes effect only
//!   when the confirmation sent to that address is answered, by reply or
//!   by the link (a POST), within [`CONFIRM_DAYS`], once;
//! - at most [`MAX_CONFIRMATIONS`] confirmations go to an address a day,
//!   whatever arrives, and at most [`MAX_NOTICES`] notices of any kind to an
//!   address that follows no list;
//! - nothing is ever sent in answer to mail that is itself automatic: a
//!   null sender, `Auto-Submitted` other than `no`, `Precedence` bulk, junk
//!   or list, a `List-Id` or an `X-Loop`, or a message from one of the
//!   site's own addresses ([`automatic`]).

pub mod commands;
pub mod notice;

use std::panic::{catch_unwind, AssertUnwindSafe};

use anyhow::Context;
use mail_parser::{HeaderName, MessageParser};
use serde::Serialize;

use crate::config::{Config, List};
use crate::deliver::MessageKind;
use crate::ingest::route::Route;
use crate::store::{self, mail, outgoing, requests, subscribers, Transaction};
use crate::subscribers::{Mode, Subscriber};
use crate::templates::Templates;
use crate::tokens::{Purpose, Secret};
use commands::Command;
pub use notice::Notice;

/// Days a confirmation stays valid.
pub const CONFIRM_DAYS: i64 = 7;

/// Confirmations sent to one address in a day at most.
pub const MAX_CONFIRMATIONS: usize = 3;

/// Notices of any kind sent in a day to an address that follows no list
/// (answers to commands, links asked for): forged senders make a list an
/// instrument of harassment otherwise.
pub const MAX_NOTICES: usize = 3;

/// Notices in a day to a subscriber.
pub const MAX_NOTICES_SUBSCRIBED: usize = 10;

const DAY: i64 = 86_400;

/// A subscription asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub id: i64,
    pub list_code: String,
    pub address: String,
    pub mode: Mode,
    /// Unix seconds.
    pub expires_at: i64,
    /// Unix seconds, once confirmed.
    pub confirmed_at: Option<i64>,
}

/// How a request came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Mail,
    Web,
    /// The operator's `tidings subscribers add` or `import`.
    Operator,
}

impl Via {
    fn as_str(self) -> &'static str {
        match self {
            Via::Mail => "mail",
            Via::Web => "web",
            Via::Operator => "operator",
        }
    }
}

/// What asking to subscribe did. The web answers all of them alike
/// ("check your mail"), so nobody learns who follows a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Asked {
    /// A confirmation is queued, with this token.
    Sent { token: String },
    /// Already subscribed in that mode: nothing to confirm.
    AlreadySubscribed,
    /// The address had its confirmations for today: nothing sent.
    TooMany,
}

/// What confirming did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Confirmed {
    /// Subscribed (or the mode changed) now.
    Subscribed {
        list: String,
        address: String,
        mode: Mode,
    },
    /// The token was used before: nothing changed.
    AlreadyDone { list: String },
    /// Not a token of ours, for another purpose, expired, or its list is gone.
    Invalid,
}

/// What the flows need besides the transaction.
pub struct Service<'a> {
    pub config: &'a Config,
    pub templates: &'a Templates,
    pub secret: &'a Secret,
    /// Unix seconds.
    pub now: i64,
}

impl Service<'_> {
    /// The site's URL of `path`.
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.config.site.base_url)
    }

    /// The confirmation page of a request.
    pub fn confirm_url(&self, token: &str) -> String {
        self.url(&format!("confirm/{token}"))
    }

    /// The preferences page of a person.
    pub fn preferences_url(&self, person_id: i64) -> String {
        let token = self.secret.sign(Purpose::Preferences, person_id, None);
        self.url(&format!("prefs/{token}"))
    }

    /// Asks `address` to confirm following `list` in `mode`: records the
    /// request and queues the confirmation, unless the address is already
    /// subscribed that way or has had its confirmations for the day.
    pub fn ask(
        &self,
        tx: &Transaction<'_>,
        list: &List,
        address: &str,
        mode: Mode,
        via: Via,
    ) -> anyhow::Result<Asked> {
        let asked = self.request(tx, list, address, mode, via)?;
        if let Asked::Sent { token } = &asked {
            let notice = self.confirmation(list, address, mode, token, &[], None)?;
            outgoing::queue(tx, &notice, self.now)?;
        }
        Ok(asked)
    }

    /// Records a request unless it is needless or one too many; the caller
    /// sends the confirmation.
    fn request(
        &self,
        tx: &Transaction<'_>,
        list: &List,
        address: &str,
        mode: Mode,
        via: Via,
    ) -> anyhow::Result<Asked> {
        if let Some(subscriber) = subscribers::find(tx, &list.code, address)? {
            if subscriber.chosen_mode() == mode {
                return Ok(Asked::AlreadySubscribed);
            }
        }
        if requests::asked_since(tx, address, self.now - DAY)? >= MAX_CONFIRMATIONS {
            return Ok(Asked::TooMany);
        }
        let expires_at = self.now + CONFIRM_DAYS * DAY;
        let id = requests::ask(
            tx,
            &list.code,
            address,
            mode,
            via.as_str(),
            self.now,
            expires_at,
        )?;
        Ok(Asked::Sent {
            token: self.secret.sign(Purpose::Confirm, id, Some(expires_at)),
        })
    }

    /// The confirmation of a request, with the results of the commands
    /// that came with it (by mail), as one message.
    fn confirmation(
        &self,
        list: &List,
        address: &str,
        mode: Mode,
        token: &str,
        results: &[Done],
        replying_to: Option<&str>,
    ) -> anyhow::Result<crate::deliver::NewMessage> {
        let addresses = crate::digest::headers::ListAddresses::new(self.config, list);
        let context = serde_json::json!({
            "address": address,
            "mode": mode.as_str(),
            "token": token,
            "url": self.confirm_url(token),
            "reply_to": addresses.confirm_address(token),
            "days": CONFIRM_DAYS,
            "results": results,
        });
        Notice {
            list,
            to: address,
            template: "confirm",
            context,
            reply_to: Some(addresses.confirm_address(token)),
            replying_to,
        }
        .compose(self)
    }

    /// Confirms the request a token names: subscribes its address, queues
    /// the welcome.
    pub fn confirm(&self, tx: &Transaction<'_>, token: &str) -> anyhow::Result<Confirmed> {
        let confirmed = self.accept(tx, token)?;
        if let Confirmed::Subscribed {
            list,
            address,
            mode,
        } = &confirmed
        {
            let list = self
                .config
                .list(list)
                .context("a confirmed list is configured")?;
            self.welcome(tx, list, address, *mode, None)?;
        }
        Ok(confirmed)
    }

    /// Subscribes the address of the request `token` names, once; the
    /// caller sends the welcome.
    fn accept(&self, tx: &Transaction<'_>, token: &str) -> anyhow::Result<Confirmed> {
        let Ok(id) = self.secret.verify(token, Purpose::Confirm, self.now) else {
            return Ok(Confirmed::Invalid);
        };
        let Some(request) = requests::get(tx, id)? else {
            return Ok(Confirmed::Invalid);
        };
        if request.expires_at < self.now || self.config.list(&request.list_code).is_none() {
            return Ok(Confirmed::Invalid);
        }
        if !requests::confirm(tx, id, self.now)? {
            return Ok(Confirmed::AlreadyDone {
                list: request.list_code,
            });
        }
        subscribers::add(
            tx,
            &request.list_code,
            std::slice::from_ref(&request.address),
            request.mode,
            self.now,
        )?;
        Ok(Confirmed::Subscribed {
            list: request.list_code,
            address: request.address,
            mode: request.mode,
        })
    }

    fn welcome(
        &self,
        tx: &Transaction<'_>,
        list: &List,
        address: &str,
        mode: Mode,
        replying_to: Option<&str>,
    ) -> anyhow::Result<()> {
        let person = subscribers::person(tx, address)?.context("the person just subscribed")?;
        let context = serde_json::json!({
            "address": address,
            "mode": mode.as_str(),
            "prefs_url": self.preferences_url(person.id),
        });
        let notice = Notice {
            list,
            to: address,
            template: "welcome",
            context,
            reply_to: None,
            replying_to,
        }
        .compose(self)?;
        outgoing::queue(tx, &notice, self.now)?;
        Ok(())
    }

    /// Ends a subscription and queues one goodbye; false when it had ended
    /// already (nothing is sent then).
    pub fn leave(&self, tx: &Transaction<'_>, subscriber: &Subscriber) -> anyhow::Result<bool> {
        if !subscribers::unsubscribe(tx, subscriber.id, self.now)? {
            return Ok(false);
        }
        let Some(list) = self.config.list(&subscriber.list_code) else {
            return Ok(true);
        };
        let context = serde_json::json!({
            "address": subscriber.address,
            "subscribe_url": self.url(&format!("lists/{}/subscribe", list.code)),
        });
        let notice = Notice {
            list,
            to: &subscriber.address,
            template: "goodbye",
            context,
            reply_to: None,
            replying_to: None,
        }
        .compose(self)?;
        outgoing::queue(tx, &notice, self.now)?;
        Ok(true)
    }

    /// Mails `address` the link to its preferences page, when it follows a
    /// list and has not had too many notices today; says whether it did.
    /// Asked for on the web, where the answer is the same either way.
    pub fn send_preferences(
        &self,
        tx: &Transaction<'_>,
        list: &List,
        address: &str,
    ) -> anyhow::Result<bool> {
        let Some(person) = subscribers::person(tx, address)? else {
            return Ok(false);
        };
        if subscribers::of_person(tx, person.id)?.is_empty()
            || !self.may_notify(tx, address, true)?
        {
            return Ok(false);
        }
        let context = serde_json::json!({
            "address": address,
            "prefs_url": self.preferences_url(person.id),
        });
        let notice = Notice {
            list,
            to: address,
            template: "prefs",
            context,
            reply_to: None,
            replying_to: None,
        }
        .compose(self)?;
        outgoing::queue(tx, &notice, self.now)?;
        Ok(true)
    }

    /// Whether one more notice may go to `address` today.
    fn may_notify(
        &self,
        tx: &Transaction<'_>,
        address: &str,
        subscribed: bool,
    ) -> store::Result<bool> {
        let sent = outgoing::count_to(tx, address, MessageKind::Notice, self.now - DAY)?;
        let most = if subscribed {
            MAX_NOTICES_SUBSCRIBED
        } else {
            MAX_NOTICES
        };
        Ok(sent < most)
    }

    /// Handles mail to one of `list`'s service addresses (`route`), from
    /// envelope `sender`: keeps it with what was done ([`mail::keep`]) and
    /// queues at most one answer. Returns what was done, for the log.
    pub fn handle_mail(
        &self,
        tx: &Transaction<'_>,
        route: &Route,
        sender: &str,
        content: &[u8],
    ) -> anyhow::Result<String> {
        let outcome = self.answer_mail(tx, route, sender, content)?;
        let list = route_list(route);
        mail::keep(
            tx,
            route.kind().trim_start_matches('-'),
            list,
            sender,
            content,
            &outcome,
            self.now,
        )?;
        Ok(outcome)
    }

    fn answer_mail(
        &self,
        tx: &Transaction<'_>,
        route: &Route,
        sender: &str,
        content: &[u8],
    ) -> anyhow::Result<String> {
        let Some(list) = route_list(route).and_then(|code| self.config.list(code)) else {
            return Ok("ignored: the list is no longer configured".to_string());
        };
        let Some(message) = parse_mail(content) else {
            return Ok("ignored: not a mail message".to_string());
        };
        if let Some(reason) = automatic(self.config, sender, &message) {
            return Ok(format!("ignored: {reason}"));
        }
        let from = message
            .from()
            .and_then(|from| from.first())
            .and_then(|from| from.address())
            .map(str::to_string)
            .unwrap_or_else(|| sender.to_string())
            .to_ascii_lowercase();
        let Some(from) = crate::subscribers::checked_address(&from) else {
            return Ok("ignored: no sender address to answer".to_string());
        };
        let message_id = message.message_id().map(|id| format!("<{id}>"));
        let commands = match route {
            Route::Subscribe { .. } => vec![Command::Subscribe(None)],
            Route::Unsubscribe { .. } => vec![Command::Unsubscribe],
            Route::Confirm { token, .. } => vec![Command::Confirm(token.clone())],
            _ => {
                let subject = message.subject().unwrap_or_default();
                let body = message.body_text(0).unwrap_or_default();
                let found = commands::parse(subject, &body);
                if found.is_empty() {
                    vec![Command::Help]
                } else {
                    found
                }
            }
        };
        self.run_commands(tx, list, &from, &commands, message_id.as_deref())
    }

    /// Runs `commands` from `from` and queues the one answer.
    fn run_commands(
        &self,
        tx: &Transaction<'_>,
        list: &List,
        from: &str,
        commands: &[Command],
        replying_to: Option<&str>,
    ) -> anyhow::Result<String> {
        let mut done = Vec::new();
        let mut asked: Option<(Mode, String)> = None;
        let mut help = false;
        let mut welcome = None;
        let mut left = false;
        for command in commands {
            let subscriber = subscribers::find(tx, &list.code, from)?;
            let result = match command {
                Command::Subscribe(mode) => {
                    let mode = mode.unwrap_or(list.default_mode);
                    match self.request(tx, list, from, mode, Via::Mail)? {
                        Asked::Sent { token } => {
                            asked = Some((mode, token));
                            "confirm"
                        }
                        Asked::AlreadySubscribed => "already_subscribed",
                        Asked::TooMany => return Ok("ignored: too many confirmations today".into()),
                    }
                }
                Command::Unsubscribe => match subscriber {
                    Some(subscriber) => {
                        subscribers::unsubscribe(tx, subscriber.id, self.now)?;
                        left = true;
                        "unsubscribed"
                    }
                    None => "not_subscribed",
                },
                Command::SetMode(mode) => match subscriber {
                    Some(subscriber) => {
                        subscribers::set_mode(tx, subscriber.id, *mode)?;
                        if subscriber.mode.waits_for_digest(*mode) {
                            "mode_after_digest"
                        } else {
                            "mode_set"
                        }
                    }
                    None => "not_subscribed",
                },
                Command::Help => {
                    help = true;
                    "help"
                }
                Command::WhoAmI => "whoami",
                Command::Confirm(token) => match self.accept(tx, token)? {
                    Confirmed::Subscribed { list, mode, .. } => {
                        welcome = Some((list, mode));
                        "confirmed"
                    }
                    Confirmed::AlreadyDone { .. } => "already_confirmed",
                    Confirmed::Invalid => "bad_token",
                },
                Command::Unknown(_) => "unknown",
            };
            done.push(Done {
                command: command_text(command),
                result: result.to_string(),
            });
        }
        let subscribed = subscribers::person(tx, from)?
            .map(|person| subscribers::of_person(tx, person.id))
            .transpose()?
            .unwrap_or_default();
        if !self.may_notify(tx, from, !subscribed.is_empty() || left)? {
            return Ok("answered nothing: the sender had its notices for today".to_string());
        }
        let notice = match (&asked, &welcome) {
            (Some((mode, token)), _) => {
                self.confirmation(list, from, *mode, token, &done, replying_to)?
            }
            _ => {
                let lists: Vec<serde_json::Value> = subscribed
                    .iter()
                    .map(|s| {
                        let name = self.config.list(&s.list_code).map_or(s.list_code.as_str(), |l| l.name.as_str());
                        serde_json::json!({"code": s.list_code, "name": name, "mode": s.chosen_mode().as_str()})
                    })
                    .collect();
                let prefs_url = subscribers::person(tx, from)?
                    .filter(|_| !subscribed.is_empty())
                    .map(|person| self.preferences_url(person.id));
                let context = serde_json::json!({
                    "address": from,
                    "results": done,
                    "help": help,
                    "subscriptions": lists,
                    "prefs_url": prefs_url,
                    "left": left,
                    "welcome": welcome.as_ref().map(|(_, mode)| mode.as_str()),
                    "subscribe_url": self.url(&format!("lists/{}/subscribe", list.code)),
                });
                Notice {
                    list,
                    to: from,
                    template: "reply",
                    context,
                    reply_to: None,
                    replying_to,
                }
                .compose(self)?
            }
        };
        outgoing::queue(tx, &notice, self.now)?;
        let results: Vec<&str> = done.iter().map(|d| d.result.as_str()).collect();
        Ok(format!("answered: {}", results.join(", ")))
    }
}

/// One command and what became of it, for the answer.
#[derive(Debug, Clone, Serialize)]
struct Done {
    /// The command as understood (or the line, when it was not).
    command: String,
    /// The key of its result's label in `mail/LANG/labels.toml`.
    result: String,
}

fn command_text(command: &Command) -> String {
    match command {
        Command::Subscribe(Some(mode)) => format!("subscribe {mode}"),
        Command::Subscribe(None) => "subscribe".into(),
        Command::Unsubscribe => "unsubscribe".into(),
        Command::SetMode(mode) => format!("set mode {mode}"),
        Command::Help => "help".into(),
        Command::WhoAmI => "who am i".into(),
        Command::Confirm(_) => "confirm".into(),
        Command::Unknown(line) => line.chars().take(80).collect(),
    }
}

fn route_list(route: &Route) -> Option<&str> {
    route.list()
}

/// Mail to a service address as mail-parser reads it, or `None` when it is
/// no message. mail-parser 0.11 panics on some MIME trees (a forward of a
/// forward: message/rfc822 right inside message/rfc822, in a multipart);
/// such a message is read for its header alone, which says whether and
/// whom to answer, and its commands are read from the subject.
pub(crate) fn parse_mail(content: &[u8]) -> Option<mail_parser::Message<'_>> {
    let parser = MessageParser::new();
    match catch_unwind(AssertUnwindSafe(|| parser.parse(content))) {
        Ok(message) => message,
        Err(_) => catch_unwind(AssertUnwindSafe(|| parser.parse_headers(content)))
            .ok()
            .flatten(),
    }
}

/// Why a message must not be answered, if it must not: it is automatic, a
/// list's, or one of ours (answering would start a loop).
pub fn automatic(
    config: &Config,
    sender: &str,
    message: &mail_parser::Message<'_>,
) -> Option<&'static str> {
    if sender.is_empty() {
        return Some("a null sender (a bounce or an automatic message)");
    }
    let text = |name: &'static str| {
        message
            .header_raw(name)
            .map(|value| value.trim().to_ascii_lowercase())
    };
    if text("Auto-Submitted").is_some_and(|value| !value.starts_with("no")) {
        return Some("Auto-Submitted says it is automatic");
    }
    if text("Precedence").is_some_and(|value| matches!(value.as_str(), "bulk" | "junk" | "list")) {
        return Some("Precedence says it is bulk, junk or list mail");
    }
    if message.header_raw(HeaderName::ListId).is_some() || text("X-Loop").is_some() {
        return Some("it came from a mailing list");
    }
    let domain = config.site.domain.to_ascii_lowercase();
    let ours = |address: &str| {
        address
            .rsplit_once('@')
            .is_some_and(|(_, host)| host.eq_ignore_ascii_case(&domain))
    };
    let from_ours = message
        .from()
        .into_iter()
        .flat_map(|from| from.iter())
        .filter_map(|from| from.address())
        .any(ours);
    if ours(sender) || from_ours {
        return Some("it is from one of the site's own addresses");
    }
    None
}

#[cfg(test)]
mod tests;
