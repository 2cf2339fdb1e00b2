//! Bounce scoring settings, in `[site]` for every list and in a
//! `[[list]]` for one: `bounce_threshold` and `bounce_window_days`.

use toml::Spanned;

use super::errors::Errors;

/// When bounces disable a subscriber (as Mailman scores them): a
/// permanent failure scores 1, a temporary one 0.5, one a day counted.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BounceScoring {
    /// The score that disables a subscriber (default 5).
    pub threshold: f64,
    /// Days of bounces that count towards it (default 7).
    pub window_days: u32,
}

impl Default for BounceScoring {
    fn default() -> Self {
        BounceScoring {
            threshold: 5.0,
            window_days: 7,
        }
    }
}

/// The two keys as written in a table.
pub(super) struct RawBounceScoring {
    pub(super) bounce_threshold: Option<Spanned<f64>>,
    pub(super) bounce_window_days: Option<Spanned<i64>>,
}

impl RawBounceScoring {
    /// The checked settings; each key not written is `inherited`'s.
    pub(super) fn check(self, errors: &mut Errors<'_>, inherited: BounceScoring) -> BounceScoring {
        let threshold = match self.bounce_threshold {
            Some(value) if *value.get_ref() > 0.0 && value.get_ref().is_finite() => {
                *value.get_ref()
            }
            Some(value) => {
                errors.at(
                    value.span(),
                    "bounce_threshold must be above 0",
                    "give the score that disables a subscriber, e.g. 5 (a permanent failure scores 1, a temporary one 0.5)",
                );
                inherited.threshold
            }
            None => inherited.threshold,
        };
        let window_days = match self.bounce_window_days {
            Some(value) => match u32::try_from(*value.get_ref()) {
                Ok(days) if days > 0 => days,
                _ => {
                    errors.at(
                        value.span(),
                        "bounce_window_days must be a whole number of days above 0",
                        "give the days of bounces that count, e.g. 7",
                    );
                    inherited.window_days
                }
            },
            None => inherited.window_days,
        };
        BounceScoring {
            threshold,
            window_days,
        }
    }
}
