//! The flows over an in-memory store: what each leaves in the store and
//! what it queues to send.

use super::*;
use crate::deliver::DeliveryState;
use crate::store::{open_in_memory, transaction, Connection};

const NOW: i64 = 1_780_000_000;

struct World {
    db: Connection,
    config: Config,
    templates: Templates,
    secret: Secret,
    now: i64,
}

impl World {
    fn new() -> World {
        let text = crate::config::EMBEDDED_LISTS_TOML.replace(
            "base_url = \"http://127.0.0.1:8080/\"",
            "base_url = \"https://news.example.org/\"",
        );
        World {
            db: open_in_memory().unwrap(),
            config: crate::config::parse(&text, "lists.toml", std::path::Path::new(".")).unwrap(),
            templates: Templates::shipped(),
            secret: Secret::from_bytes(&[42; 32]),
            now: NOW,
        }
    }

    fn run<T>(&mut self, f: impl FnOnce(&Service<'_>, &Transaction<'_>) -> anyhow::Result<T>) -> T {
        let service = Service {
            config: &self.config,
            templates: &self.templates,
            secret: &self.secret,
            now: self.now,
        };
        transaction(&mut self.db, |tx| f(&service, tx)).unwrap()
    }

    fn list(&self) -> List {
        self.config.list("en").unwrap().clone()
    }

    /// Mail as `from` sends it to `to`, handled.
    fn mail(&mut self, to: &str, sender: &str, head: &str, body: &str) -> String {
        let route = crate::ingest::route::route(&self.config, to).unwrap();
        let content = format!(
            "{head}\r\nMessage-ID: <m{}@client.example>\r\n\r\n{body}",
            self.now
        );
        self.run(|service, tx| service.handle_mail(tx, &route, sender, content.as_bytes()))
    }

    /// The notices queued so far, as text, in order.
    fn notices(&self) -> Vec<(String, String)> {
        let mut statement = self
            .db
            .prepare("SELECT recipient, message FROM outgoing ORDER BY id")
            .unwrap();
        statement
            .query_map([], |row| {
                let message: Vec<u8> = row.get(1)?;
                Ok((row.get(0)?, String::from_utf8(message).unwrap()))
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    fn subscriber(&self, address: &str) -> Option<Subscriber> {
        subscribers::find(&self.db, "en", address).unwrap()
    }
}

/// The decoded text of a queued notice.
fn text(message: &str) -> String {
    let parsed = MessageParser::new().parse(message.as_bytes()).unwrap();
    parsed.body_text(0).unwrap().into_owned()
}

fn header(message: &str, name: &'static str) -> Option<String> {
    let parsed = MessageParser::new().parse(message.as_bytes()).unwrap();
    parsed
        .header_raw(name)
        .map(|value| value.trim().to_string())
}

/// The confirmation token in a confirmation's Reply-To.
fn token_of(message: &str) -> String {
    let reply_to = header(message, "Reply-To").unwrap();
    let (_, rest) = reply_to.split_once('+').unwrap();
    rest.split('@').next().unwrap().to_string()
}

#[test]
fn asking_queues_one_confirmation_and_subscribes_nobody() {
    let mut world = World::new();
    let list = world.list();
    let asked = world.run(|s, tx| s.ask(tx, &list, "ana@example.net", Mode::Plain, Via::Web));
    let Asked::Sent { token } = asked else {
        panic!("{asked:?}")
    };
    assert!(world.subscriber("ana@example.net").is_none());
    let notices = world.notices();
    assert_eq!(notices.len(), 1);
    let (to, message) = &notices[0];
    assert_eq!(to, "ana@example.net");
    assert!(text(message).contains(&format!("https://news.example.org/confirm/{token}")));
    assert_eq!(token_of(message), token);
    assert_eq!(
        header(message, "Auto-Submitted").as_deref(),
        Some("auto-replied")
    );
    assert!(header(message, "List-Id")
        .unwrap()
        .contains("en.lists.example.org"));
    let parsed = MessageParser::new().parse(message.as_bytes()).unwrap();
    assert!(parsed
        .subject()
        .unwrap()
        .contains(&format!("(confirm {token})")));
}

#[test]
fn no_more_than_three_confirmations_a_day_go_to_an_address() {
    let mut world = World::new();
    let list = world.list();
    for mode in [Mode::Plain, Mode::Html, Mode::Mime] {
        let asked = world.run(|s, tx| s.ask(tx, &list, "ana@example.net", mode, Via::Web));
        assert!(matches!(asked, Asked::Sent { .. }));
    }
    let asked = world.run(|s, tx| s.ask(tx, &list, "ANA@example.net", Mode::Post, Via::Web));
    assert_eq!(asked, Asked::TooMany);
    assert_eq!(world.notices().len(), 3);
    // The next day, one more may go.
    world.now += 86_400 + 1;
    let asked = world.run(|s, tx| s.ask(tx, &list, "ana@example.net", Mode::Post, Via::Web));
    assert!(matches!(asked, Asked::Sent { .. }));
}

#[test]
fn a_confirmation_subscribes_once_and_forged_expired_or_foreign_tokens_nothing() {
    let mut world = World::new();
    let list = world.list();
    let Asked::Sent { token } =
        world.run(|s, tx| s.ask(tx, &list, "ana@example.net", Mode::Html, Via::Web))
    else {
        panic!()
    };
    let forged = format!("{}a", &token[..28]);
    assert_eq!(
        world.run(|s, tx| s.confirm(tx, &forged)),
        Confirmed::Invalid
    );
    let unsubscribe = world.secret.sign(Purpose::Unsubscribe, 1, None);
    assert_eq!(
        world.run(|s, tx| s.confirm(tx, &unsubscribe)),
        Confirmed::Invalid
    );
    assert!(world.subscriber("ana@example.net").is_none());

    let confirmed = world.run(|s, tx| s.confirm(tx, &token));
    assert!(
        matches!(
            confirmed,
            Confirmed::Subscribed {
                mode: Mode::Html,
                ..
            }
        ),
        "{confirmed:?}"
    );
    assert_eq!(
        world.subscriber("ana@example.net").unwrap().mode,
        Mode::Html
    );
    let welcome = &world.notices()[1].1;
    assert!(text(welcome).contains("https://news.example.org/prefs/"));
    // Replayed: nothing more happens, nothing more is sent.
    assert!(matches!(
        world.run(|s, tx| s.confirm(tx, &token)),
        Confirmed::AlreadyDone { .. }
    ));
    assert_eq!(world.notices().len(), 2);

    // A confirmation left for eight days has expired.
    let Asked::Sent { token } =
        world.run(|s, tx| s.ask(tx, &list, "bo@example.net", Mode::Post, Via::Web))
    else {
        panic!()
    };
    world.now += 8 * 86_400;
    assert_eq!(world.run(|s, tx| s.confirm(tx, &token)), Confirmed::Invalid);
    assert!(world.subscriber("bo@example.net").is_none());
}

#[test]
fn mail_to_request_subscribes_after_the_reply_to_the_confirmation() {
    let mut world = World::new();
    let outcome = world.mail(
        "a-infos-en-request@lists.example.org",
        "ana@example.net",
        "From: Ana <ana@example.net>\r\nSubject: subscribe plain",
        "",
    );
    assert!(outcome.starts_with("answered: "), "{outcome}");
    let notices = world.notices();
    assert_eq!(notices.len(), 1, "one answer");
    let token = token_of(&notices[0].1);
    assert!(world.subscriber("ana@example.net").is_none());
    // The reply goes to the confirm address, as the client sends it.
    let outcome = world.mail(
        &format!("a-infos-en-confirm+{token}@lists.example.org"),
        "ana@example.net",
        &format!(
            "From: ana@example.net\r\nSubject: Re: Confirm your subscription (confirm {token})"
        ),
        "> Someone, hopefully you, asked\r\n",
    );
    assert!(outcome.contains("confirmed"), "{outcome}");
    assert_eq!(
        world.subscriber("ana@example.net").unwrap().mode,
        Mode::Plain
    );
    let notices = world.notices();
    assert_eq!(notices.len(), 2);
    assert!(
        text(&notices[1].1).contains("now receives"),
        "{}",
        notices[1].1
    );
}

#[test]
fn a_subscriber_leaves_by_mail_in_one_step_with_one_goodbye() {
    let mut world = World::new();
    world.run(|_, tx| {
        Ok(subscribers::add(
            tx,
            "en",
            &["ana@example.net".into()],
            Mode::Mime,
            NOW,
        )?)
    });
    let outcome = world.mail(
        "a-infos-en-unsubscribe@lists.example.org",
        "ana@example.net",
        "From: ana@example.net\r\nSubject: unsubscribe",
        "",
    );
    assert!(outcome.contains("unsubscribed"), "{outcome}");
    assert!(world.subscriber("ana@example.net").is_none());
    let notices = world.notices();
    assert_eq!(notices.len(), 1);
    assert!(text(&notices[0].1).contains("no longer receives"));
}

#[test]
fn several_commands_get_one_answer() {
    let mut world = World::new();
    world.run(|_, tx| {
        Ok(subscribers::add(
            tx,
            "en",
            &["ana@example.net".into()],
            Mode::Mime,
            NOW,
        )?)
    });
    world.mail(
        "a-infos-en-request@lists.example.org",
        "ana@example.net",
        "From: ana@example.net\r\nSubject: Re: hello",
        "set mode post\r\nwho am i\r\nhelp\r\n\r\n-- \r\nAna\r\n",
    );
    let notices = world.notices();
    assert_eq!(notices.len(), 1);
    let answer = text(&notices[0].1);
    assert!(answer.contains("> set mode post"), "{answer}");
    assert!(answer.contains("after the next digest"), "{answer}");
    assert!(
        answer.contains("English (en)") || answer.contains("(en)"),
        "{answer}"
    );
    assert!(answer.contains("subscribe [MODE]"), "{answer}");
    assert_eq!(
        world.subscriber("ana@example.net").unwrap().next_mode,
        Some(Mode::Post)
    );
}

#[test]
fn automatic_mail_and_our_own_is_kept_and_never_answered() {
    let mut world = World::new();
    let cases = [
        ("", "From: mailer-daemon@example.net\r\nSubject: subscribe"),
        (
            "ana@example.net",
            "From: ana@example.net\r\nAuto-Submitted: auto-replied\r\nSubject: subscribe",
        ),
        (
            "ana@example.net",
            "From: ana@example.net\r\nPrecedence: bulk\r\nSubject: subscribe",
        ),
        (
            "ana@example.net",
            "From: ana@example.net\r\nList-Id: <other.example.net>\r\nSubject: subscribe",
        ),
        (
            "a-infos-en@lists.example.org",
            "From: A-Infos <a-infos-en@lists.example.org>\r\nSubject: subscribe",
        ),
    ];
    for (sender, head) in cases {
        let outcome = world.mail("a-infos-en-request@lists.example.org", sender, head, "");
        assert!(outcome.starts_with("ignored: "), "{head}: {outcome}");
    }
    assert!(world.notices().is_empty());
    let kept: i64 = world
        .db
        .query_row(
            "SELECT count(*) FROM mail WHERE outcome LIKE 'ignored: %'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(kept, 5, "every message is kept");
}

#[test]
fn forged_senders_cannot_make_the_list_mail_a_stranger_more_than_three_times() {
    let mut world = World::new();
    for n in 0..10 {
        world.now += 60;
        world.mail(
            "a-infos-en-request@lists.example.org",
            "victim@example.net",
            &format!("From: victim@example.net\r\nSubject: help {n}"),
            "help\r\n",
        );
    }
    assert_eq!(world.notices().len(), MAX_NOTICES);
    let states: Vec<DeliveryState> = world
        .db
        .prepare("SELECT state FROM outgoing")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(states.iter().all(|state| *state == DeliveryState::Queued));
}

#[test]
fn a_greek_list_subscriber_is_asked_to_confirm_in_greek() {
    // The Greek list's code is "gr", its language "el": the notice is in
    // the language, from mail/el/.
    let mut world = World::new();
    let list = world.config.list("gr").unwrap().clone();
    assert_eq!(list.lang, "el");
    let asked = world.run(|s, tx| s.ask(tx, &list, "eleni@example.net", Mode::Post, Via::Web));
    let Asked::Sent { token } = asked else {
        panic!("{asked:?}")
    };
    // And by mail to the list's -request address.
    world.mail(
        "a-infos-gr-request@lists.example.org",
        "nikos@example.net",
        "From: nikos@example.net\r\nSubject: subscribe plain",
        "",
    );
    let notices = world.notices();
    assert_eq!(notices.len(), 2);
    for (_, message) in &notices {
        let parsed = MessageParser::new().parse(message.as_bytes()).unwrap();
        let subject = parsed.subject().unwrap();
        assert!(subject.starts_with("Επιβεβαιώστε"), "{subject}");
        assert!(subject.contains("(confirm "), "{subject}");
        let body = text(message);
        assert!(body.contains("επιβεβαιώσετε"), "{body}");
        assert!(!body.contains("Someone, hopefully you"), "{body}");
    }
    let first = text(&notices[0].1);
    assert!(first.contains("κάθε δημοσίευση μόλις φτάνει"), "{first}");
    assert!(first.contains(&format!("https://news.example.org/confirm/{token}")));
    let second = text(&notices[1].1);
    assert!(
        second.contains("καθημερινή σύνοψη σε απλό κείμενο"),
        "{second}"
    );
}
