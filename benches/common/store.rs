//! A large store for the benchmarks: posts spread over the 16 lists of the
//! shipped lists.toml, with text from ../shared/corpus/text, as ingest
//! would file them.

use std::path::Path;

use tidings::config::{self, Config};
use tidings::post::{FiledBy, NewPost, Post, Status};
use tidings::store::{self, posts, Connection};

/// Posts per transaction while filling.
const BATCH: usize = 10_000;

pub fn configuration(dir: &Path) -> Config {
    let mut config = config::parse(config::EMBEDDED_LISTS_TOML, config::EMBEDDED_NAME, dir)
        .expect("the shipped configuration");
    config.site.data_dir = dir.join("data");
    config
}

pub fn insert(db: &mut Connection, batch: &[NewPost]) {
    store::transaction(db, |tx| posts::insert(tx, batch)).expect("insert");
}

/// Posts `0..count`, list by list in turn, as ingest would file them.
#[allow(dead_code, reason = "a benchmark that edits its posts uses fill_with")]
pub fn fill(store: &mut Connection, config: &Config, count: usize) {
    fill_with(store, config, count, |_| {});
}

/// [`fill`], each post changed by `edit` before it is stored.
pub fn fill_with(
    store: &mut Connection,
    config: &Config,
    count: usize,
    edit: impl Fn(&mut NewPost),
) {
    let texts = texts(config);
    let mut batch = Vec::with_capacity(BATCH);
    for n in 0..count {
        let mut post = new_post(config, n, &texts);
        edit(&mut post);
        batch.push(post);
        if batch.len() == BATCH {
            insert(store, &batch);
            batch.clear();
        }
    }
    insert(store, &batch);
}

/// Paragraphs of each list's language, from ../shared/corpus/text.
pub fn texts(config: &Config) -> Vec<Vec<String>> {
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/text");
    config
        .lists
        .iter()
        .map(|list| {
            let lang = if list.lang == "mul" { "en" } else { &list.lang };
            let text = std::fs::read_to_string(shared.join(format!("{lang}.txt")))
                .unwrap_or_else(|e| panic!("corpus text for {lang}: {e}"));
            text.split("\n\n")
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(str::to_string)
                .collect()
        })
        .collect()
}

pub fn new_post(config: &Config, n: usize, texts: &[Vec<String>]) -> NewPost {
    let lists = config.lists.len();
    let list = &config.lists[n % lists];
    let paragraphs = &texts[n % lists];
    // Three to six paragraphs: 1-3 KB, like a news item.
    let start = (n / lists) % paragraphs.len();
    let body: Vec<&str> = (0..3 + n % 4)
        .map(|i| paragraphs[(start + i) % paragraphs.len()].as_str())
        .collect();
    let body = format!("{}\n\nhttps://example.org/news/{n}\n", body.join("\n\n"));
    let title: String = paragraphs[start].chars().take(70).collect();
    let received_at = 1_600_000_000 + n as i64 * 30;
    NewPost {
        post: Post {
            key: Some(format!("{n:020x}")),
            message_id: Some(format!("<{n}@bench.example.org>")),
            list_code: Some(list.code.clone()),
            lang: Some(if list.lang == "mul" {
                "eu".into()
            } else {
                list.lang.clone()
            }),
            // One post in twenty is held: the feeds must step over them.
            status: if n % 20 == 7 {
                Status::Held
            } else {
                Status::Published
            },
            reason: None,
            filed_by: Some(FiledBy::Tag),
            tag: Some(list.code.clone()),
            subject: format!("({}) {title}", list.code),
            title,
            translations: Vec::new(),
            machine_translation: false,
            author_name: format!("Contributor {}", n % 997),
            author_address: format!("c{}@example.org", n % 997),
            date_header: None,
            date: Some(received_at - 600),
            received_at,
            size: body.len(),
            body,
            attachments: Vec::new(),
        },
        raw: None,
        auth_results: None,
    }
}

/// The message a post came as: its fields and text, as a contributor's
/// mailer would have sent it (UTF-8, 8bit), for what reads raw messages.
#[allow(dead_code, reason = "not every benchmark reads raw messages")]
pub fn raw_message(post: &Post) -> Vec<u8> {
    let list = post.list_code.as_deref().unwrap_or("en");
    format!(
        "From: {} <{}>\r\nTo: a-infos-{list}@lists.example.org\r\nSubject: {}\r\n\
         Date: {}\r\nMessage-ID: {}\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{}",
        post.author_name,
        post.author_address,
        post.subject,
        chrono::DateTime::from_timestamp(post.date.unwrap_or(post.received_at), 0)
            .unwrap_or_default()
            .to_rfc2822(),
        post.message_id
            .as_deref()
            .unwrap_or("<none@bench.example.org>"),
        post.body.replace('\n', "\r\n"),
    )
    .into_bytes()
}
