//! Who may post, and what becomes of the rest: loop screening, the posting
//! policy, the per-sender rate limit, the moderators' notices, and their
//! decisions (by mail to `LIST-owner+approve-TOKEN@` /
//! `LIST-owner+reject-TOKEN@`, or `tidings moderate`).
//!
//! Every way in that takes a post for a list (the pipe, LMTP, SMTP) goes
//! through [`take`] in its write transaction: [`screen`] refuses what would
//! start a loop (mail from our own addresses, carrying our List-Id or
//! X-Loop, or with a null envelope sender), then [`apply_policy`] holds what
//! the list's `posting` does not publish and floods past
//! `max_posts_per_hour`, then the post is committed and, when held, its
//! moderators are told in the same transaction. Importing an archive files
//! what was published elsewhere and takes no part in this.
//!
//! A held post waits `hold_days` for a moderator; then [`expire`] refuses
//! it and tells its sender (the daemon runs it at start and every hour,
//! `tidings moderate expire` on demand). A post no list can take (a tag no
//! list serves) is held without a list and shown to the moderators of the
//! list it was sent to; a moderator files it under a list when approving
//! it ([`Decision::ApproveInto`]).
//!
//! A decision is taken once: it applies only to a held post ([`posts::decide`]
//! changes nothing otherwise), so a replayed approval does nothing, and a
//! token is an HMAC over the post's id for one purpose ([`Purpose::Approve`],
//! [`Purpose::Reject`]) expiring with the hold.

use anyhow::Context;
use mail_parser::{HeaderName, MessageParser};

use crate::config::{Config, List, Posting};
use crate::digest::headers::ListAddresses;
use crate::ingest::route::{route, Route};
use crate::ingest::{commit_and_hand_out, Outcome};
use crate::post::{NewPost, Status, StoredPost};
use crate::store::{self, mail, outgoing, posts, subscribers, Transaction};
use crate::subscribe::{automatic, parse_mail, Notice, Service};
use crate::tokens::Purpose;

const DAY: i64 = 86_400;
const HOUR: i64 = 3_600;

/// The reason of every post refused as a loop begins so, for metrics.
pub const LOOP: &str = "loop: ";

/// Lines of a held post's text quoted in the moderators' notice.
const FIRST_LINES: usize = 12;

/// Screens, applies the policy to, and commits one post that arrived by
/// mail from envelope `sender` (`None` when the way in does not know it);
/// when it is newly held, queues its moderators' notice. Returns what
/// became of it, with the post as stored.
pub fn take(
    tx: &Transaction<'_>,
    service: &Service<'_>,
    mut post: NewPost,
    sender: Option<&str>,
) -> anyhow::Result<(Outcome, NewPost)> {
    screen(service.config, &mut post, sender);
    apply_policy(tx, service.config, &mut post, service.now)?;
    let outcome = commit_and_hand_out(tx, std::slice::from_ref(&post), service.now)?
        .pop()
        .context("the store gave no outcome")?;
    if let Outcome::Held { id, reason } = &outcome {
        notify_moderators(tx, service, *id, &post, reason)?;
    }
    Ok((outcome, post))
}

/// Refuses a post that would start a loop (pure): from one of our own
/// addresses (a list, -request, -bounces, -owner...), carrying one of our
/// lists' List-Id or our X-Loop, or sent with a null envelope sender (a
/// bounce or an automatic reply, RFC 5321 4.5.5). The post keeps its bytes,
/// rejected with the reason.
pub fn screen(config: &Config, post: &mut NewPost, sender: Option<&str>) {
    if post.status == Status::Rejected {
        return;
    }
    if let Some(reason) = loop_reason(config, post, sender) {
        post.post.status = Status::Rejected;
        post.post.reason = Some(format!("{LOOP}{reason}"));
    }
}

fn loop_reason(config: &Config, post: &NewPost, sender: Option<&str>) -> Option<&'static str> {
    if sender.is_some_and(|sender| sender.trim().is_empty()) {
        return Some(
            "a null envelope sender (a bounce or an automatic reply) to a posting address",
        );
    }
    let ours = |address: &str| {
        route(config, address).is_ok_and(|route| !matches!(route, Route::Postmaster))
    };
    if ours(&post.author_address) || sender.is_some_and(ours) {
        return Some("sent from one of the site's own addresses");
    }
    let headers = post
        .raw
        .as_deref()
        .and_then(|raw| MessageParser::new().parse_headers(raw))?;
    let domain = config.site.domain.to_ascii_lowercase();
    if let Some(list_id) = headers.header_raw(HeaderName::ListId) {
        let list_id = list_id.to_ascii_lowercase();
        let our_ids = config
            .lists
            .iter()
            .map(|list| ListAddresses::new(config, list).list_id);
        if our_ids
            .into_iter()
            .any(|id| list_id.contains(&format!("<{id}>")))
        {
            return Some("it carries the List-Id of one of our lists");
        }
    }
    if headers
        .header_values("X-Loop")
        .filter_map(|value| value.as_text())
        .any(|value| value.to_ascii_lowercase().contains(&domain))
    {
        return Some("it carries our X-Loop");
    }
    None
}

/// Holds a post its list does not publish as it is: by the list's
/// `posting` (editors and moderators are always published), or for a
/// flood from one sender past `max_posts_per_hour`.
pub fn apply_policy(
    tx: &Transaction<'_>,
    config: &Config,
    post: &mut NewPost,
    now: i64,
) -> store::Result<()> {
    if post.status != Status::Published {
        return Ok(());
    }
    let Some(list) = post.list_code.as_deref().and_then(|code| config.list(code)) else {
        return Ok(());
    };
    let author = post.author_address.to_ascii_lowercase();
    if list.editors.contains(&author) || list.moderators.contains(&author) {
        return Ok(());
    }
    let most = config.site.max_posts_per_hour;
    let held = if most > 0
        && posts::count_from(tx, &post.author_address, now - HOUR)? >= most as u64
    {
        Some(format!(
            "rate limit: {most} posts or more from this sender in the last hour (max_posts_per_hour)"
        ))
    } else {
        match list.posting {
            Posting::Open => None,
            Posting::Members => subscribers::find(tx, &list.code, &author)?
                .is_none()
                .then(|| "members only: the sender is not subscribed to the list".to_string()),
            Posting::Moderated => {
                Some("moderated list: every post waits for a moderator".to_string())
            }
        }
    };
    if let Some(reason) = held {
        post.post.status = Status::Held;
        post.post.reason = Some(reason);
    }
    Ok(())
}

/// The list a held post would be published in, for its notice and tokens.
fn list_of<'a>(config: &'a Config, post: &crate::post::Post) -> Option<&'a List> {
    post.list_code.as_deref().and_then(|code| config.list(code))
}

/// The day a held post expires: `hold_days` after its arrival.
fn expiry(config: &Config, received_at: i64) -> i64 {
    received_at + config.site.hold_days * DAY
}

/// The approval and rejection tokens of held post `id`.
pub fn tokens(service: &Service<'_>, id: i64, received_at: i64) -> (String, String) {
    let expires = Some(expiry(service.config, received_at));
    (
        service.secret.sign(Purpose::Approve, id, expires),
        service.secret.sign(Purpose::Reject, id, expires),
    )
}

/// Queues, for each moderator of the post's list, a notice of held post
/// `id`: its subject, sender, language, why it is held, its first lines,
/// and how to act (reply to approve, write to the reject address, or the
/// command). A post held without a list (no list serves its language) is
/// shown to the moderators of the list it was sent to; one sent to none is
/// only listed by `tidings moderate list`.
fn notify_moderators(
    tx: &Transaction<'_>,
    service: &Service<'_>,
    id: i64,
    post: &NewPost,
    reason: &str,
) -> anyhow::Result<()> {
    // A post no list took is shown to the moderators of the list it was
    // sent to, whose approval publishes it there.
    let addressed = || {
        let raw = post.raw.as_deref()?;
        addressed_list(service.config, &MessageParser::new().parse_headers(raw)?)
    };
    let Some(list) = list_of(service.config, post).or_else(addressed) else {
        return Ok(());
    };
    let moderators = match list.moderators.is_empty() {
        true => vec![service.config.site.operator.clone()],
        false => list.moderators.clone(),
    };
    let (approve, reject) = tokens(service, id, post.received_at);
    let addresses = ListAddresses::new(service.config, list);
    let (local, domain) = addresses
        .owner
        .rsplit_once('@')
        .context("an owner address has a domain")?;
    let approve_address = format!("{local}+approve-{approve}@{domain}");
    let reject_address = format!("{local}+reject-{reject}@{domain}");
    let first_lines: Vec<&str> = post.body.lines().take(FIRST_LINES).collect();
    for moderator in &moderators {
        let context = serde_json::json!({
            "address": moderator,
            "id": id,
            "subject": post.subject,
            "sender": post.author_address,
            "sender_name": post.author_name,
            "lang": post.lang,
            "reason": reason,
            "first_lines": first_lines,
            "approve_address": approve_address,
            "reject_address": reject_address,
            "days": service.config.site.hold_days,
        });
        let notice = Notice {
            list,
            to: moderator,
            template: "held",
            context,
            reply_to: Some(approve_address.clone()),
            replying_to: None,
        }
        .compose(service)?;
        outgoing::queue(tx, &notice, service.now)?;
    }
    Ok(())
}

/// A moderator's decision about a held post.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Publish it under the list it was filed under.
    Approve,
    /// Publish it under this list (its code), whatever it was filed under:
    /// the moderator's choice for a post no list could take.
    ApproveInto(String),
    /// Refuse it; the sender is told this reason.
    Reject(String),
}

/// What a decision did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decided {
    /// Published under this list.
    Published { list: String },
    /// Refused (the sender told, unless the post was automatic).
    Rejected,
    /// No such post, or not held (decided before): nothing changed.
    NotHeld,
    /// Held without a list (language unknown), or the list named is not
    /// configured: it cannot be published so; nothing changed.
    NoList,
}

/// Applies `decision` by `by` to held post `id`, once: records who and
/// when with the post, and tells the sender of a refused post why.
pub fn decide(
    tx: &Transaction<'_>,
    service: &Service<'_>,
    id: i64,
    decision: &Decision,
    by: &str,
) -> anyhow::Result<Decided> {
    let Some(post) = posts::get(tx, id)? else {
        return Ok(Decided::NotHeld);
    };
    if post.status != Status::Held {
        return Ok(Decided::NotHeld);
    }
    match decision {
        Decision::Approve | Decision::ApproveInto(_) => {
            let chosen = match decision {
                Decision::ApproveInto(code) => service.config.list(code),
                _ => list_of(service.config, &post),
            };
            let Some(list) = chosen else {
                return Ok(Decided::NoList);
            };
            if post.list_code.as_deref() != Some(list.code.as_str()) {
                // A list for every language takes the post's own; any other
                // publishes in its language.
                let lang = match list.catch_all {
                    true => post.lang.clone().or_else(|| post.tag.clone()),
                    false => None,
                }
                .unwrap_or_else(|| list.lang.clone());
                posts::refile(tx, id, &list.code, &lang)?;
            }
            if !posts::decide(tx, id, Status::Published, None, by, service.now)? {
                return Ok(Decided::NotHeld);
            }
            Ok(Decided::Published {
                list: list.code.clone(),
            })
        }
        Decision::Reject(reason) => {
            let stored = format!("rejected by a moderator: {reason}");
            if !posts::decide(tx, id, Status::Rejected, Some(&stored), by, service.now)? {
                return Ok(Decided::NotHeld);
            }
            tell_sender(tx, service, &post, reason)?;
            Ok(Decided::Rejected)
        }
    }
}

/// Tells the sender of a refused post why, unless the post was automatic
/// or from nobody (a null sender, Auto-Submitted, a list's...), whom no
/// answer may reach, and only to an address that may have a notice today.
fn tell_sender(
    tx: &Transaction<'_>,
    service: &Service<'_>,
    post: &StoredPost,
    reason: &str,
) -> anyhow::Result<bool> {
    let Some(to) = crate::subscribers::checked_address(&post.author_address.to_ascii_lowercase())
    else {
        return Ok(false);
    };
    let raw = posts::raw(tx, post.id)?.unwrap_or_default();
    let Some(message) = MessageParser::new().parse_headers(&raw) else {
        return Ok(false);
    };
    if automatic(service.config, &to, &message).is_some() {
        return Ok(false);
    }
    // A post no list took is answered by the list it was sent to.
    let config = service.config;
    let Some(list) = list_of(config, post)
        .or_else(|| addressed_list(config, &message))
        .or_else(|| config.lists.iter().find(|list| list.catch_all))
        .or_else(|| config.lists.first())
    else {
        return Ok(false);
    };
    let context = serde_json::json!({
        "address": to,
        "subject": post.subject,
        "reason": reason,
        "days": service.config.site.hold_days,
    });
    let notice = Notice {
        list,
        to: &to,
        template: "rejected",
        context,
        reply_to: Some(ListAddresses::new(service.config, list).owner),
        replying_to: post.message_id.as_deref(),
    }
    .compose(service)?;
    outgoing::queue(tx, &notice, service.now)?;
    Ok(true)
}

/// Whether stored post `id` was delivered or addressed to `list` first of
/// our lists, as its moderators' notice was.
fn addressed_to(tx: &Transaction<'_>, config: &Config, id: i64, list: &str) -> store::Result<bool> {
    let raw = posts::raw(tx, id)?.unwrap_or_default();
    Ok(MessageParser::new()
        .parse_headers(&raw)
        .and_then(|message| addressed_list(config, &message))
        .is_some_and(|addressed| addressed.code == list))
}

/// The first of our lists a message was delivered or addressed to
/// (Delivered-To, X-Original-To, To, Cc).
fn addressed_list<'a>(config: &'a Config, message: &mail_parser::Message<'_>) -> Option<&'a List> {
    let delivered = ["Delivered-To", "X-Original-To"]
        .into_iter()
        .find_map(|name| {
            message
                .header_values(name)
                .filter_map(|value| value.as_text())
                .find_map(|address| config.list_by_address(address))
        });
    delivered.or_else(|| {
        [message.to(), message.cc()]
            .into_iter()
            .flatten()
            .flat_map(|addresses| addresses.iter())
            .filter_map(|address| address.address())
            .find_map(|address| config.list_by_address(address))
    })
}

/// Refuses every post held longer than `hold_days`, telling each sender;
/// returns how many.
pub fn expire(tx: &Transaction<'_>, service: &Service<'_>) -> anyhow::Result<usize> {
    let days = service.config.site.hold_days;
    let before = service.now - days * DAY;
    let mut expired = 0;
    for id in posts::held_before(tx, before)? {
        let Some(post) = posts::get(tx, id)? else {
            continue;
        };
        let reason = format!("no moderator decided within {days} days");
        let stored = format!("expired: {reason}");
        if posts::decide(
            tx,
            id,
            Status::Rejected,
            Some(&stored),
            "expiry",
            service.now,
        )? {
            tell_sender(tx, service, &post, &reason)?;
            expired += 1;
        }
    }
    Ok(expired)
}

/// Handles a moderator's mail to `LIST-owner+approve-TOKEN@` or
/// `+reject-TOKEN@` (`route`) from envelope `sender`: keeps it with what
/// was done, and acts when the token is ours, for this action, unexpired,
/// and its post is still held in this list. Automatic mail (an
/// auto-reply) is never acted on. Returns what was done, and the list
/// whose feeds changed when a post was published.
pub fn handle_mail(
    tx: &Transaction<'_>,
    service: &Service<'_>,
    route: &Route,
    sender: &str,
    content: &[u8],
) -> anyhow::Result<(String, Option<String>)> {
    let (outcome, published) = answer_mail(tx, service, route, sender, content)?;
    mail::keep(
        tx,
        "moderate",
        route.list(),
        sender,
        content,
        &outcome,
        service.now,
    )?;
    Ok((outcome, published))
}

fn answer_mail(
    tx: &Transaction<'_>,
    service: &Service<'_>,
    route: &Route,
    sender: &str,
    content: &[u8],
) -> anyhow::Result<(String, Option<String>)> {
    let Route::Moderate {
        list,
        approve,
        token,
    } = route
    else {
        return Ok(("ignored: not a moderator's address".into(), None));
    };
    let Some(message) = parse_mail(content) else {
        return Ok(("ignored: not a mail message".into(), None));
    };
    if let Some(reason) = automatic(service.config, sender, &message) {
        return Ok((format!("ignored: {reason}"), None));
    }
    let purpose = if *approve {
        Purpose::Approve
    } else {
        Purpose::Reject
    };
    let Ok(id) = service.secret.verify(token, purpose, service.now) else {
        return Ok(("ignored: not a valid moderation token".into(), None));
    };
    // A post no list took was shown to this list's moderators (the list
    // it was sent to): approved, it is published here.
    let unfiled = match posts::get(tx, id)? {
        Some(post) if post.list_code.as_deref() == Some(list.as_str()) => false,
        Some(post) if post.list_code.is_none() && addressed_to(tx, service.config, id, list)? => {
            true
        }
        _ => return Ok(("ignored: the token names no post of this list".into(), None)),
    };
    let by = message
        .from()
        .and_then(|from| from.first())
        .and_then(|from| from.address())
        .unwrap_or(sender)
        .to_ascii_lowercase();
    let decision = if *approve && unfiled {
        Decision::ApproveInto(list.clone())
    } else if *approve {
        Decision::Approve
    } else {
        Decision::Reject(reason_in(&message.body_text(0).unwrap_or_default()))
    };
    Ok(match decide(tx, service, id, &decision, &by)? {
        Decided::Published { list } => (format!("approved post {id}"), Some(list)),
        Decided::Rejected => (format!("rejected post {id}"), None),
        Decided::NotHeld => (format!("ignored: post {id} is no longer held"), None),
        Decided::NoList => (format!("ignored: post {id} has no list"), None),
    })
}

/// The reason a moderator gave in a rejection: the first lines of the
/// reply that are neither quoted nor a signature, else a plain one.
fn reason_in(body: &str) -> String {
    let lines: Vec<&str> = body
        .lines()
        .map(str::trim)
        .take_while(|line| *line != "--")
        .filter(|line| !line.is_empty() && !line.starts_with('>'))
        .take(5)
        .collect();
    match lines.is_empty() {
        true => "the moderators declined it".to_string(),
        false => lines.join(" ").chars().take(500).collect(),
    }
}
