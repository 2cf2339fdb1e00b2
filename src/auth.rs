//! Incoming authentication, for the lists with `verify = true`: DKIM (RFC
//! 6376), SPF (RFC 7208), ARC (RFC 8617) and DMARC (RFC 7489) through
//! mail-auth, asking the DNS servers of `[ingest] dns_servers` (else those
//! of /etc/resolv.conf).
//!
//! [`Verifier::verify`] checks one message from one [`Client`] and says
//! what it found as an [`Authentication`]; [`apply`] records it with the
//! post: the value in `posts.auth_results`, an Authentication-Results field
//! (RFC 8601, authserv-id the site's domain) on top of the raw message (no
//! other byte changes), and a post whose From domain publishes `p=reject`
//! and fails DMARC is held for a moderator with the reason.
//!
//! Every DNS query has `dns_timeout_seconds`, a whole verification
//! [`QUERIES_PER_VERIFICATION`] of them; a DNS failure or a timeout is a
//! `temperror`, which holds nothing: the post goes on as its list's policy
//! says. Verification runs on a task of its own, so even a panic in it
//! costs the result, never the post.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use mail_auth::dmarc::verify::DmarcParameters;
use mail_auth::dmarc::Policy;
use mail_auth::hickory_resolver::config::{
    NameServerConfig, ProtocolConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use mail_auth::hickory_resolver::system_conf::read_system_conf;
use mail_auth::spf::verify::SpfParameters;
use mail_auth::{
    AuthenticatedMessage, AuthenticationResults, DkimResult, DmarcResult, MessageAuthenticator,
    SpfOutput, SpfResult,
};

use crate::config::Config;
use crate::post::{NewPost, Status};

/// A whole verification (DKIM keys, SPF with its includes, ARC, DMARC) may
/// take this many DNS timeouts before it is given up as a `temperror`.
pub const QUERIES_PER_VERIFICATION: u32 = 4;

/// The reason of every post held by DMARC begins so.
pub const DMARC_HOLD: &str = "dmarc: ";

/// What the mail system knows of whoever handed us a message: what SPF
/// checks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Client {
    /// The connecting client's address; `None` when unknown (a pipe not
    /// told `--client-ip`), and then SPF is `none`.
    pub ip: Option<IpAddr>,
    /// The host it named in EHLO/HELO/LHLO (empty when unknown).
    pub helo: String,
    /// The MAIL FROM address; empty for the null sender.
    pub mail_from: String,
}

/// The DMARC verdict on a message's From domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dmarc {
    /// SPF or DKIM passed, aligned with the From domain.
    Pass,
    /// The domain publishes a policy and neither passed aligned.
    Fail,
    /// The domain publishes no DMARC record (or the From has none).
    None,
    /// A DNS failure or timeout: the answer is not known now.
    TempError,
    /// The domain's record could not be used.
    PermError,
}

impl Dmarc {
    /// The result's name in Authentication-Results (RFC 8601 2.7.1).
    pub fn as_str(self) -> &'static str {
        match self {
            Dmarc::Pass => "pass",
            Dmarc::Fail => "fail",
            Dmarc::None => "none",
            Dmarc::TempError => "temperror",
            Dmarc::PermError => "permerror",
        }
    }
}

/// What verifying one message found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authentication {
    /// The value of the Authentication-Results field: the authserv-id, then
    /// one `method=result` per check, each on a folded line (CRLF, tab).
    pub results: String,
    /// The DMARC verdict.
    pub dmarc: Dmarc,
    /// The From domain DMARC judged (empty when the message has none).
    pub from_domain: String,
    /// The policy that domain publishes (`none` when it publishes none).
    pub policy: Policy,
}

impl Authentication {
    /// Why the post must wait for a moderator: DMARC failed for a domain
    /// that asks for such mail to be refused (`p=reject`).
    pub fn hold_reason(&self) -> Option<String> {
        (self.dmarc == Dmarc::Fail && self.policy == Policy::Reject).then(|| {
            format!(
                "{DMARC_HOLD}the From domain {} publishes p=reject and the message fails DMARC (neither SPF nor DKIM passed for it)",
                self.from_domain
            )
        })
    }

    /// The whole verification failed for a reason on our side (`what`):
    /// every method is a temperror.
    fn temperror(authserv_id: &str, what: &str) -> Self {
        let mut results = authserv_id.to_string();
        for method in ["dkim", "spf", "dmarc"] {
            let _ = write!(results, ";\r\n\t{method}=temperror ({what})");
        }
        Authentication {
            results,
            dmarc: Dmarc::TempError,
            from_domain: String::new(),
            policy: Policy::None,
        }
    }
}

/// Whether `post` is to be verified: its list says `verify = true` (a post
/// filed under no list: `[site] verify`). Rejected posts are not: they are
/// refused whatever their senders.
pub fn wanted(config: &Config, post: &NewPost) -> bool {
    if post.status == Status::Rejected || post.raw.is_none() {
        return false;
    }
    match post.list_code.as_deref().and_then(|code| config.list(code)) {
        Some(list) => list.verify,
        None => config.site.verify,
    }
}

/// Records `authentication` with `post`: its value in the post, its field
/// on top of the raw message (in the message's own line endings), and a
/// hold when DMARC says the domain's owner refuses such mail.
pub fn apply(post: &mut NewPost, authentication: &Authentication) {
    if let Some(raw) = post.raw.as_mut() {
        let crlf = first_line_ends_in_crlf(raw);
        let mut field = format!("Authentication-Results: {}\r\n", authentication.results);
        if !crlf {
            field = field.replace("\r\n", "\n");
        }
        raw.splice(0..0, field.into_bytes());
    }
    post.auth_results = Some(authentication.results.clone());
    tracing::info!(
        message_id = post.message_id.as_deref().unwrap_or("-"),
        dmarc = authentication.dmarc.as_str(),
        from_domain = %authentication.from_domain,
        "incoming authentication"
    );
    if post.status == Status::Published {
        if let Some(reason) = authentication.hold_reason() {
            post.post.status = Status::Held;
            post.post.reason = Some(reason);
        }
    } else if post.status == Status::Held {
        if let Some(reason) = authentication.hold_reason() {
            // Held already (language unknown): the moderator sees both.
            let held = post.post.reason.take().unwrap_or_default();
            post.post.reason = Some(format!("{held}; {reason}"));
        }
    }
}

fn first_line_ends_in_crlf(raw: &[u8]) -> bool {
    match memchr::memchr(b'\n', raw) {
        Some(at) => at > 0 && raw[at - 1] == b'\r',
        None => true,
    }
}

/// Checks `raw` from `client` as [`Verifier::verify`] does, for a caller
/// outside any runtime (the MTA pipe): on a runtime of its own, which ends
/// with the check.
pub fn verify_now(config: &Config, raw: Vec<u8>, client: Client) -> Authentication {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    match runtime {
        Ok(runtime) => runtime.block_on(async {
            Arc::new(Verifier::new(config))
                .verify(Arc::new(raw), client)
                .await
        }),
        Err(error) => {
            tracing::error!(%error, "no runtime for incoming authentication");
            Authentication::temperror(&config.site.domain, "verification failed")
        }
    }
}

/// Checks messages through one DNS resolver; cheap to share.
pub struct Verifier {
    /// `None` when no resolver could be set up (no usable resolv.conf):
    /// every verification is then a temperror.
    authenticator: Option<MessageAuthenticator>,
    authserv_id: String,
    /// The bound on one whole verification.
    deadline: Duration,
    /// What the resolver was made from, to know when a reloaded
    /// configuration needs another.
    made_from: (Vec<std::net::SocketAddr>, Duration),
}

impl Verifier {
    /// A verifier asking the DNS servers of `config` (else the system's),
    /// each query bounded by `dns_timeout_seconds`.
    pub fn new(config: &Config) -> Verifier {
        let ingest = &config.ingest;
        let authenticator = resolver_config(&ingest.dns_servers).and_then(|(servers, mut opts)| {
            opts.timeout = ingest.dns_timeout;
            // One try per server: the timeout is the operator's bound.
            opts.attempts = 1;
            opts.use_hosts_file = ResolveHosts::Never;
            MessageAuthenticator::new(servers, opts).map_err(|error| error.to_string())
        });
        let authenticator = match authenticator {
            Ok(authenticator) => Some(authenticator),
            Err(error) => {
                tracing::error!(%error, "no DNS resolver for incoming authentication: every check is a temperror");
                None
            }
        };
        Verifier {
            authenticator,
            authserv_id: config.site.domain.clone(),
            deadline: ingest.dns_timeout * QUERIES_PER_VERIFICATION,
            made_from: (ingest.dns_servers.clone(), ingest.dns_timeout),
        }
    }

    /// Whether this verifier asks what `config` says to ask.
    pub fn fits(&self, config: &Config) -> bool {
        self.made_from == (config.ingest.dns_servers.clone(), config.ingest.dns_timeout)
            && self.authserv_id == config.site.domain
    }

    /// Checks `raw` as sent by `client`: DKIM, SPF, ARC, DMARC. Never
    /// fails: a DNS failure, a timeout or a fault is a temperror. Runs on a
    /// task of its own (the caller's runtime).
    pub async fn verify(self: &Arc<Self>, raw: Arc<Vec<u8>>, client: Client) -> Authentication {
        let verifier = self.clone();
        let deadline = self.deadline;
        let task = tokio::spawn(async move {
            tokio::time::timeout(deadline, verifier.check(&raw, &client)).await
        });
        match task.await {
            Ok(Ok(authentication)) => authentication,
            Ok(Err(_)) => {
                tracing::warn!(?deadline, "incoming authentication timed out");
                Authentication::temperror(&self.authserv_id, "dns timeout")
            }
            Err(error) => {
                tracing::error!(%error, "incoming authentication failed");
                Authentication::temperror(&self.authserv_id, "verification failed")
            }
        }
    }

    async fn check(&self, raw: &[u8], client: &Client) -> Authentication {
        let id = self.authserv_id.as_str();
        let Some(authenticator) = &self.authenticator else {
            return Authentication::temperror(id, "no dns resolver");
        };
        // The canonical form of mail is CRLF (RFC 6376 3.4): a message
        // handed over with bare LFs (an MTA pipe) is checked as CRLF.
        let crlf;
        let raw = match has_bare_lf(raw) {
            true => {
                crlf = to_crlf(raw);
                crlf.as_slice()
            }
            false => raw,
        };
        let Some(message) = AuthenticatedMessage::parse(raw) else {
            let mut results = id.to_string();
            results.push_str(";\r\n\tdkim=permerror (the header cannot be parsed)");
            let spf = self.spf(authenticator, client).await;
            results.push_str(&spf_part(id, &spf, client));
            results.push_str(";\r\n\tdmarc=none");
            return Authentication {
                results,
                dmarc: Dmarc::None,
                from_domain: String::new(),
                policy: Policy::None,
            };
        };
        let dkim = authenticator.verify_dkim(&message).await;
        let arc = authenticator.verify_arc(&message).await;
        let spf = self.spf(authenticator, client).await;
        let mail_from_domain = spf_domain(client);
        let dmarc = authenticator
            .verify_dmarc(DmarcParameters::new(
                &message,
                &dkim,
                &mail_from_domain,
                &spf,
            ))
            .await;

        let mut results = id.to_string();
        let from = message.from();
        match dkim.is_empty() {
            true => results.push_str(";\r\n\tdkim=none"),
            false => {
                let part = AuthenticationResults::new("")
                    .with_dkim_results(&dkim, from)
                    .to_string();
                results.push_str(&part);
            }
        }
        results.push_str(&spf_part(id, &spf, client));
        if *arc.result() != DkimResult::None {
            let mut part = String::from(";\r\n\tarc=");
            part.push_str(match arc.result() {
                DkimResult::Pass => "pass",
                DkimResult::Neutral(_) => "neutral",
                DkimResult::Fail(_) => "fail",
                DkimResult::PermError(_) => "permerror",
                DkimResult::TempError(_) => "temperror",
                DkimResult::None => "none",
            });
            results.push_str(&part);
        }
        let verdict = dmarc_verdict(&dmarc, &dkim, &spf);
        let policy = match dmarc.dmarc_record() {
            Some(_) => dmarc.policy(),
            None => Policy::None,
        };
        let _ = write!(results, ";\r\n\tdmarc={}", verdict.as_str());
        if !dmarc.domain().is_empty() {
            let _ = write!(
                results,
                " header.from={} policy.dmarc={policy}",
                dmarc.domain()
            );
        }
        Authentication {
            results,
            dmarc: verdict,
            from_domain: dmarc.domain().to_string(),
            policy,
        }
    }

    /// SPF of the MAIL FROM identity, or of the HELO identity for the null
    /// sender (RFC 7208 2.4); `none` without a client address.
    async fn spf(&self, authenticator: &MessageAuthenticator, client: &Client) -> SpfOutput {
        let Some(ip) = client.ip else {
            return SpfOutput::default();
        };
        let host = self.authserv_id.as_str();
        let params = match client.mail_from.is_empty() {
            true => SpfParameters::verify_ehlo(ip, &client.helo, host),
            false => SpfParameters::verify_mail_from(ip, &client.helo, host, &client.mail_from),
        };
        authenticator.verify_spf(params).await
    }
}

/// The resolver set-up: the configured servers over UDP and TCP, else
/// the system's.
fn resolver_config(
    servers: &[std::net::SocketAddr],
) -> Result<(ResolverConfig, ResolverOpts), String> {
    if servers.is_empty() {
        return read_system_conf().map_err(|error| format!("/etc/resolv.conf: {error}"));
    }
    let mut config = ResolverConfig::default();
    for server in servers {
        for protocol in [ProtocolConfig::Udp, ProtocolConfig::Tcp] {
            config.add_name_server(NameServerConfig::new(*server, protocol));
        }
    }
    Ok((config, ResolverOpts::default()))
}

/// The domain SPF checked: the MAIL FROM's, else the HELO's.
fn spf_domain(client: &Client) -> String {
    match client.mail_from.rsplit_once('@') {
        Some((_, domain)) => domain.to_ascii_lowercase(),
        None => client.helo.to_ascii_lowercase(),
    }
}

/// The `spf=` part of the field.
fn spf_part(authserv_id: &str, spf: &SpfOutput, client: &Client) -> String {
    let Some(ip) = client.ip else {
        return ";\r\n\tspf=none (the client address is unknown)".to_string();
    };
    let results = AuthenticationResults::new(authserv_id);
    let results = match client.mail_from.is_empty() {
        true => results.with_spf_ehlo_result(spf, ip, &client.helo),
        false => results.with_spf_mailfrom_result(spf, ip, &client.mail_from, &client.helo),
    };
    let text = results.to_string();
    text.strip_prefix(authserv_id).unwrap_or(&text).to_string()
}

/// DMARC's verdict (RFC 7489 6.6.2): pass when SPF or DKIM passed aligned;
/// else a temperror when a DNS failure may be why; else fail when the
/// domain publishes a record, none when it does not. (mail-auth reports
/// "none" for a domain with a record when neither passed at all: here
/// that is the fail it is.)
fn dmarc_verdict(
    dmarc: &mail_auth::DmarcOutput,
    dkim: &[mail_auth::DkimOutput<'_>],
    spf: &SpfOutput,
) -> Dmarc {
    let results = [dmarc.spf_result(), dmarc.dkim_result()];
    if results.contains(&&DmarcResult::Pass) {
        return Dmarc::Pass;
    }
    let temporary = results
        .iter()
        .any(|result| matches!(result, DmarcResult::TempError(_)))
        || spf.result() == SpfResult::TempError
        || dkim
            .iter()
            .any(|output| matches!(output.result(), DkimResult::TempError(_)));
    if temporary {
        return Dmarc::TempError;
    }
    if results
        .iter()
        .any(|result| matches!(result, DmarcResult::PermError(_)))
    {
        return Dmarc::PermError;
    }
    match dmarc.dmarc_record() {
        Some(_) => Dmarc::Fail,
        None => Dmarc::None,
    }
}

fn has_bare_lf(raw: &[u8]) -> bool {
    memchr::memchr_iter(b'\n', raw).any(|at| at == 0 || raw[at - 1] != b'\r')
}

fn to_crlf(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + raw.len() / 32);
    let mut previous = 0u8;
    for &byte in raw {
        if byte == b'\n' && previous != b'\r' {
            out.push(b'\r');
        }
        out.push(byte);
        previous = byte;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn authentication(dmarc: Dmarc, policy: Policy) -> Authentication {
        Authentication {
            results: "lists.example.org;\r\n\tdkim=none;\r\n\tspf=fail;\r\n\tdmarc=fail".into(),
            dmarc,
            from_domain: "strict.test".into(),
            policy,
        }
    }

    fn post(raw: &[u8], status: Status) -> NewPost {
        let mut post = crate::store::posts::sample("k", "en", status);
        post.raw = Some(raw.to_vec());
        post
    }

    #[test]
    fn the_field_goes_on_top_in_the_message_s_own_line_endings_and_nothing_else_changes() {
        let auth = authentication(Dmarc::Pass, Policy::Reject);
        let crlf = b"From: a@b.example\r\nSubject: x\r\n\r\nbody\r\n";
        let mut filed = post(crlf, Status::Published);
        apply(&mut filed, &auth);
        let expected = [
            format!("Authentication-Results: {}\r\n", auth.results).as_bytes(),
            crlf,
        ]
        .concat();
        assert_eq!(filed.raw.as_deref(), Some(expected.as_slice()));
        assert_eq!(filed.auth_results.as_deref(), Some(auth.results.as_str()));
        assert_eq!(filed.status, Status::Published);

        let lf = b"From: a@b.example\nSubject: x\n\nbody\n";
        let mut filed = post(lf, Status::Published);
        apply(&mut filed, &auth);
        let field = format!(
            "Authentication-Results: {}\n",
            auth.results.replace("\r\n", "\n")
        );
        assert_eq!(filed.raw.unwrap(), [field.as_bytes(), lf].concat());
    }

    #[test]
    fn only_a_dmarc_failure_under_p_reject_holds() {
        let raw = b"From: a@strict.test\r\n\r\nx\r\n";
        for (dmarc, policy, held) in [
            (Dmarc::Fail, Policy::Reject, true),
            (Dmarc::Fail, Policy::Quarantine, false),
            (Dmarc::Fail, Policy::None, false),
            (Dmarc::TempError, Policy::Reject, false),
            (Dmarc::Pass, Policy::Reject, false),
            (Dmarc::None, Policy::None, false),
        ] {
            let mut filed = post(raw, Status::Published);
            apply(&mut filed, &authentication(dmarc, policy));
            let status = if held {
                Status::Held
            } else {
                Status::Published
            };
            assert_eq!(filed.status, status, "{dmarc:?} {policy:?}");
            if held {
                let reason = filed.reason.as_deref().unwrap();
                assert!(reason.starts_with(DMARC_HOLD), "{reason}");
                assert!(reason.contains("strict.test"), "{reason}");
            }
        }
        let mut unknown = post(raw, Status::Held);
        unknown.post.reason = Some("language unknown".into());
        apply(&mut unknown, &authentication(Dmarc::Fail, Policy::Reject));
        let reason = unknown.reason.as_deref().unwrap();
        assert!(reason.starts_with("language unknown; dmarc: "), "{reason}");
    }

    #[test]
    fn verification_follows_the_list_and_skips_what_is_refused() {
        let text = include_str!("../lists.toml")
            .replacen("[site]\n", "[site]\nverify = true\n", 1)
            .replacen("code = \"en\"\n", "code = \"en\"\nverify = false\n", 1);
        let config = crate::config::parse(&text, "lists.toml", std::path::Path::new(".")).unwrap();
        let raw = b"From: a@b.example\r\n\r\nx\r\n";
        assert!(
            !wanted(&config, &post(raw, Status::Published)),
            "en says no"
        );
        let mut gr = post(raw, Status::Published);
        gr.post.list_code = Some("gr".into());
        assert!(wanted(&config, &gr), "gr follows [site]");
        let mut unfiled = post(raw, Status::Held);
        unfiled.post.list_code = None;
        assert!(wanted(&config, &unfiled), "no list: [site]");
        gr.post.status = Status::Rejected;
        assert!(!wanted(&config, &gr), "refused anyway");
    }

    #[test]
    fn a_published_record_that_neither_passed_is_a_fail_and_a_dns_failure_a_temperror() {
        use mail_auth::common::parse::TxtRecordParser;
        use mail_auth::{DkimOutput, DmarcOutput, Error};
        let record = Arc::new(mail_auth::dmarc::Dmarc::parse(b"v=DMARC1; p=reject").unwrap());
        let failed_spf = SpfOutput::new("strict.test".into()).with_result(SpfResult::Fail);
        // mail-auth leaves both results at none when neither passed.
        let published = DmarcOutput::new("strict.test".into()).with_record(record.clone());
        assert_eq!(dmarc_verdict(&published, &[], &failed_spf), Dmarc::Fail);
        let unpublished = DmarcOutput::new("strict.test".into());
        assert_eq!(dmarc_verdict(&unpublished, &[], &failed_spf), Dmarc::None);
        let key_unreachable = [DkimOutput::temp_err(Error::DnsError("timed out".into()))];
        assert_eq!(
            dmarc_verdict(&published, &key_unreachable, &failed_spf),
            Dmarc::TempError
        );
        let passed = DmarcOutput::new("strict.test".into())
            .with_record(record)
            .with_dkim_result(DmarcResult::Pass);
        assert_eq!(
            dmarc_verdict(&passed, &key_unreachable, &failed_spf),
            Dmarc::Pass
        );
    }

    #[test]
    fn bare_line_feeds_become_crlf_and_crlf_stays() {
        assert!(has_bare_lf(b"a\nb"));
        assert!(!has_bare_lf(b"a\r\nb\r\n"));
        assert_eq!(to_crlf(b"a\nb\r\nc\n"), b"a\r\nb\r\nc\r\n");
    }
}
