//! Every reply code of the session, from a real store filled by the real
//! filer, with the shipped lists.toml (site A-Infos: groups `a-infos.*`).

use super::*;
use crate::config::Config;
use crate::ingest::{Envelope, Filer};
use crate::post::Status;
use crate::store::{self, Connection};

const NOW: i64 = 1_796_000_000;

struct Fixture {
    _dir: tempfile::TempDir,
    config: Config,
    db: Connection,
    room: Newsroom,
    session: Session,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config =
            crate::config::parse(crate::config::EMBEDDED_LISTS_TOML, "lists.toml", dir.path())
                .unwrap();
        let db = store::open(&dir.path().join("tidings.sqlite3")).unwrap();
        let room = Newsroom::new(&config, true);
        Fixture {
            _dir: dir,
            config,
            db,
            room,
            session: Session::default(),
        }
    }

    /// Files a post to `list`; returns its id.
    fn post(&mut self, list: &str, id: &str, status: Status) -> i64 {
        let raw = format!(
            "From: Ana <ana@example.net>\r\nTo: a-infos-{list}@lists.example.org\r\n\
             Subject: =?UTF-8?B?zpHOvc6xzrrOv86vzr3Pic+Dzrc=?= {id}\r\nMessage-ID: <{id}@test>\r\n\r\n\
             The text of {id}.\r\n.a line with a dot\r\n"
        );
        let envelope = Envelope {
            list_code: Some(list.to_string()),
            recipients: Vec::new(),
        };
        let mut post = Filer::new(&self.config).file_message(raw.as_bytes(), &envelope, NOW);
        post.post.status = status;
        store::transaction(&mut self.db, |tx| crate::ingest::commit(tx, &[post])).unwrap();
        self.db
            .query_row("SELECT max(id) FROM posts", [], |row| row.get(0))
            .unwrap()
    }

    fn say(&mut self, line: &str) -> (String, After) {
        let now = chrono::DateTime::from_timestamp(NOW, 0).unwrap();
        let answer = self
            .session
            .answer(line.as_bytes(), &self.db, &self.room, now);
        (String::from_utf8(answer.bytes).unwrap(), answer.after)
    }

    fn code(&mut self, line: &str) -> String {
        self.say(line).0[..3].to_string()
    }
}

#[test]
fn groups_are_listed_with_their_numbers_and_descriptions_in_their_language() {
    let mut fixture = Fixture::new();
    fixture.post("gr", "one", Status::Published);
    fixture.post("gr", "two", Status::Published);
    let (active, _) = fixture.say("LIST ACTIVE");
    assert!(active.starts_with("215 "), "{active}");
    assert!(active.contains("\r\na-infos.gr 2 1 n\r\n"), "{active}");
    assert!(active.contains("\r\na-infos.all 2 1 n\r\n"), "{active}");
    assert!(active.contains("\r\na-infos.zh 0 1 n\r\n"), "{active}");
    assert!(active.ends_with("\r\n.\r\n"));
    let (groups, _) = fixture.say("LIST NEWSGROUPS a-infos.gr");
    assert_eq!(
        groups,
        "215 list of newsgroups follows\r\na-infos.gr\tΠολύγλωσση υπηρεσία ειδήσεων από, για και σχετικά με αναρχικούς\r\n.\r\n"
    );
    assert!(fixture
        .say("LIST OVERVIEW.FMT")
        .0
        .contains("Subject:\r\nFrom:"));
    assert_eq!(fixture.code("LIST HEADERS"), "215");
}

#[test]
fn group_selects_and_articles_come_by_number_and_message_id() {
    let mut fixture = Fixture::new();
    fixture.post("gr", "one", Status::Published);
    fixture.post("gr", "two", Status::Published);
    assert_eq!(fixture.code("ARTICLE 1"), "412");
    assert_eq!(fixture.code("NEXT"), "412");
    assert_eq!(fixture.code("GROUP a-infos.nowhere"), "411");
    assert_eq!(
        fixture.say("GROUP a-infos.gr").0,
        "211 2 1 2 a-infos.gr\r\n"
    );
    let (article, _) = fixture.say("ARTICLE 2");
    assert!(article.starts_with("220 2 <two@test> article\r\nNewsgroups: a-infos.gr,a-infos.all\r\nXref: lists.example.org a-infos.gr:2 a-infos.all:2\r\nFrom: Ana"), "{article}");
    // A line starting with a dot is dot-stuffed (RFC 3977 section 3.1.1).
    assert!(
        article.ends_with("The text of two.\r\n..a line with a dot\r\n.\r\n"),
        "{article}"
    );
    let (head, _) = fixture.say("HEAD <one@test>");
    assert!(
        head.starts_with("221 1 <one@test> head\r\nNewsgroups:"),
        "{head}"
    );
    assert!(!head.contains("The text"));
    let (body, _) = fixture.say("BODY");
    assert_eq!(
        body,
        "222 2 <two@test> body\r\nThe text of two.\r\n..a line with a dot\r\n.\r\n"
    );
    assert_eq!(fixture.say("STAT 1").0, "223 1 <one@test> retrieved\r\n");
    assert_eq!(fixture.code("LAST"), "422");
    assert_eq!(fixture.say("NEXT").0, "223 2 <two@test> retrieved\r\n");
    assert_eq!(fixture.code("NEXT"), "421");
    assert_eq!(fixture.code("ARTICLE 3"), "423");
    assert_eq!(fixture.code("ARTICLE <nowhere@test>"), "430");
    assert_eq!(fixture.code("GROUP a-infos.zh"), "211");
    assert_eq!(fixture.code("ARTICLE"), "420");
    assert_eq!(fixture.code("NEXT"), "420");
}

#[test]
fn overview_and_headers_give_the_fields_as_written() {
    let mut fixture = Fixture::new();
    fixture.post("gr", "one", Status::Published);
    fixture.say("GROUP a-infos.gr");
    let (over, _) = fixture.say("OVER 1-");
    assert_eq!(
        over,
        format!(
            "224 overview information follows\r\n1\t=?UTF-8?B?zpHOvc6xzrrOv86vzr3Pic+Dzrc=?= one\tAna <ana@example.net>\t\t<one@test>\t\t{}\t2\r\n.\r\n",
            fixture
                .db
                .query_row("SELECT length(bytes) FROM raw_messages", [], |row| row.get::<_, i64>(0))
                .unwrap()
        )
    );
    assert_eq!(fixture.code("XOVER 5-9"), "423");
    assert_eq!(
        fixture.say("HDR From 1").0,
        "225 headers follow\r\n1 Ana <ana@example.net>\r\n.\r\n"
    );
    assert_eq!(
        fixture.say("HDR :lines <one@test>").0,
        "225 headers follow\r\n1 2\r\n.\r\n"
    );
    assert_eq!(
        fixture.say("XHDR Message-ID 1-").0,
        "221 headers follow\r\n1 <one@test>\r\n.\r\n"
    );
    let (listed, _) = fixture.say("LISTGROUP a-infos.gr");
    assert_eq!(listed, "211 1 1 1 a-infos.gr list follows\r\n1\r\n.\r\n");
}

#[test]
fn held_and_rejected_posts_get_no_number_and_an_approved_one_the_next() {
    let mut fixture = Fixture::new();
    fixture.post("gr", "one", Status::Published);
    let held = fixture.post("gr", "held", Status::Held);
    fixture.post("gr", "rejected", Status::Rejected);
    fixture.post("gr", "three", Status::Published);
    assert_eq!(
        fixture.say("GROUP a-infos.gr").0,
        "211 2 1 2 a-infos.gr\r\n"
    );
    assert_eq!(fixture.code("STAT <held@test>"), "430");
    store::transaction(&mut fixture.db, |tx| {
        store::posts::decide(tx, held, Status::Published, None, "moderator", NOW)
    })
    .unwrap();
    assert_eq!(
        fixture.say("GROUP a-infos.gr").0,
        "211 3 1 3 a-infos.gr\r\n"
    );
    assert_eq!(fixture.say("STAT 3").0, "223 3 <held@test> retrieved\r\n");
    assert_eq!(fixture.say("STAT 2").0, "223 2 <three@test> retrieved\r\n");
}

#[test]
fn posting_is_refused_with_the_list_address_and_the_rest_answers() {
    let mut fixture = Fixture::new();
    let (capabilities, _) = fixture.say("CAPABILITIES");
    assert!(
        capabilities.starts_with("101 ")
            && capabilities.contains("\r\nREADER\r\n")
            && capabilities.contains("\r\nSTARTTLS\r\n")
    );
    assert!(!capabilities.contains("POST"));
    assert_eq!(fixture.code("MODE READER"), "201");
    assert_eq!(fixture.code("POST"), "440");
    fixture.say("GROUP a-infos.zh");
    assert!(fixture
        .say("POST")
        .0
        .contains("a-infos-zh@lists.example.org"));
    assert_eq!(fixture.code("IHAVE <x@y>"), "435");
    assert_eq!(fixture.say("DATE").0, "111 20261130005320\r\n");
    assert_eq!(fixture.code("HELP"), "100");
    // No group has had an article: none is new yet.
    assert_eq!(
        fixture.say("NEWGROUPS 20260101 000000 GMT").0,
        "231 list of new newsgroups follows\r\n.\r\n"
    );
    fixture.post("zh", "new", Status::Published);
    // The Chinese group and the group of all lists began with it (NOW is
    // 2026-11-30), not for a reader who last looked later.
    assert_eq!(
        fixture.say("NEWGROUPS 20260101 000000 GMT").0,
        "231 list of new newsgroups follows\r\na-infos.zh 1 1 n\r\na-infos.all 1 1 n\r\n.\r\n"
    );
    assert_eq!(
        fixture.say("NEWGROUPS 20261201 000000 GMT").0,
        "231 list of new newsgroups follows\r\n.\r\n"
    );
    assert_eq!(
        fixture.say("NEWNEWS a-infos.zh 20260101 000000 GMT").0,
        "230 list of new articles follows\r\n<new@test>\r\n.\r\n"
    );
    assert_eq!(fixture.code("FROB"), "500");
    assert_eq!(fixture.code("ARTICLE x"), "501");
    assert_eq!(
        fixture.say("STARTTLS"),
        (
            "382 continue with TLS negotiation\r\n".to_string(),
            After::StartTls
        )
    );
    fixture.session = Session::under_tls();
    assert_eq!(fixture.code("STARTTLS"), "502");
    assert!(!fixture.say("CAPABILITIES").0.contains("STARTTLS"));
    assert_eq!(
        fixture.say("QUIT"),
        ("205 closing connection\r\n".to_string(), After::Close)
    );
}

#[test]
fn too_many_errors_close_with_400() {
    let mut fixture = Fixture::new();
    for _ in 0..crate::ingest::listener::MAX_ERRORS {
        assert_eq!(fixture.code("FROB"), "500");
    }
    let (reply, after) = fixture.say("FROB");
    assert!(reply.starts_with("400 "));
    assert_eq!(after, After::Close);
}

#[test]
fn a_store_that_cannot_answer_is_403_and_the_session_goes_on() {
    let mut fixture = Fixture::new();
    fixture.post("en", "one", Status::Published);
    assert_eq!(fixture.code("GROUP a-infos.en"), "211");
    // The numbers' table gone, as a damaged store might lose it.
    fixture
        .db
        .execute_batch("DROP TABLE nntp_articles")
        .unwrap();
    let (reply, after) = fixture.say("GROUP a-infos.en");
    assert!(reply.starts_with("403 "), "{reply}");
    assert_eq!(after, After::Read);
    assert_eq!(fixture.code("DATE"), "111");
}
