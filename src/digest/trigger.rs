//! When a list's digest is due: at each slot of its cron schedule (in the
//! site timezone), earlier when the pending text passes the list's size
//! threshold, or when forced from the command line.

use chrono::{DateTime, Duration, TimeZone, Utc};

use super::Pending;
use crate::config::List;

/// Why a digest is issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// A slot of the list's schedule came.
    Schedule,
    /// The pending text passed the size threshold.
    Size,
    /// `tidings digest --now`.
    Forced,
}

impl Reason {
    /// The name recorded with the digest.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Schedule => "schedule",
            Reason::Size => "size",
            Reason::Forced => "forced",
        }
    }
}

/// A list's digest is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Due {
    pub reason: Reason,
    /// The schedule slot this answers (Unix seconds), recorded so it sends
    /// at most one digest.
    pub slot: Option<i64>,
    /// Whether to issue a digest with no posts.
    pub send_empty: bool,
}

/// The latest slot of the list's schedule at or before `now`, in Unix seconds.
pub fn latest_slot<Tz: TimeZone>(list: &List, timezone: &Tz, now: DateTime<Utc>) -> Option<i64> {
    let just_after = (now + Duration::seconds(1)).with_timezone(timezone);
    list.schedule
        .after(&just_after)
        .next_back()
        .map(|slot| slot.timestamp())
        .filter(|&slot| slot <= now.timestamp())
}

/// Whether a digest of `list` is due at `now`, given the last slot decided
/// and what is pending.
pub fn due<Tz: TimeZone>(
    list: &List,
    timezone: &Tz,
    now: DateTime<Utc>,
    last_slot: Option<i64>,
    pending: Pending,
    force: bool,
) -> Option<Due> {
    let slot = latest_slot(list, timezone, now);
    let new_slot = slot.filter(|&slot| last_slot.is_none_or(|last| slot > last));
    if force {
        return Some(Due {
            reason: Reason::Forced,
            slot,
            send_empty: list.digest_send_empty,
        });
    }
    if let Some(slot) = new_slot {
        return Some(Due {
            reason: Reason::Schedule,
            slot: Some(slot),
            send_empty: list.digest_send_empty,
        });
    }
    if list.digest_size_threshold > 0
        && pending.posts > 0
        && pending.bytes >= list.digest_size_threshold
    {
        return Some(Due {
            reason: Reason::Size,
            slot: None,
            send_empty: false,
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{parse, EMBEDDED_LISTS_TOML};

    fn list() -> List {
        let config = parse(EMBEDDED_LISTS_TOML, "lists.toml", std::path::Path::new(".")).unwrap();
        config.list("gr").unwrap().clone()
    }

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn a_slot_sends_once_and_a_post_after_it_waits_for_the_next() {
        let list = list();
        let tz = chrono_tz::Europe::Athens;
        let some = Pending {
            posts: 1,
            bytes: 100,
        };
        // 18:00 in Athens is 16:00 UTC in winter.
        let before = at("2026-01-10T14:59:00Z");
        let slot = latest_slot(&list, &tz, before).unwrap();
        assert_eq!(slot, at("2026-01-09T16:00:00Z").timestamp());
        let after = at("2026-01-10T16:00:05Z");
        let due_now = due(&list, &tz, after, Some(slot), some, false).unwrap();
        assert_eq!(due_now.reason, Reason::Schedule);
        let taken = due_now.slot.unwrap();
        assert_eq!(taken, at("2026-01-10T16:00:00Z").timestamp());
        assert_eq!(
            due(
                &list,
                &tz,
                at("2026-01-10T17:00:00Z"),
                Some(taken),
                some,
                false
            ),
            None
        );
    }

    #[test]
    fn enough_pending_text_sends_early_and_force_always_does() {
        let list = list();
        let tz = chrono_tz::UTC;
        let now = at("2026-01-10T12:00:00Z");
        let slot = latest_slot(&list, &tz, now);
        let big = Pending {
            posts: 3,
            bytes: list.digest_size_threshold,
        };
        assert_eq!(
            due(&list, &tz, now, slot, big, false).unwrap().reason,
            Reason::Size
        );
        let small = Pending {
            posts: 3,
            bytes: 10,
        };
        assert_eq!(due(&list, &tz, now, slot, small, false), None);
        assert_eq!(
            due(&list, &tz, now, slot, small, true).unwrap().reason,
            Reason::Forced
        );
    }
}
