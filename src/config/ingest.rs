//! The `[ingest]` table: what incoming mail may be, and how sure language
//! detection must be to file a post.

use serde::Deserialize;
use toml::Spanned;

use super::errors::Errors;

/// The `[ingest]` table.
#[derive(Debug, Clone)]
pub struct Ingest {
    /// Largest message accepted, in bytes (default 10 MiB: 10485760).
    pub max_message_bytes: usize,
    /// Minimum confidence (0..1) for filing an untagged post by detected
    /// language (default 0.5).
    pub detect_confidence: f64,
}

impl Default for Ingest {
    fn default() -> Self {
        Ingest {
            max_message_bytes: 10 * 1024 * 1024,
            detect_confidence: 0.5,
        }
    }
}

/// `[ingest]` as written.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawIngest {
    max_message_bytes: Option<Spanned<i64>>,
    detect_confidence: Option<Spanned<f64>>,
}

impl RawIngest {
    /// The checked table; a wrong value is recorded and its default kept.
    pub(super) fn check(self, errors: &mut Errors<'_>) -> Ingest {
        let mut ingest = Ingest::default();
        if let Some(limit) = self.max_message_bytes {
            match usize::try_from(*limit.get_ref()) {
                Ok(bytes) if bytes >= 1024 => ingest.max_message_bytes = bytes,
                _ => errors.at(
                    limit.span(),
                    "max_message_bytes must be at least 1024",
                    "give the largest message size in bytes, e.g. 10485760 for 10 MiB",
                ),
            }
        }
        if let Some(confidence) = self.detect_confidence {
            if (0.0..=1.0).contains(confidence.get_ref()) {
                ingest.detect_confidence = *confidence.get_ref();
            } else {
                errors.at(
                    confidence.span(),
                    "detect_confidence must be between 0 and 1",
                    "0.5 files a post when the detector is fairly sure; 1.0 never files by detection",
                );
            }
        }
        ingest
    }
}
