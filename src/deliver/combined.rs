//! Issuing the digests across lists that are due: for each person who
//! chose one (and whose schedule's slot came), the lists' digests they are
//! owed ([`store::combined`]) become one message
//! ([`crate::digest::combined`]), queued like any single message in the
//! transaction that takes those digests off what they are owed.
//!
//! Each message is made for its person: its sections, their order and the
//! links to leave each list are theirs. A person who stopped choosing it
//! gets what they were still owed at once, in the format of their first
//! owed subscription.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};

use super::{MessageKind, NewMessage};
use crate::config::{Config, List};
use crate::digest::combined::{self, Combined, Part};
use crate::digest::headers::{self, ListAddresses};
use crate::digest::{render_body, DigestMode, PendingPost};
use crate::post::Status;
use crate::store::combined::{Choice, Owed};
use crate::store::{self, digests, outgoing, posts, subscribers, Handle};
use crate::subscribers::Mode;
use crate::templates::Templates;
use crate::tokens::{Purpose, Secret};

/// One digest across lists queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    pub address: String,
    /// The codes of its sections, in order.
    pub lists: Vec<String>,
    pub posts: usize,
}

/// The latest slot of `schedule` at or before `now`, in Unix seconds.
fn latest_slot(config: &Config, schedule: &str, now: DateTime<Utc>) -> Option<i64> {
    let schedules = &config.site.combined_schedules;
    // A schedule the configuration no longer names: its first one.
    let chosen = schedules
        .get(schedule)
        .or_else(|| schedules.values().next())?;
    let just_after = (now + Duration::seconds(1)).with_timezone(&config.site.timezone);
    chosen
        .schedule
        .after(&just_after)
        .next_back()
        .map(|slot| slot.timestamp())
        .filter(|&slot| slot <= now.timestamp())
}

/// Queues every digest across lists due at `now` (all of them, owed
/// anything, with `force`). Blocks on the store: call it outside the
/// runtime.
pub fn issue_due(
    config: &Config,
    store: &Handle,
    templates: &Templates,
    now: DateTime<Utc>,
    force: bool,
) -> anyhow::Result<Vec<Queued>> {
    let (choices, unchosen) = store.blocking_read(|db| {
        Ok::<_, store::Error>((
            store::combined::all(db)?,
            store::combined::owed_without_choice(db)?,
        ))
    })?;
    let mut due: Vec<Due> = Vec::new();
    for choice in choices {
        let slot = latest_slot(config, &choice.schedule, now);
        let new_slot = slot.filter(|&slot| slot > choice.last_slot);
        if force || new_slot.is_some() {
            due.push(Due {
                person_id: choice.person_id,
                choice: Some(choice),
                slot: new_slot,
            });
        }
    }
    due.extend(unchosen.into_iter().map(|person_id| Due {
        person_id,
        choice: None,
        slot: None,
    }));
    if due.is_empty() {
        return Ok(Vec::new());
    }
    let run = Run {
        config,
        store,
        templates,
        secret: Secret::load_or_create(&config.site.data_dir)?,
        now,
    };
    // One person's digest that cannot be made (a template, the store) is
    // logged and tried again at the next run; the others go on.
    let mut queued = Vec::new();
    for due in due {
        let person_id = due.person_id;
        match issue_one(&run, due) {
            Ok(sent) => queued.extend(sent),
            Err(error) => tracing::error!(
                person = person_id,
                "the digest across lists not issued: {error:#}"
            ),
        }
    }
    Ok(queued)
}

/// A person whose digest across lists is due: by their choice at a new
/// `slot` of its schedule (or forced), or without a choice any more, for
/// what they are still owed.
struct Due {
    person_id: i64,
    choice: Option<Choice>,
    slot: Option<i64>,
}

/// What every person's digest in one run is made with.
struct Run<'a> {
    config: &'a Config,
    store: &'a Handle,
    templates: &'a Templates,
    secret: Secret,
    now: DateTime<Utc>,
}

/// What one person's digest is made of, as a reader saw it.
struct Owing {
    person_id: i64,
    address: String,
    owed: Vec<Owed>,
    /// Per list code: the posts of the digests owed through it.
    posts: BTreeMap<String, Vec<PendingPost>>,
    /// Per list code: the subscription it is owed through.
    subscriber: BTreeMap<String, i64>,
    /// The mode of the first owed subscription.
    first_mode: Option<Mode>,
    /// The random part of the newest owed digest's Message-IDs, which
    /// makes this message's unique beyond this installation.
    nonce: Option<String>,
}

/// Queues the digest of what `due`'s person is owed, when anything is
/// left to show, and records its slot as decided.
fn issue_one(run: &Run<'_>, due: Due) -> anyhow::Result<Option<Queued>> {
    let Due {
        person_id,
        choice,
        slot,
    } = due;
    let (store, now) = (run.store, run.now);
    loop {
        let owing = store.blocking_read(move |db| read_owing(db, person_id))?;
        let Some(owing) = owing else {
            return Ok(None);
        };
        let composed = compose(run, person_id, choice.as_ref(), &owing)?;
        let composed_from = choice.clone();
        let settled = store.blocking_write(move |tx| {
            let taken = composed.taken();
            let from = composed_from.as_ref();
            if !store::combined::settle(tx, person_id, from, &owing.owed, &taken)? {
                return Ok::<_, store::Error>(Settled::Changed);
            }
            if let Some(slot) = slot {
                store::combined::decide_slot(tx, person_id, slot)?;
            }
            match composed {
                Composed::Message {
                    message, queued, ..
                } => {
                    outgoing::queue(tx, &message, now.timestamp())?;
                    Ok(Settled::Queued(queued))
                }
                Composed::Nothing { .. } => Ok(Settled::Nothing),
            }
        })?;
        match settled {
            Settled::Queued(queued) => return Ok(Some(queued)),
            Settled::Nothing => return Ok(None),
            // Composed from what is no longer so: made again.
            Settled::Changed => continue,
        }
    }
}

/// What the transaction that takes a person's owed digests did.
enum Settled {
    Queued(Queued),
    /// Nothing was left to show: the owed digests taken, nothing queued.
    Nothing,
    /// The person's choice or what they are owed changed since the digest
    /// was composed: nothing taken.
    Changed,
}

/// A person's digest across lists as composed, and the owed digests it
/// takes.
enum Composed {
    Message {
        message: NewMessage,
        queued: Queued,
        taken: Vec<i64>,
    },
    /// Nothing owed is left to show (every post taken back, every
    /// subscription ended): what was owed is taken all the same.
    Nothing { taken: Vec<i64> },
}

impl Composed {
    fn taken(&self) -> Vec<i64> {
        match self {
            Composed::Message { taken, .. } | Composed::Nothing { taken } => taken.clone(),
        }
    }
}

/// The person's address and what they are owed; `None` for a person
/// forgotten meanwhile.
fn read_owing(db: &store::Connection, person_id: i64) -> store::Result<Option<Owing>> {
    let Some(person) = subscribers::person_by_id(db, person_id)? else {
        return Ok(None);
    };
    let owed = store::combined::owed(db, person_id)?;
    let mut posts_by_list: BTreeMap<String, Vec<PendingPost>> = BTreeMap::new();
    let mut subscriber = BTreeMap::new();
    let mut first_mode = None;
    for item in &owed {
        if first_mode.is_none() {
            first_mode = subscribers::get(db, item.subscriber_id)?.map(|s| s.mode);
        }
        if !item.active {
            continue;
        }
        subscriber.insert(item.list_code.clone(), item.subscriber_id);
        let list_posts = posts_by_list.entry(item.list_code.clone()).or_default();
        for id in digests::post_ids(db, item.digest_id)? {
            let Some(post) = posts::get(db, id)? else {
                continue;
            };
            // A post taken back since its list's digest is not passed on.
            if post.status != Status::Published {
                continue;
            }
            let raw = posts::raw(db, id)?;
            list_posts.push(PendingPost { post, raw });
        }
    }
    let nonce = match owed.last() {
        Some(last) => digests::get(db, last.digest_id)?.and_then(|d| d.nonce),
        None => None,
    };
    Ok(Some(Owing {
        nonce,
        person_id,
        address: person.address,
        owed,
        posts: posts_by_list,
        subscriber,
        first_mode,
    }))
}

/// The person's message and what it holds. The digests owed through a
/// list the configuration no longer has stay owed, for when it is back.
fn compose(
    run: &Run<'_>,
    person_id: i64,
    choice: Option<&Choice>,
    owing: &Owing,
) -> anyhow::Result<Composed> {
    let Run {
        config,
        templates,
        ref secret,
        now,
        ..
    } = *run;
    let base = config.site.base_url.as_str();
    // The person's order first, then the configuration's; no list twice.
    let mut order: Vec<&List> = Vec::new();
    let chosen = choice.map(|c| c.lists.as_slice()).unwrap_or_default();
    for list in chosen
        .iter()
        .filter_map(|code| config.list(code))
        .chain(&config.lists)
    {
        if !order.iter().any(|l| l.code == list.code) {
            order.push(list);
        }
    }
    let taken: Vec<i64> = owing
        .owed
        .iter()
        .filter(|owed| config.list(&owed.list_code).is_some())
        .map(|owed| owed.digest_id)
        .collect();
    let parts: Vec<Part<'_>> = order
        .into_iter()
        .filter_map(|list| {
            let posts = owing.posts.get(&list.code)?;
            let subscriber = *owing.subscriber.get(&list.code)?;
            (!posts.is_empty()).then(|| Part {
                list,
                posts: posts.clone(),
                leave_url: format!(
                    "{base}unsubscribe/{}",
                    secret.sign(Purpose::Unsubscribe, subscriber, None)
                ),
            })
        })
        .collect();
    if parts.is_empty() {
        return Ok(Composed::Nothing { taken });
    }
    let mode = choice.map(|c| c.mode).unwrap_or_else(|| {
        owing
            .first_mode
            .and_then(|mode| mode.digest())
            .unwrap_or(DigestMode::Plain)
    });
    let leave_all_url = format!(
        "{base}unsubscribe-all/{}",
        secret.sign(Purpose::LeaveAll, person_id, None)
    );
    let combined = Combined {
        config,
        templates,
        issued_at: now,
        parts: &parts,
        preferences_url: format!(
            "{base}prefs/{}",
            secret.sign(Purpose::Preferences, person_id, None)
        ),
        leave_all_url: leave_all_url.clone(),
    };
    let digest = combined::digest(&combined)?;
    let body = render_body(&digest, mode)?;
    let first = parts[0].list;
    let addresses = ListAddresses::new(config, first);
    let message = message(config, &addresses, owing, &body, now, &leave_all_url);
    let queued = Queued {
        address: owing.address.clone(),
        lists: parts.iter().map(|p| p.list.code.clone()).collect(),
        posts: digest.entries.len(),
    };
    Ok(Composed::Message {
        message: NewMessage {
            kind: MessageKind::Combined,
            list_code: Some(first.code.clone()),
            sender: addresses.verp_sender(&owing.address),
            recipient: owing.address.clone(),
            message,
            sign: true,
        },
        queued,
        taken,
    })
}

/// The whole message: the fields a list's digest carries, but from the
/// site, with the link to leave every list in List-Unsubscribe (one-click
/// over https, RFC 8058), then the rendered entity.
fn message(
    config: &Config,
    addresses: &ListAddresses,
    owing: &Owing,
    body: &crate::digest::DigestBody,
    now: DateTime<Utc>,
    leave_all_url: &str,
) -> Vec<u8> {
    let date = now.with_timezone(&config.site.timezone);
    let last = owing.owed.last().map_or(0, |o| o.digest_id);
    let mut fields = format!("Date: {}\r\n", headers::rfc5322_date(&date));
    fields.push_str(&headers::mailbox_field(
        "From",
        &config.site.name,
        &addresses.post,
    ));
    fields.push_str(&format!("To: {}\r\n", owing.address));
    fields.push_str(&format!("Subject:{}\r\n", body.subject));
    let nonce = owing
        .nonce
        .as_ref()
        .map(|nonce| format!(".{nonce}"))
        .unwrap_or_default();
    fields.push_str(&format!(
        "Message-ID: <combined.{}.{last}{nonce}@{}>\r\n",
        owing.person_id, config.site.domain
    ));
    fields.push_str("MIME-Version: 1.0\r\n");
    fields.push_str(&format!("List-Archive: <{}>\r\n", config.site.base_url));
    if config.site.base_url.scheme() == "https" {
        fields.push_str(&format!(
            "List-Unsubscribe: <{leave_all_url}>\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
        ));
    } else {
        fields.push_str(&format!("List-Unsubscribe: <{leave_all_url}>\r\n"));
    }
    fields.push_str("Precedence: list\r\n");
    let mut out = fields.into_bytes();
    out.extend_from_slice(&body.entity);
    out
}
