//! Snapshot tests of every digest format and of one personal message, with
//! a fixed clock, fixed ids and posts crafted here (English and Greek).

use chrono::{DateTime, Utc};
use mail_parser::MimeHeaders;

use super::headers::ListAddresses;
use super::numbering::Number;
use super::{compose_digest, Composition};
use super::{DigestMode, DigestRecord, PendingPost};
use crate::config::{parse, Config, EMBEDDED_LISTS_TOML};
use crate::deliver::message::Prepared;
use crate::deliver::DueDelivery;
use crate::post::{FiledBy, Post, Status, StoredPost};
use crate::templates::Templates;

fn config() -> Config {
    let text = EMBEDDED_LISTS_TOML.replace(
        "base_url = \"http://127.0.0.1:8080/\"",
        "base_url = \"https://news.example.org/\"",
    );
    parse(&text, "lists.toml", std::path::Path::new(".")).unwrap()
}

fn post(id: i64, list: &str, subject: &str, author: &str, body: &str, raw: &str) -> PendingPost {
    PendingPost {
        post: StoredPost {
            id,
            post: Post {
                key: Some(format!("{id:020x}")),
                message_id: Some(format!("<post{id}@example.net>")),
                list_code: Some(list.to_string()),
                lang: Some(list.to_string()),
                status: Status::Published,
                reason: None,
                filed_by: Some(FiledBy::Tag),
                tag: Some(list.to_string()),
                subject: subject.to_string(),
                title: subject.to_string(),
                translations: vec![],
                machine_translation: false,
                author_name: author.to_string(),
                author_address: format!("writer{id}@example.net"),
                date_header: Some("Tue, 03 Mar 2026 09:15:00 +0100".to_string()),
                date: Some(1_772_525_700),
                received_at: 1_772_525_760,
                body: body.to_string(),
                attachments: vec![],
                size: raw.len(),
            },
        },
        raw: Some(raw.as_bytes().to_vec()),
    }
}

fn english_posts() -> Vec<PendingPost> {
    vec![
        post(
            1,
            "en",
            "(en) France, UCL AL #316 - International: solidarity with the strikers (ca, de)",
            "Union communiste libertaire",
            "\nThe strike goes on.\n\n------------------------------\nA line of thirty hyphens above must be escaped.\n\n",
            "Received: from relay.example.net by mx.example.org\r\nFrom: Union communiste libertaire <writer1@example.net>\r\nTo: a-infos-en@lists.example.org\r\nSubject: (en) France, UCL AL #316 - International: solidarity with the\r\n strikers (ca, de)\r\nDate: Tue, 03 Mar 2026 09:15:00 +0100\r\nMessage-ID: <post1@example.net>\r\nX-Mailer: Example\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nThe strike goes on.\r\n\r\n------------------------------\r\nA line of thirty hyphens above must be escaped.\r\n",
        ),
        post(
            2,
            "en",
            "(en) Greece, Athens: open assembly",
            "",
            "Open assembly on Sunday.\nEveryone welcome.\n",
            "From: writer2@example.net\nTo: a-infos-en@lists.example.org\nCc: other@example.org\nSubject: (en) Greece, Athens: open assembly\nDate: Tue, 03 Mar 2026 09:15:00 +0100\nMessage-ID: <post2@example.net>\nKeywords: assembly, athens\n\nOpen assembly on Sunday.\nEveryone welcome.\n",
        ),
    ]
}

fn greek_posts() -> Vec<PendingPost> {
    vec![post(
        3,
        "gr",
        "(gr) Ελλάδα, Αθήνα: Ανοιχτή συνέλευση",
        "Αναρχική Ομοσπονδία",
        "Ανοιχτή συνέλευση την Κυριακή.\nΌλοι ευπρόσδεκτοι.\n",
        "From: =?utf-8?b?zpHOvc6xz4HPh865zrrOriDOn868zr/Pg8+Azr/Ovc60zq/OsQ==?= <writer3@example.net>\r\nSubject: =?utf-8?b?KGdyKSDOlc67zrvOrM60zrEsIM6RzrjOrs69zrE6IM6Rzr3Ov865z4fPhM6u?=\r\n =?utf-8?b?IM+DzrXOvc6tzrvOtc+Fz4POtw==?=\r\nDate: Tue, 03 Mar 2026 09:15:00 +0100\r\nMessage-ID: <post3@example.net>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nΑνοιχτή συνέλευση την Κυριακή.\r\nΌλοι ευπρόσδεκτοι.\r\n",
    )]
}

fn issued_at() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-04T18:00:00+00:00")
        .unwrap()
        .with_timezone(&Utc)
}

fn bodies(list: &str, posts: &[PendingPost]) -> Vec<(String, String, String)> {
    let config = config();
    let templates = Templates::shipped();
    let number = Number {
        volume: 1,
        issue: 3,
        period: "2026".to_string(),
    };
    compose_digest(&Composition {
        config: &config,
        list: config.list(list).unwrap(),
        templates: &templates,
        number: &number,
        issued_at: issued_at(),
        posts,
    })
    .unwrap()
    .into_iter()
    .map(|body| {
        (
            body.mode.as_str().to_string(),
            body.subject,
            String::from_utf8(body.entity).unwrap(),
        )
    })
    .collect()
}

/// The readable text of each format: the RFC 1153 text, the HTML page, the
/// summary text (the MIME digest is snapshotted as its entity).
fn texts(list: &str, posts: &[PendingPost]) -> Vec<(&'static str, String)> {
    let config = config();
    let templates = Templates::shipped();
    let number = Number {
        volume: 1,
        issue: 3,
        period: "2026".to_string(),
    };
    let digest = super::Digest::new(&Composition {
        config: &config,
        list: config.list(list).unwrap(),
        templates: &templates,
        number: &number,
        issued_at: issued_at(),
        posts,
    })
    .unwrap();
    vec![
        ("plain", super::plain::render_plain(&digest)),
        ("html", super::html::render_html(&digest).unwrap().0),
        ("summary", super::summary::render_summary(&digest)),
    ]
}

#[test]
fn english_digest_in_every_format() {
    for (mode, subject, entity) in bodies("en", &english_posts()) {
        assert_eq!(subject, " A-Infos English Digest, Vol 1, Issue 3");
        insta::assert_snapshot!(format!("en_{mode}_entity"), entity);
    }
    for (mode, text) in texts("en", &english_posts()) {
        insta::assert_snapshot!(format!("en_{mode}_text"), text);
    }
}

#[test]
fn greek_digest_in_every_format() {
    let bodies = bodies("gr", &greek_posts());
    let subject = &bodies[0].1;
    assert!(subject.starts_with(" =?utf-8?b?"), "{subject}");
    let mime = &bodies[0].2;
    insta::assert_snapshot!("gr_mime_entity", mime);
    for (mode, text) in texts("gr", &greek_posts()) {
        insta::assert_snapshot!(format!("gr_{mode}_text"), text);
    }
}

#[test]
fn personal_message_headers() {
    let config = config();
    let list = config.list("en").unwrap();
    let (_, subject, entity) = bodies("en", &english_posts()).remove(1);
    let record = DigestRecord {
        id: 7,
        list_code: "en".to_string(),
        volume: 1,
        issue: 3,
        period: "2026".to_string(),
        reason: "schedule".to_string(),
        issued_at: issued_at().timestamp(),
        nonce: Some("5f3a9c0e1b2d4e6f".to_string()),
    };
    let prepared = Prepared::new(
        &config,
        list,
        &record,
        DigestMode::Plain,
        &subject,
        entity.into_bytes(),
        false,
    );
    let delivery = DueDelivery {
        id: 11,
        digest_id: 7,
        subscriber_id: 42,
        list_code: "en".to_string(),
        address: "reader@example.com".to_string(),
        mode: DigestMode::Plain,
        token: "0123456789abcdef0123456789abcdef".to_string(),
        attempts: 0,
    };
    let message = prepared.message_bytes(&delivery, &[]).unwrap();
    let text = String::from_utf8(message).unwrap();
    let head = &text[..text.find("\r\n\r\n").unwrap()];
    insta::assert_snapshot!("personal_headers", head);
    let envelope = prepared.envelope(&delivery).unwrap();
    assert_eq!(
        envelope.from().unwrap().to_string(),
        "a-infos-en-bounces+reader=example.com@lists.example.org"
    );
}

#[test]
fn hard_wrapped_chinese_rejoins_without_spaces_and_no_summary_line_begins_with_a_stop() {
    let body = "世界人权宣言：人人生而自\n由，在尊严和权利上一律平等。\n他们赋有理性和良心，并应以兄弟关系的精神相对待。\n";
    let excerpt = super::excerpt(body);
    assert_eq!(
        excerpt,
        ["世界人权宣言：人人生而自由，在尊严和权利上一律平等。他们赋有理性和良心，并应以兄弟关系的精神相对待。"]
    );
    let summary_lines = super::wrap(&excerpt[0], 20);
    assert!(summary_lines.len() > 3);
    assert!(
        summary_lines
            .iter()
            .all(|line| !line.starts_with(['。', '，', '：'])),
        "{summary_lines:?}"
    );
    // Words of other scripts keep their space across a line break.
    assert_eq!(super::excerpt("strike\ngoes on\n"), ["strike goes on"]);
}

/// `count` posts to `list` whose bodies are paragraphs of the Universal
/// Declaration of Human Rights in `file` (../shared/corpus/text), four a
/// post, each post starting one paragraph further on.
fn udhr_posts(list: &str, file: &str, count: i64) -> Vec<PendingPost> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/corpus/text")
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let paragraphs: Vec<&str> = text
        .split("\n\n")
        .map(str::trim)
        .filter(|p| !p.is_empty() && !p.starts_with('#'))
        .collect();
    (0..count)
        .map(|index| {
            let start = index as usize % paragraphs.len();
            let body: Vec<&str> = (0..4)
                .map(|k| paragraphs[(start + k) % paragraphs.len()])
                .collect();
            let body = body.join("\n\n") + "\n";
            let head: String = paragraphs[start].chars().take(60).collect();
            let subject = format!("({list}) Article {index}: {head}");
            let raw = format!(
                "From: writer{index}@example.net\r\nSubject: post {index}\r\nMessage-ID: <post{index}@example.net>\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{}",
                body.replace('\n', "\r\n")
            );
            post(1000 + index, list, &subject, "Autor", &body, &raw)
        })
        .collect()
}

/// The HTML digest entity of `posts`, and its posts' permalinks as HTML
/// attributes write them.
fn html_digest(list: &str, posts: &[PendingPost]) -> (Vec<u8>, Vec<String>) {
    let entity = bodies(list, posts)
        .into_iter()
        .find(|(mode, _, _)| mode == "html")
        .unwrap()
        .2
        .into_bytes();
    let links = posts
        .iter()
        .map(|p| {
            format!(
                "https://news.example.org/posts/{}",
                p.post.key.as_deref().unwrap()
            )
            .replace('/', "&#x2f;")
        })
        .collect();
    (entity, links)
}

/// The text/plain and text/html parts of an HTML digest: their decoded
/// text and the bytes each part takes in the message, headers included.
fn alternatives(entity: &[u8]) -> ((String, usize), (String, usize)) {
    let message = mail_parser::MessageParser::default().parse(entity).unwrap();
    let part = |kind: &str| {
        let part = message
            .parts
            .iter()
            .find(|part| {
                part.content_type()
                    .is_some_and(|t| t.c_subtype.as_deref() == Some(kind))
            })
            .unwrap_or_else(|| panic!("no text/{kind} part"));
        let text = match &part.body {
            mail_parser::PartType::Text(text) | mail_parser::PartType::Html(text) => {
                text.to_string()
            }
            other => panic!("text/{kind} is {other:?}"),
        };
        (text, (part.offset_end - part.offset_header) as usize)
    };
    (part("plain"), part("html"))
}

/// Gmail clips HTML past about 102 KB, the footer with the unsubscribe link
/// included: a big day's HTML part keeps within the 90 KB budget with the
/// footer, and every post stays linked, by its section or by its title.
#[test]
fn a_big_day_s_html_part_keeps_within_the_budget_with_the_footer_and_every_post_linked() {
    let config = config();
    for (list, file) in [
        ("en", "en.txt"),
        ("gr", "el.txt"),
        ("ru", "ru.txt"),
        ("zh", "zh.txt"),
    ] {
        let posts = udhr_posts(list, file, 150);
        let (entity, links) = html_digest(list, &posts);
        let ((text, text_bytes), (html, html_bytes)) = alternatives(&entity);
        let budget = config.list(list).unwrap().digest_html_budget;
        assert_eq!(budget, 92160);
        assert!(
            html_bytes <= budget,
            "{list}: the HTML part takes {html_bytes} bytes"
        );
        // Over the budget whole: the last posts are shown by title alone.
        assert!(html.contains("id=\"shortened\""), "{list}");
        assert!(
            html.contains("href=\"#post-1\""),
            "{list}: the first post lost its section"
        );
        assert!(
            !html.contains("id=\"post-150\""),
            "{list}: the last post kept its section"
        );
        for (number, link) in links.iter().enumerate() {
            assert!(
                html.contains(link),
                "{list}: post {} is not linked",
                number + 1
            );
        }
        // The footer, with the unsubscribe link, is inside the part.
        let unsubscribe = ListAddresses::new(&config, config.list(list).unwrap()).unsubscribe_url;
        assert!(html.contains("id=\"footer\""), "{list}");
        assert!(
            html.contains(&unsubscribe.replace('/', "&#x2f;")),
            "{list}: no unsubscribe link"
        );
        assert!(html.trim_end().ends_with("</html>"), "{list}");
        // The text alternative is a summary, not the whole of every post.
        assert!(
            text_bytes <= budget,
            "{list}: the text part takes {text_bytes} bytes"
        );
        let plain = texts(list, &posts).remove(0).1;
        assert!(plain.len() > budget, "{list}: the RFC 1153 text would fit");
        assert_ne!(
            text.replace("\r\n", "\n"),
            plain,
            "{list}: the text part is the full digest"
        );
        assert!(
            text.contains(&unsubscribe),
            "{list}: no unsubscribe link in the text"
        );
        for post in &posts {
            let link = format!(
                "https://news.example.org/posts/{}",
                post.post.key.as_deref().unwrap()
            );
            assert!(text.contains(&link), "{list}: {link} not in the text part");
        }
    }
}

/// A day too big even for a line a post: the last titles give way to one
/// line linking the archive, and the footer still fits.
#[test]
fn a_day_too_big_for_its_titles_links_the_rest_to_the_archive_and_keeps_the_footer() {
    let config = config();
    let posts = udhr_posts("gr", "el.txt", 1500);
    let (entity, links) = html_digest("gr", &posts);
    let ((text, _), (html, html_bytes)) = alternatives(&entity);
    assert!(
        html_bytes <= 92160,
        "the HTML part takes {html_bytes} bytes"
    );
    assert!(html.contains(&links[0]));
    assert!(!html.contains(&links[1499]));
    assert!(html.contains("id=\"more-posts\""));
    let addresses = ListAddresses::new(&config, config.list("gr").unwrap());
    assert!(html.contains(&addresses.archive_url.replace('/', "&#x2f;")));
    assert!(html.contains(&addresses.unsubscribe_url.replace('/', "&#x2f;")));
    assert!(text.contains(&addresses.unsubscribe_url));
    assert!(text.contains(&addresses.archive_url));
}

/// A small day is sent as before: every post whole, no notice, and the
/// RFC 1153 text as the alternative.
#[test]
fn a_small_day_s_html_digest_is_whole_with_the_full_text_alternative() {
    let posts = english_posts();
    let (entity, _) = html_digest("en", &posts);
    let ((text, _), (html, _)) = alternatives(&entity);
    assert!(!html.contains("id=\"shortened\""));
    assert!(html.contains("id=\"post-2\""));
    let plain = texts("en", &posts).remove(0).1;
    assert_eq!(text.replace("\r\n", "\n"), plain);
}

/// A To name with encoded line breaks (a separator and a fake post after
/// it), a Cc name that would start a `Bcc:` line and bare CRs in the
/// original: the plain digest keeps one post with its fields on one line
/// each, and the MIME digest's copy of the original has no bare CR and no
/// field a CR made.
#[test]
fn names_and_bare_crs_never_add_a_post_or_a_field_to_a_digest() {
    let raw = "From: writer1@example.net\r\n\
        To: =?utf-8?q?Bob=0A=0A------------------------------=0A=0AFrom=3A_evil=40example.org=0ASubject=3A_fake_post?= <a-infos-en@lists.example.org>\r\n\
        Cc: =?utf-8?q?Carol=0D=0ABcc=3A_victim=40example.org?= <carol@example.org>\r\n\
        Subject: (en) Real post\rBcc: cr@example.org\r\n\
        Date: Tue, 03 Mar 2026 09:15:00 +0100\r\nMessage-ID: <post1@example.net>\r\n\r\n\
        Body line one.\rBody line two.\r\n";
    let posts = vec![post(
        1,
        "en",
        "(en) Real post",
        "",
        "Body line one.\nBody line two.\n",
        raw,
    )];
    let plain = texts("en", &posts).remove(0).1;
    assert_eq!(
        plain.matches("\n------------------------------\n").count(),
        1,
        "{plain}"
    );
    assert!(!plain.contains("\nSubject: fake post"), "{plain}");
    assert!(
        !plain.lines().any(|line| line.starts_with("Bcc:")),
        "{plain}"
    );
    let to = plain.lines().find(|line| line.starts_with("To: ")).unwrap();
    assert!(to.starts_with("To: Bob ------------------------------ From: evil@example.org Subject: fake post <a-infos-en@"), "{to}");
    let mime = bodies("en", &posts).remove(0).2;
    assert!(mime.contains("multipart/digest"), "{mime}");
    let bytes = mime.as_bytes();
    for (at, &byte) in bytes.iter().enumerate() {
        if byte == b'\r' {
            assert_eq!(bytes.get(at + 1), Some(&b'\n'), "a bare CR at {at}");
        }
    }
    assert!(!mime.contains("\r\nBcc:"), "{mime}");
    assert!(
        mime.contains("Subject: (en) Real post Bcc: cr@example.org\r\n"),
        "{mime}"
    );
    assert!(mime.contains("Body line one.\r\nBody line two."), "{mime}");
}
