//! The `[[dkim]]` tables: the keys every outgoing message is signed with
//! (RFC 6376, RFC 8463).

use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::errors::{Choice, Chosen, Errors};
use super::{is_domain, relative_to, Site};

/// One `[[dkim]]` key: outgoing messages carry one DKIM-Signature per key.
#[derive(Debug, Clone)]
pub struct DkimKey {
    /// The signing domain, `d=` (default the site domain).
    pub domain: String,
    /// The selector, `s=`: the key is published at `SELECTOR._domainkey.DOMAIN`.
    pub selector: String,
    /// The algorithm (default `ed25519-sha256`).
    pub algorithm: DkimAlgorithm,
    /// PEM file with the private key (PKCS#8; PKCS#1 is also read for RSA).
    pub key_file: PathBuf,
}

/// A DKIM signing algorithm, spelled as in the `a=` tag (or by its key
/// type alone: `ed25519`, `rsa`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum DkimAlgorithm {
    /// RFC 8463 (the default).
    #[default]
    #[serde(rename = "ed25519-sha256", alias = "ed25519")]
    Ed25519Sha256,
    /// RFC 6376.
    #[serde(rename = "rsa-sha256", alias = "rsa")]
    RsaSha256,
}

impl Choice for DkimAlgorithm {
    const WHAT: &'static str = "DKIM algorithm";
    const HELP: &'static str = "write ed25519-sha256 or rsa-sha256";
}

/// One `[[dkim]]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDkim {
    selector: Spanned<String>,
    key_file: Spanned<String>,
    algorithm: Option<Chosen<DkimAlgorithm>>,
    domain: Option<Spanned<String>>,
}

impl RawDkim {
    /// The checked key, or `None` (with the problem recorded) when it
    /// cannot sign.
    pub(super) fn check(
        self,
        errors: &mut Errors<'_>,
        site: &Site,
        base: &Path,
    ) -> Option<DkimKey> {
        let algorithm = match self.algorithm {
            None => DkimAlgorithm::default(),
            Some(chosen) => errors.choice(chosen)?,
        };
        let domain = match self.domain {
            Some(domain) if !errors.one_line(&domain, "DKIM domain") => return None,
            Some(domain) if is_domain(domain.get_ref()) => domain.into_inner(),
            Some(domain) => {
                errors.at(
                    domain.span(),
                    &format!("DKIM domain `{}` is not a domain", domain.get_ref()),
                    "write the signing domain, e.g. lists.example.org",
                );
                return None;
            }
            None => site.domain.clone(),
        };
        if !errors.one_line(&self.selector, "DKIM selector") {
            return None;
        }
        let selector = self.selector.get_ref();
        if selector.is_empty()
            || !selector.split('.').all(|label| {
                !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            })
        {
            errors.at(
                self.selector.span(),
                &format!("DKIM selector `{selector}` is not a DNS label"),
                "use letters, digits and '-', e.g. \"tidings2026\"",
            );
            return None;
        }
        let key_file = relative_to(base, PathBuf::from(self.key_file.get_ref()));
        if !key_file.is_file() {
            errors.at(
                self.key_file.span(),
                &format!("DKIM key file {} does not exist", key_file.display()),
                "give the path of a PEM private key, relative to this file; `openssl genpkey -algorithm ed25519` makes one",
            );
            return None;
        }
        Some(DkimKey {
            domain,
            selector: self.selector.into_inner(),
            algorithm,
            key_file,
        })
    }
}
