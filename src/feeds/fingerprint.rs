//! Fingerprints of written feeds, so a regeneration can skip a feed without
//! building it: the store's change counter of the feed's scope and a digest
//! of everything in the configuration (and the generator) that shows in a
//! feed. They are kept in `feeds_dir/.fingerprints`, one `name fingerprint`
//! line per feed; a missing or unreadable file only means every feed is
//! built once more.

use std::collections::BTreeMap;
use std::path::Path;

use data_encoding::HEXLOWER;
use sha2::{Digest, Sha256};

use super::GENERATOR_VERSION;
use crate::config::Config;
use crate::files;

const FILE: &str = ".fingerprints";

/// A digest of what the configuration and the generator put in feeds.
pub fn config_digest(config: &Config) -> String {
    let site = &config.site;
    let mut hasher = Sha256::new();
    let mut field = |value: &str| {
        hasher.update(value.as_bytes());
        hasher.update([0]);
    };
    field(GENERATOR_VERSION);
    field(&site.name);
    field(site.base_url.as_str());
    field(&site.domain);
    field(&config.feeds.all_entries.to_string());
    field(&config.feeds.entry_chars.to_string());
    for list in &config.lists {
        field(&list.code);
        field(&list.lang);
        field(&list.name);
        field(&list.title);
        field(&list.description);
        field(&list.feed_entries.to_string());
    }
    HEXLOWER.encode(&hasher.finalize()[..8])
}

/// The fingerprint of each feed as last written.
#[derive(Debug, Default)]
pub struct Fingerprints {
    by_name: BTreeMap<String, String>,
    loaded: BTreeMap<String, String>,
}

impl Fingerprints {
    /// The fingerprints recorded in `dir`, or none.
    pub fn load(dir: &Path) -> Self {
        let text = std::fs::read_to_string(dir.join(FILE)).unwrap_or_default();
        let by_name: BTreeMap<String, String> = text
            .lines()
            .filter_map(|line| line.split_once(' '))
            .map(|(name, fingerprint)| (name.to_string(), fingerprint.to_string()))
            .collect();
        Fingerprints {
            loaded: by_name.clone(),
            by_name,
        }
    }

    /// The fingerprint recorded for the feed `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.by_name.get(name).map(String::as_str)
    }

    /// Records the fingerprint of the feed `name`.
    pub fn set(&mut self, name: &str, fingerprint: String) {
        self.by_name.insert(name.to_string(), fingerprint);
    }

    /// Writes the fingerprints back, when they changed; says whether it
    /// wrote (the directory is then to be synced); the file has
    /// permissions `mode`, as the feeds beside it.
    pub fn save(&self, dir: &Path, mode: u32) -> std::io::Result<bool> {
        if self.by_name == self.loaded {
            return Ok(false);
        }
        let text: String = self
            .by_name
            .iter()
            .map(|(name, fingerprint)| format!("{name} {fingerprint}\n"))
            .collect();
        files::replace_if_changed(&dir.join(FILE), text.as_bytes(), mode)
    }
}
