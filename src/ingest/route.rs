//! Recipient routing: which of the site's addresses an envelope recipient
//! names, or why it is refused (pure).
//!
//! Each list answers at its posting address and at the Mailman-style
//! addresses around it: `LIST-request`, `LIST-subscribe` (or `-join`),
//! `LIST-unsubscribe` (or `-leave`), `LIST-confirm+TOKEN`,
//! `LIST-bounces[+VERP]` and `LIST-owner`. `postmaster@` the site domain,
//! and a bare `postmaster`, are always ours (RFC 5321 4.5.1, 4.1.1.3), and
//! so is `abuse@` the site domain (RFC 2142): both go to the operator.
//! Anything else at the site domain is unknown; any other domain is refused
//! so that tidings is never a relay. Local parts and domains are matched
//! case-insensitively; a `+detail` on a posting address is ignored.

use crate::config::Config;

/// Where mail for one recipient goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// A list's posting address (`LIST@domain`, `LIST+detail@domain`).
    Post {
        /// The list's code.
        list: String,
    },
    /// `LIST-request@domain`: commands for the list by mail.
    Request {
        /// The list's code.
        list: String,
    },
    /// `LIST-subscribe@domain` or its alias `LIST-join@domain`.
    Subscribe {
        /// The list's code.
        list: String,
    },
    /// `LIST-unsubscribe@domain` or its alias `LIST-leave@domain`.
    Unsubscribe {
        /// The list's code.
        list: String,
    },
    /// `LIST-confirm+TOKEN@domain`: the answer to a confirmation request.
    Confirm {
        /// The list's code.
        list: String,
        /// The token after the `+`, as written (tokens may be case-sensitive).
        token: String,
    },
    /// `LIST-bounces@domain`, or `LIST-bounces+user=host@domain` with the
    /// subscriber's address encoded in the detail (VERP).
    Bounces {
        /// The list's code.
        list: String,
        /// The subscriber a VERP address names (`user@host`), if any.
        subscriber: Option<String>,
    },
    /// `LIST-owner@domain`: the people who run the list.
    Owner {
        /// The list's code.
        list: String,
    },
    /// `LIST-owner+approve-TOKEN@domain` or `LIST-owner+reject-TOKEN@domain`:
    /// a moderator's answer about a held post.
    Moderate {
        /// The list's code.
        list: String,
        /// Whether the post is to be published (else refused).
        approve: bool,
        /// The token after `approve-` or `reject-`, as written.
        token: String,
    },
    /// `postmaster@domain` or a bare `postmaster` (RFC 5321 4.5.1), or
    /// `abuse@domain` (RFC 2142): passed on to `[site] operator`.
    Postmaster,
}

impl Route {
    /// Whether tidings takes mail for this route: every route (bounces
    /// go to bounce processing, `crate::bounce`).
    pub fn is_handled(&self) -> bool {
        true
    }

    /// The list whose address this is; none for postmaster.
    pub fn list(&self) -> Option<&str> {
        match self {
            Route::Post { list }
            | Route::Request { list }
            | Route::Subscribe { list }
            | Route::Unsubscribe { list }
            | Route::Confirm { list, .. }
            | Route::Bounces { list, .. }
            | Route::Owner { list }
            | Route::Moderate { list, .. } => Some(list),
            Route::Postmaster => None,
        }
    }

    /// Whether this is an address that answers commands (-request,
    /// -subscribe, -unsubscribe, -confirm, a moderator's -owner+TOKEN),
    /// where automatic mail is never acted on.
    pub fn is_command(&self) -> bool {
        matches!(
            self,
            Route::Request { .. }
                | Route::Subscribe { .. }
                | Route::Unsubscribe { .. }
                | Route::Confirm { .. }
                | Route::Moderate { .. }
        )
    }

    /// Whether this is one of the service addresses (everything but a
    /// posting address), whose mail is no post.
    pub fn is_service(&self) -> bool {
        !matches!(self, Route::Post { .. })
    }

    /// What kind of address this is, for replies and logs, e.g.
    /// "-request"; the posting address is "posting", postmaster "postmaster".
    pub fn kind(&self) -> &'static str {
        match self {
            Route::Post { .. } => "posting",
            Route::Request { .. } => "-request",
            Route::Subscribe { .. } => "-subscribe",
            Route::Unsubscribe { .. } => "-unsubscribe",
            Route::Confirm { .. } => "-confirm",
            Route::Bounces { .. } => "-bounces",
            Route::Owner { .. } => "-owner",
            Route::Moderate { .. } => "-owner+token",
            Route::Postmaster => "postmaster",
        }
    }
}

/// Why a recipient is not ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not `local@domain`, and not a bare `postmaster`.
    NotAnAddress,
    /// At the site domain, but no list or service address of that name.
    Unknown,
    /// At another domain: tidings does not relay.
    Relay,
}

/// Which address of the site `address` names (the bare address of
/// `RCPT TO`, without angle brackets).
pub fn route(config: &Config, address: &str) -> Result<Route, Refusal> {
    let address = address.trim();
    // Lowercasing ASCII keeps byte offsets, so details are cut from the
    // original and keep their case.
    let lower = address.to_ascii_lowercase();
    let Some((local, domain)) = lower.rsplit_once('@') else {
        return if lower == "postmaster" {
            Ok(Route::Postmaster)
        } else {
            Err(Refusal::NotAnAddress)
        };
    };
    if local.is_empty() || domain.is_empty() {
        return Err(Refusal::NotAnAddress);
    }
    if domain != config.site.domain.to_ascii_lowercase() {
        return Err(Refusal::Relay);
    }
    if local == "postmaster" || local == "abuse" {
        return Ok(Route::Postmaster);
    }
    let (base, detail) = match local.split_once('+') {
        Some((base, _)) => (base, Some(&address[base.len() + 1..local.len()])),
        None => (local, None),
    };
    let list_named = |name: &str| {
        config
            .lists
            .iter()
            .find(|list| list.address.rsplit_once('@') == Some((name, domain)))
            .map(|list| list.code.clone())
    };
    if let Some(list) = list_named(base) {
        return Ok(Route::Post { list });
    }
    let Some((name, suffix)) = base.rsplit_once('-') else {
        return Err(Refusal::Unknown);
    };
    let Some(list) = list_named(name) else {
        return Err(Refusal::Unknown);
    };
    match (suffix, detail) {
        ("request", None) => Ok(Route::Request { list }),
        ("subscribe" | "join", None) => Ok(Route::Subscribe { list }),
        ("unsubscribe" | "leave", None) => Ok(Route::Unsubscribe { list }),
        ("owner", None) => Ok(Route::Owner { list }),
        ("owner", Some(detail)) => {
            let lower = detail.to_ascii_lowercase();
            let (approve, token) = if lower.starts_with("approve-") {
                (true, &detail["approve-".len()..])
            } else if lower.starts_with("reject-") {
                (false, &detail["reject-".len()..])
            } else {
                return Err(Refusal::Unknown);
            };
            if token.is_empty() {
                return Err(Refusal::Unknown);
            }
            Ok(Route::Moderate {
                list,
                approve,
                token: token.to_string(),
            })
        }
        ("confirm", Some(token)) if !token.is_empty() => Ok(Route::Confirm {
            list,
            token: token.to_string(),
        }),
        ("bounces", None) => Ok(Route::Bounces {
            list,
            subscriber: None,
        }),
        ("bounces", Some(verp)) => Ok(Route::Bounces {
            list,
            subscriber: Some(decode_verp(verp).ok_or(Refusal::Unknown)?),
        }),
        _ => Err(Refusal::Unknown),
    }
}

/// `user=host` -> `user@host`: the subscriber of a VERP bounce address. The
/// last `=` is the `@`, since a host has none and a local part may.
fn decode_verp(detail: &str) -> Option<String> {
    let (user, host) = detail.rsplit_once('=')?;
    (!user.is_empty() && !host.is_empty()).then(|| format!("{user}@{host}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        crate::config::shipped()
    }

    fn list(code: &str) -> String {
        code.to_string()
    }

    #[test]
    fn a_posting_address_in_any_case_and_with_a_detail_is_a_post() {
        let config = config();
        for address in [
            "a-infos-en@lists.example.org",
            "A-Infos-EN@Lists.Example.ORG",
            "a-infos-en+anything@lists.example.org",
            " a-infos-en@lists.example.org ",
        ] {
            assert_eq!(
                route(&config, address),
                Ok(Route::Post { list: list("en") }),
                "{address}"
            );
        }
    }

    #[test]
    fn each_service_address_of_a_list_has_its_route() {
        let config = config();
        let cases = [
            ("a-infos-de-request", Route::Request { list: list("de") }),
            (
                "a-infos-de-subscribe",
                Route::Subscribe { list: list("de") },
            ),
            ("a-infos-de-join", Route::Subscribe { list: list("de") }),
            (
                "a-infos-de-unsubscribe",
                Route::Unsubscribe { list: list("de") },
            ),
            ("a-infos-de-leave", Route::Unsubscribe { list: list("de") }),
            ("A-Infos-DE-Owner", Route::Owner { list: list("de") }),
            (
                "a-infos-de-bounces",
                Route::Bounces {
                    list: list("de"),
                    subscriber: None,
                },
            ),
        ];
        for (local, expected) in cases {
            let address = format!("{local}@lists.example.org");
            assert_eq!(route(&config, &address), Ok(expected), "{address}");
        }
    }

    #[test]
    fn a_verp_bounce_address_names_the_subscriber() {
        let config = config();
        assert_eq!(
            route(
                &config,
                "a-infos-fr-bounces+Jean.Dupont=mail.example.fr@lists.example.org"
            ),
            Ok(Route::Bounces {
                list: list("fr"),
                subscriber: Some("Jean.Dupont@mail.example.fr".into()),
            })
        );
        assert_eq!(
            route(
                &config,
                "a-infos-fr-bounces+a=b=host.example@lists.example.org"
            ),
            Ok(Route::Bounces {
                list: list("fr"),
                subscriber: Some("a=b@host.example".into()),
            })
        );
        // A detail that encodes no address is not a bounce address.
        assert_eq!(
            route(&config, "a-infos-fr-bounces+garbage@lists.example.org"),
            Err(Refusal::Unknown)
        );
    }

    #[test]
    fn a_confirm_address_captures_its_token_as_written() {
        let config = config();
        assert_eq!(
            route(&config, "A-INFOS-IT-CONFIRM+Ab12Cd34@lists.example.org"),
            Ok(Route::Confirm {
                list: list("it"),
                token: "Ab12Cd34".into(),
            })
        );
        assert_eq!(
            route(&config, "a-infos-it-confirm@lists.example.org"),
            Err(Refusal::Unknown),
            "a confirmation without a token"
        );
    }

    #[test]
    fn a_moderator_s_answer_names_its_action_and_token() {
        let config = config();
        assert_eq!(
            route(&config, "a-infos-en-owner+approve-Ab12@lists.example.org"),
            Ok(Route::Moderate {
                list: list("en"),
                approve: true,
                token: "Ab12".into(),
            })
        );
        assert_eq!(
            route(&config, "A-INFOS-EN-OWNER+REJECT-xy@lists.example.org"),
            Ok(Route::Moderate {
                list: list("en"),
                approve: false,
                token: "xy".into(),
            })
        );
        for address in [
            "a-infos-en-owner+approve-@lists.example.org",
            "a-infos-en-owner+publish-xy@lists.example.org",
        ] {
            assert_eq!(route(&config, address), Err(Refusal::Unknown), "{address}");
        }
    }

    #[test]
    fn postmaster_is_ours_in_any_case_with_or_without_the_domain() {
        let config = config();
        for address in [
            "postmaster@lists.example.org",
            "PostMaster@LISTS.example.org",
            "postmaster",
            "POSTMASTER",
        ] {
            assert_eq!(route(&config, address), Ok(Route::Postmaster), "{address}");
        }
        assert_eq!(
            route(&config, "postmaster@example.com"),
            Err(Refusal::Relay),
            "another domain's postmaster is not ours"
        );
    }

    #[test]
    fn abuse_at_the_domain_goes_where_postmaster_goes() {
        let config = config();
        for address in ["abuse@lists.example.org", "Abuse@LISTS.Example.org"] {
            assert_eq!(route(&config, address), Ok(Route::Postmaster), "{address}");
        }
        assert_eq!(
            route(&config, "abuse@example.com"),
            Err(Refusal::Relay),
            "another domain's abuse desk is not ours"
        );
        assert_eq!(
            route(&config, "abuse"),
            Err(Refusal::NotAnAddress),
            "only postmaster is ours without a domain (RFC 5321 4.1.1.3)"
        );
    }

    #[test]
    fn unknown_names_at_the_domain_are_unknown() {
        let config = config();
        for address in [
            "nobody@lists.example.org",
            "a-infos-xx@lists.example.org",
            "a-infos-xx-request@lists.example.org",
            "a-infos-en-admin@lists.example.org",
            "a-infos-en-request+x@lists.example.org",
            "+a-infos-en@lists.example.org",
        ] {
            assert_eq!(route(&config, address), Err(Refusal::Unknown), "{address}");
        }
    }

    #[test]
    fn another_domain_is_relay_and_a_bare_name_is_no_address() {
        let config = config();
        assert_eq!(route(&config, "a-infos-en@gmail.com"), Err(Refusal::Relay));
        assert_eq!(
            route(&config, "a-infos-en@sub.lists.example.org"),
            Err(Refusal::Relay)
        );
        for address in ["a-infos-en", "", "@lists.example.org", "a@"] {
            assert_eq!(
                route(&config, address),
                Err(Refusal::NotAnAddress),
                "{address:?}"
            );
        }
    }
}
