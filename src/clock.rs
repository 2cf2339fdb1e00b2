//! The one place tidings reads the time of day.
//!
//! Everything that stamps, schedules or numbers by the calendar asks a
//! [`Clock`]: the system's in production, a fixed instant in tests,
//! snapshots and `--at`. `chrono::Utc::now` and `SystemTime::now` are
//! forbidden elsewhere by clippy.toml, so no code can bypass an injected
//! clock by accident. (Durations are measured with `Instant`, which no
//! test needs to fix.)
//!
//! A daemon started with `tidings serve --at TIME` runs its system clock
//! from that instant on ([`start_at`]): every part of it (posts, tokens,
//! schedules, the expiry of held posts) sees the same moved time, so a test
//! can start a daemon two weeks after the mail it holds.

use std::sync::OnceLock;

use chrono::{DateTime, TimeDelta, Utc};

/// How far the system clock of this process is moved ([`start_at`]).
static OFFSET: OnceLock<TimeDelta> = OnceLock::new();

/// Where the time comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    /// The system clock.
    System,
    /// Always this instant.
    Fixed(DateTime<Utc>),
}

impl Clock {
    /// The current time.
    pub fn now(self) -> DateTime<Utc> {
        match self {
            Clock::System => system_now(),
            Clock::Fixed(at) => at,
        }
    }

    /// The current time in Unix seconds, as the store records it.
    pub fn unix(self) -> i64 {
        self.now().timestamp()
    }

    /// The clock of a command: the system's, or the RFC 3339 instant of
    /// `--at`.
    pub fn from_argument(at: Option<&str>) -> anyhow::Result<Clock> {
        match at {
            None => Ok(Clock::System),
            Some(text) => {
                let at = DateTime::parse_from_rfc3339(text).map_err(|error| {
                    anyhow::anyhow!("--at {text} is not an RFC 3339 time: {error}")
                })?;
                Ok(Clock::Fixed(at.with_timezone(&Utc)))
            }
        }
    }
}

/// Runs this process's system clock from `at` on: [`Clock::System`]
/// reads `at` now and advances from it. Set once, at the start of a
/// command (`tidings serve --at`); later calls change nothing.
pub fn start_at(at: DateTime<Utc>) {
    let _ = OFFSET.set(at - system_now());
}

/// The system's current time.
pub fn now() -> DateTime<Utc> {
    Clock::System.now()
}

/// The system's current time in Unix seconds.
pub fn unix_now() -> i64 {
    Clock::System.unix()
}

#[expect(
    clippy::disallowed_methods,
    reason = "the one call to the system clock that every other reads through"
)]
fn system_now() -> DateTime<Utc> {
    Utc::now() + OFFSET.get().copied().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fixed_clock_stays_put_and_at_parses_rfc_3339() {
        let clock = Clock::from_argument(Some("2026-03-01T18:00:00+01:00")).unwrap();
        assert_eq!(clock.now(), clock.now());
        assert_eq!(clock.unix(), 1_772_384_400);
        assert!(Clock::from_argument(Some("yesterday")).is_err());
        assert_eq!(Clock::from_argument(None).unwrap(), Clock::System);
    }
}
