//! Bounce scores (pure), as Mailman keeps them: a permanent failure scores
//! 1, a temporary one 0.5, at most one bounce a subscriber a day counts
//! (the day's worst), and only those of the last `window_days` days.

use crate::config::bounces::BounceScoring;

/// What a permanent failure scores.
pub const PERMANENT: f64 = 1.0;
/// What a temporary failure scores.
pub const TEMPORARY: f64 = 0.5;

/// One bounce of a subscriber: when (Unix seconds), and whether permanent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    pub at: i64,
    pub permanent: bool,
}

/// The score of `events` at `now`.
pub fn score(events: &[Event], scoring: BounceScoring, now: i64) -> f64 {
    let since = now - i64::from(scoring.window_days) * 86_400;
    let mut days: Vec<(i64, f64)> = Vec::new();
    for event in events.iter().filter(|e| e.at > since && e.at <= now) {
        let day = event.at.div_euclid(86_400);
        let weight = if event.permanent {
            PERMANENT
        } else {
            TEMPORARY
        };
        match days.iter_mut().find(|(d, _)| *d == day) {
            Some((_, worst)) => *worst = worst.max(weight),
            None => days.push((day, weight)),
        }
    }
    days.iter().map(|(_, weight)| weight).sum()
}

/// Whether `events` disable their subscriber at `now`.
pub fn disables(events: &[Event], scoring: BounceScoring, now: i64) -> bool {
    score(events, scoring, now) >= scoring.threshold
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;
    const NOW: i64 = 1_780_000_000;

    fn event(days_ago: i64, permanent: bool) -> Event {
        Event {
            at: NOW - days_ago * DAY,
            permanent,
        }
    }

    #[test]
    fn a_permanent_failure_scores_one_and_a_temporary_one_half() {
        let scoring = BounceScoring::default();
        assert_eq!(score(&[event(0, true)], scoring, NOW), 1.0);
        assert_eq!(score(&[event(0, false)], scoring, NOW), 0.5);
        assert_eq!(score(&[event(0, true), event(1, false)], scoring, NOW), 1.5);
    }

    #[test]
    fn one_bounce_a_day_counts_the_worst_of_the_day() {
        let scoring = BounceScoring::default();
        let same_day: Vec<Event> = (0..10)
            .map(|i| Event {
                at: NOW - i,
                permanent: i == 5,
            })
            .collect();
        assert_eq!(score(&same_day, scoring, NOW), 1.0);
        let temporary: Vec<Event> = (0..10)
            .map(|i| Event {
                at: NOW - i,
                permanent: false,
            })
            .collect();
        assert_eq!(score(&temporary, scoring, NOW), 0.5);
    }

    #[test]
    fn only_the_window_counts() {
        let scoring = BounceScoring {
            threshold: 5.0,
            window_days: 7,
        };
        let events: Vec<Event> = (0..20).map(|d| event(d, true)).collect();
        assert_eq!(score(&events, scoring, NOW), 7.0);
        assert_eq!(score(&[event(8, true)], scoring, NOW), 0.0);
    }

    #[test]
    fn five_permanent_days_in_a_week_disable_and_four_do_not() {
        let scoring = BounceScoring::default();
        let four: Vec<Event> = (0..4).map(|d| event(d, true)).collect();
        assert!(!disables(&four, scoring, NOW));
        let five: Vec<Event> = (0..5).map(|d| event(d, true)).collect();
        assert!(disables(&five, scoring, NOW));
        // Ten temporary days would be 5, but only 7 fit the window.
        let temporary: Vec<Event> = (0..10).map(|d| event(d, false)).collect();
        assert!(!disables(&temporary, scoring, NOW));
        let lenient = BounceScoring {
            threshold: 3.0,
            window_days: 7,
        };
        assert!(disables(&temporary, lenient, NOW));
    }
}
