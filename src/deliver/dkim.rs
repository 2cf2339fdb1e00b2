//! DKIM signing (RFC 6376; ed25519-sha256 per RFC 8463) with mail-auth.
//!
//! Every recipient of a digest format gets the same body, so its body hash
//! (`bh=`) is computed once per format ([`Signer::body_hash`], with
//! mail-auth's own relaxed canonicalization) and each message only hashes
//! and signs its header fields. The signed fields include List-Unsubscribe
//! and List-Unsubscribe-Post, as RFC 8058 and Gmail require.

use anyhow::Context;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use mail_auth::common::crypto::{
    Algorithm, Ed25519Key, HashContext, HashImpl, HashOutput, RsaKey, Sha256, SigningKey,
};
use mail_auth::common::headers::{HeaderWriter, Writable};
use mail_auth::dkim::canonicalize::BodyHasher;
use mail_auth::dkim::{Canonicalization, DkimSigner};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::PrivateKeyDer;

use crate::config::{DkimAlgorithm, DkimKey};

/// Header fields signed, when present (h=). From is listed twice so no
/// second From can be added without breaking the signature.
pub const SIGNED_FIELDS: &[&str] = &[
    "From",
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    "List-Id",
    "List-Post",
    "List-Help",
    "List-Subscribe",
    "List-Archive",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "Precedence",
];

enum Key {
    Ed25519(Ed25519Key),
    Rsa(RsaKey<Sha256>),
}

/// One signing key with its domain and selector.
pub struct Signer {
    key: Key,
    domain: String,
    selector: String,
}

/// A body hash computed once for many messages.
#[derive(Clone, Copy)]
pub struct BodyHash(ring::digest::Digest);

impl Signer {
    /// Reads the key of a `[[dkim]]` table.
    pub fn load(config: &DkimKey) -> anyhow::Result<Signer> {
        Self::from_pem(
            &std::fs::read(&config.key_file)
                .with_context(|| format!("reading DKIM key {}", config.key_file.display()))?,
            config.algorithm,
            &config.domain,
            &config.selector,
        )
        .with_context(|| format!("loading DKIM key {}", config.key_file.display()))
    }

    /// A signer from a PEM private key (PKCS#8, or PKCS#1 for RSA).
    pub fn from_pem(
        pem: &[u8],
        algorithm: DkimAlgorithm,
        domain: &str,
        selector: &str,
    ) -> anyhow::Result<Signer> {
        let der = PrivateKeyDer::from_pem_slice(pem)
            .map_err(|e| anyhow::anyhow!("not a PEM private key: {e}"))?;
        let key = match (algorithm, der) {
            (DkimAlgorithm::Ed25519Sha256, PrivateKeyDer::Pkcs8(der)) => Key::Ed25519(
                Ed25519Key::from_pkcs8_maybe_unchecked_der(der.secret_pkcs8_der())
                    .map_err(|e| anyhow::anyhow!("not an ed25519 key: {e}"))?,
            ),
            (DkimAlgorithm::Ed25519Sha256, _) => {
                anyhow::bail!("an ed25519 key must be PKCS#8 (openssl genpkey -algorithm ed25519)")
            }
            (DkimAlgorithm::RsaSha256, der) => Key::Rsa(
                RsaKey::<Sha256>::from_key_der(der)
                    .map_err(|e| anyhow::anyhow!("not an RSA key: {e}"))?,
            ),
        };
        Ok(Signer {
            key,
            domain: domain.to_string(),
            selector: selector.to_string(),
        })
    }

    /// Loads every configured key.
    pub fn load_all(keys: &[DkimKey]) -> anyhow::Result<Vec<Signer>> {
        keys.iter().map(Signer::load).collect()
    }

    /// The relaxed body hash of a message body (the bytes after the blank
    /// line), computed as mail-auth computes it when signing.
    pub fn body_hash(body: &[u8]) -> BodyHash {
        let mut hasher =
            BodyHasher::new(<Sha256 as HashImpl>::hasher(), Canonicalization::Relaxed, 0);
        hasher.write(body);
        let (context, _) = hasher.finish();
        match context.complete() {
            HashOutput::Ring(digest) => BodyHash(digest),
            #[allow(
                unreachable_patterns,
                reason = "other variants exist with other mail-auth features"
            )]
            _ => unreachable!("mail-auth is built with ring"),
        }
    }

    /// The DKIM-Signature field (ending in CRLF) for the message made of
    /// `chunks`, whose body has the hash `body_hash`.
    pub fn sign(&self, chunks: &[&[u8]], body_hash: BodyHash) -> anyhow::Result<Vec<u8>> {
        let signature = match &self.key {
            Key::Ed25519(key) => self.sign_with(Prehashed { key, body_hash }, chunks)?,
            Key::Rsa(key) => self.sign_with(Prehashed { key, body_hash }, chunks)?,
        };
        let mut out = Vec::with_capacity(512);
        signature.write_header(&mut out);
        if !out.ends_with(b"\r\n") {
            out.extend_from_slice(b"\r\n");
        }
        Ok(out)
    }

    fn sign_with<K: SigningKey>(
        &self,
        key: Prehashed<'_, K>,
        chunks: &[&[u8]],
    ) -> anyhow::Result<mail_auth::dkim::Signature> {
        DkimSigner::from_key(key)
            .domain(self.domain.as_str())
            .selector(self.selector.as_str())
            .headers(SIGNED_FIELDS.iter().copied())
            .header_canonicalization(Canonicalization::Relaxed)
            .body_canonicalization(Canonicalization::Relaxed)
            .sign_chained(chunks.iter().copied())
            .map_err(|e| anyhow::anyhow!("DKIM signing failed: {e}"))
    }

    /// The TXT record to publish at `SELECTOR._domainkey.DOMAIN`.
    pub fn dns_record(&self) -> String {
        match &self.key {
            Key::Ed25519(key) => {
                format!("v=DKIM1; k=ed25519; p={}", BASE64.encode(key.public_key()))
            }
            Key::Rsa(key) => format!(
                "v=DKIM1; k=rsa; p={}",
                BASE64.encode(rsa_spki(&key.public_key()))
            ),
        }
    }

    /// Where the public key is published.
    pub fn dns_name(&self) -> String {
        format!("{}._domainkey.{}", self.selector, self.domain)
    }
}

/// A key whose body hash is already known: mail-auth asks the key to hash
/// the canonical body, and this one answers with the hash computed once
/// for every recipient of the same body.
struct Prehashed<'a, K> {
    key: &'a K,
    body_hash: BodyHash,
}

impl<K: SigningKey> SigningKey for Prehashed<'_, K> {
    type Hasher = K::Hasher;

    fn sign(&self, input: impl Writable) -> mail_auth::Result<Vec<u8>> {
        // Relaxed canonicalization writes the header fields a byte at a
        // time; into a buffer that is cheap, into a SHA-256 context it is
        // most of the cost of signing. Hash the buffer in one go.
        let mut canonical = Vec::with_capacity(2048);
        input.write(&mut canonical);
        self.key.sign(canonical.as_slice())
    }

    fn hash(&self, _body: impl Writable) -> HashOutput {
        HashOutput::Ring(self.body_hash.0)
    }

    fn algorithm(&self) -> Algorithm {
        self.key.algorithm()
    }
}

/// An RSA public key (PKCS#1 RSAPublicKey DER, as ring gives it) wrapped in
/// a SubjectPublicKeyInfo, the form DKIM's p= takes.
fn rsa_spki(pkcs1: &[u8]) -> Vec<u8> {
    fn der(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        let len = content.len();
        if len < 128 {
            out.push(len as u8);
        } else {
            let bytes: Vec<u8> = len
                .to_be_bytes()
                .into_iter()
                .skip_while(|&b| b == 0)
                .collect();
            out.push(0x80 | bytes.len() as u8);
            out.extend(bytes);
        }
        out.extend_from_slice(content);
        out
    }
    // AlgorithmIdentifier { rsaEncryption, NULL }
    let algorithm: &[u8] = &[
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
    ];
    let mut bit_string = vec![0u8];
    bit_string.extend_from_slice(pkcs1);
    let mut content = algorithm.to_vec();
    content.extend(der(0x03, &bit_string));
    der(0x30, &content)
}
