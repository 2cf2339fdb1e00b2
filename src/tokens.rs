//! Signed tokens: the secrets in unsubscribe, preference and confirmation
//! links and in LIST-confirm+TOKEN addresses.
//!
//! A token names one row (a subscriber, a person, a request) for one
//! purpose, with an expiry for those that have one, and carries an HMAC-SHA256
//! of all that under a secret that never leaves `data_dir/secret` (created
//! at first use, mode 0600). A token is thus useless for another address,
//! list or purpose, cannot be made without the secret, and is checked in
//! constant time. Replacing the secret file (delete it; the next start makes
//! a new one) invalidates every link sent before.
//!
//! Layout: purpose (1 byte), id (5 bytes), expiry day (2 bytes, days since
//! 1970, 0 for none), then the first 10 bytes of the HMAC: 18 bytes, 29
//! characters of lowercase base32, short enough for the local part of
//! `a-infos-supplement-confirm+TOKEN@` (RFC 5321 allows 64) and the same
//! whatever case a mail system gives it.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use data_encoding::BASE32_NOPAD;
use ring::hmac;
use subtle::ConstantTimeEq;

/// Bytes of the HMAC kept in a token: 80 bits, beyond guessing online.
const MAC: usize = 10;
/// Bytes before the HMAC.
const BODY: usize = 8;
/// Bytes of the secret.
const SECRET: usize = 32;
/// Seconds in a day, for expiry days.
const DAY: i64 = 86_400;

/// What a token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Purpose {
    /// Leave one list (RFC 8058 one-click), by subscriber id.
    Unsubscribe = 1,
    /// See and change every subscription of a person, by person id.
    Preferences = 2,
    /// Confirm a subscription asked for, by request id.
    Confirm = 3,
    /// Publish a held post, by post id (a moderator's LIST-owner+approve-TOKEN).
    Approve = 4,
    /// Refuse a held post, by post id (LIST-owner+reject-TOKEN).
    Reject = 5,
    /// Leave every list at once (RFC 8058 one-click of a digest across
    /// lists), by person id.
    LeaveAll = 6,
}

/// Why a token was not accepted. Callers answer all of them alike, so a
/// forger learns nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    #[error("not a token")]
    Malformed,
    #[error("not one of ours, or not for this")]
    Forged,
    #[error("expired")]
    Expired,
}

/// The site's token secret.
pub struct Secret {
    key: hmac::Key,
}

impl Secret {
    /// The secret in `data_dir/secret`, made (32 random bytes, mode 0600)
    /// when there is none yet.
    pub fn load_or_create(data_dir: &Path) -> anyhow::Result<Secret> {
        let path = data_dir.join("secret");
        // The secret there is read first: reading takes no space, so a full
        // disk leaves intake and the outbox their key.
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(data_dir)
                    .with_context(|| format!("creating {}", data_dir.display()))?;
                match create(&path) {
                    Ok(secret) => return Ok(secret),
                    // Made meanwhile by another process: read it.
                    Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
                        std::fs::read(&path)
                            .with_context(|| format!("reading the secret {}", path.display()))?
                    }
                    Err(error) => {
                        return Err(error)
                            .with_context(|| format!("creating the secret {}", path.display()))
                    }
                }
            }
            Err(error) => {
                return Err(error).with_context(|| format!("reading the secret {}", path.display()))
            }
        };
        anyhow::ensure!(
            bytes.len() == SECRET,
            "the secret {} holds {} bytes, not {SECRET}: delete it and a new one is made (links sent before stop working)",
            path.display(),
            bytes.len()
        );
        Ok(Secret::from_bytes(&bytes))
    }

    /// A secret from its bytes (tests, benchmarks).
    pub fn from_bytes(bytes: &[u8]) -> Secret {
        Secret {
            key: hmac::Key::new(hmac::HMAC_SHA256, bytes),
        }
    }

    /// The token for `id` and `purpose`, valid until the end of the day of
    /// `expires_at` (Unix seconds) when given.
    pub fn sign(&self, purpose: Purpose, id: i64, expires_at: Option<i64>) -> String {
        let mut token = [0u8; BODY + MAC];
        token[0] = purpose as u8;
        token[1..6].copy_from_slice(&(id as u64).to_be_bytes()[3..]);
        let day = expires_at.map_or(0, |at| {
            (at.div_euclid(DAY)).clamp(1, u16::MAX as i64) as u16
        });
        token[6..8].copy_from_slice(&day.to_be_bytes());
        let tag = hmac::sign(&self.key, &token[..BODY]);
        token[BODY..].copy_from_slice(&tag.as_ref()[..MAC]);
        BASE32_NOPAD.encode(&token).to_ascii_lowercase()
    }

    /// The id a token names for `purpose`, if it is ours, for this purpose,
    /// and not expired at `now` (Unix seconds).
    pub fn verify(&self, token: &str, purpose: Purpose, now: i64) -> Result<i64, Rejected> {
        let bytes = BASE32_NOPAD
            .decode(token.trim().to_ascii_uppercase().as_bytes())
            .map_err(|_| Rejected::Malformed)?;
        if bytes.len() != BODY + MAC {
            return Err(Rejected::Malformed);
        }
        let tag = hmac::sign(&self.key, &bytes[..BODY]);
        let genuine: bool = tag.as_ref()[..MAC].ct_eq(&bytes[BODY..]).into();
        if !genuine || bytes[0] != purpose as u8 {
            return Err(Rejected::Forged);
        }
        let day = u16::from_be_bytes([bytes[6], bytes[7]]) as i64;
        if day != 0 && now.div_euclid(DAY) > day {
            return Err(Rejected::Expired);
        }
        let mut id = [0u8; 8];
        id[3..].copy_from_slice(&bytes[1..6]);
        Ok(u64::from_be_bytes(id) as i64)
    }
}

/// Writes a new random secret at `path`, failing if one exists.
/// Makes the secret at `path` whole or not at all: written and flushed
/// under a name of its own (random), then linked to `path`, which fails
/// with `AlreadyExists` when another process was first. A reader never
/// finds the secret half written (two `tidings ingest` started at once).
fn create(path: &Path) -> std::io::Result<Secret> {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; SECRET];
    let mut name = [0u8; 8];
    let random = ring::rand::SystemRandom::new();
    random
        .fill(&mut bytes)
        .and_then(|()| random.fill(&mut name))
        .map_err(|_| std::io::Error::other("no system randomness"))?;
    let partial = path.with_file_name(format!(".secret.{}", data_encoding::HEXLOWER.encode(&name)));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = options.open(&partial).and_then(|mut file| {
        file.write_all(&bytes)?;
        file.sync_all()
    });
    let linked = written.and_then(|()| std::fs::hard_link(&partial, path));
    let _ = std::fs::remove_file(&partial);
    linked?;
    Ok(Secret::from_bytes(&bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_780_000_000;

    #[test]
    fn processes_making_the_secret_at_once_all_read_the_same_whole_one() {
        let dir = tempfile::tempdir().unwrap();
        let secrets: Vec<String> = std::thread::scope(|scope| {
            let makers: Vec<_> = (0..16)
                .map(|_| {
                    scope.spawn(|| {
                        Secret::load_or_create(dir.path())
                            .map(|s| s.sign(Purpose::Unsubscribe, 1, None))
                    })
                })
                .collect();
            makers
                .into_iter()
                .map(|m| m.join().unwrap().unwrap())
                .collect()
        });
        assert!(secrets.windows(2).all(|w| w[0] == w[1]), "{secrets:?}");
        assert_eq!(
            std::fs::read(dir.path().join("secret")).unwrap().len(),
            SECRET
        );
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "no partial file is left");
    }

    #[test]
    fn a_token_names_its_row_for_its_purpose_only() {
        let secret = Secret::from_bytes(b"a test secret of some length....");
        let token = secret.sign(Purpose::Unsubscribe, 4_242, None);
        assert_eq!(token.len(), 29);
        assert!(token
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()));
        assert_eq!(secret.verify(&token, Purpose::Unsubscribe, NOW), Ok(4_242));
        // The case a mail system gives it does not matter.
        assert_eq!(
            secret.verify(&token.to_uppercase(), Purpose::Unsubscribe, NOW),
            Ok(4_242)
        );
        assert_eq!(
            secret.verify(&token, Purpose::Preferences, NOW),
            Err(Rejected::Forged)
        );
        let other = Secret::from_bytes(b"another secret, rotated.........");
        assert_eq!(
            other.verify(&token, Purpose::Unsubscribe, NOW),
            Err(Rejected::Forged)
        );
    }

    #[test]
    fn any_changed_character_is_refused() {
        let secret = Secret::from_bytes(&[7; 32]);
        let token = secret.sign(Purpose::Confirm, 17, Some(NOW + 7 * DAY));
        for at in 0..token.len() {
            let mut forged: Vec<u8> = token.clone().into_bytes();
            forged[at] = if forged[at] == b'a' { b'b' } else { b'a' };
            let forged = String::from_utf8(forged).unwrap();
            assert_ne!(
                secret.verify(&forged, Purpose::Confirm, NOW),
                Ok(17),
                "{forged}"
            );
        }
        for malformed in ["", "x", "not a token at all", &token[..28]] {
            assert_eq!(
                secret.verify(malformed, Purpose::Confirm, NOW),
                Err(Rejected::Malformed)
            );
        }
    }

    #[test]
    fn tokens_expire_after_their_day() {
        let secret = Secret::from_bytes(&[9; 32]);
        let token = secret.sign(Purpose::Confirm, 5, Some(NOW + 7 * DAY));
        assert_eq!(
            secret.verify(&token, Purpose::Confirm, NOW + 7 * DAY),
            Ok(5)
        );
        assert_eq!(
            secret.verify(&token, Purpose::Confirm, NOW + 8 * DAY),
            Err(Rejected::Expired)
        );
    }

    #[test]
    fn the_secret_is_made_once_private_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let first = Secret::load_or_create(dir.path()).unwrap();
        let token = first.sign(Purpose::Preferences, 1, None);
        let again = Secret::load_or_create(dir.path()).unwrap();
        assert_eq!(again.verify(&token, Purpose::Preferences, NOW), Ok(1));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("secret"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(dir.path().join("secret"), b"short").unwrap();
        let error = Secret::load_or_create(dir.path())
            .err()
            .unwrap()
            .to_string();
        assert!(error.contains("not 32"), "{error}");
    }
}
