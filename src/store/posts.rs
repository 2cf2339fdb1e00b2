//! Posts: insert in batches, list, fetch one, fetch its raw bytes.

use rusqlite::types::Type;
use rusqlite::{params, OptionalExtension, Row};
use serde::{Deserialize, Serialize};

use super::Store;

/// Where a post stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Filed under a list and visible in digests, feeds and pages.
    Published,
    /// Kept for a moderator, with a reason.
    Held,
    /// Refused, with a reason; the sender is told.
    Rejected,
}

impl Status {
    /// The name used in SQL, JSON and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Published => "published",
            Status::Held => "held",
            Status::Rejected => "rejected",
        }
    }

    fn parse(text: &str) -> Option<Status> {
        match text {
            "published" => Some(Status::Published),
            "held" => Some(Status::Held),
            "rejected" => Some(Status::Rejected),
            _ => None,
        }
    }
}

/// An attachment of a post: listed, never inlined (its bytes stay in the
/// raw message).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    pub filename: Option<String>,
    pub content_type: String,
    pub size: usize,
}

/// A post ready to be stored, as filed by ingest.
#[derive(Debug, Clone, PartialEq)]
pub struct NewPost {
    /// Stable public key; `None` for rejected messages, which take no part
    /// in duplicate detection.
    pub key: Option<String>,
    pub message_id: Option<String>,
    pub list_code: Option<String>,
    pub lang: Option<String>,
    pub status: Status,
    pub reason: Option<String>,
    pub filed_by: Option<&'static str>,
    pub tag: Option<String>,
    pub subject: String,
    pub title: String,
    pub translations: Vec<String>,
    pub machine_translation: bool,
    pub author_name: String,
    pub author_address: String,
    pub date_header: Option<String>,
    pub date: Option<i64>,
    pub received_at: i64,
    pub body: String,
    pub attachments: Vec<Attachment>,
    pub size: usize,
    /// The message exactly as received; `None` only for messages rejected
    /// for their size.
    pub raw: Option<Vec<u8>>,
}

/// A stored post.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Post {
    pub id: i64,
    pub key: Option<String>,
    pub message_id: Option<String>,
    pub list_code: Option<String>,
    pub lang: Option<String>,
    pub status: Status,
    pub reason: Option<String>,
    pub filed_by: Option<String>,
    pub tag: Option<String>,
    pub subject: String,
    pub title: String,
    pub translations: Vec<String>,
    pub machine_translation: bool,
    pub author_name: String,
    pub author_address: String,
    pub date_header: Option<String>,
    pub date: Option<i64>,
    pub received_at: i64,
    pub body: String,
    pub attachments: Vec<Attachment>,
    pub size: usize,
}

/// What happened to one post of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// Stored under this id.
    New(i64),
    /// A post with the same key was already stored under this id.
    Duplicate(i64),
}

/// Which posts to list.
#[derive(Debug, Clone, Default)]
pub struct PostFilter {
    pub list_code: Option<String>,
    pub status: Option<Status>,
    /// At most this many, the newest (by arrival).
    pub limit: Option<usize>,
}

const POST_COLUMNS: &str = "id, key, message_id, list_code, lang, status, reason, filed_by, tag, \
     subject, title, translations, machine_translation, author_name, author_address, \
     date_header, date, received_at, body, attachments, size";

impl Store {
    /// Stores a batch of posts in one transaction. A post whose key is
    /// already stored (in the store or earlier in the batch) is not stored
    /// again. When this returns `Ok`, every post of the batch is durable.
    pub fn insert_posts(&mut self, posts: &[NewPost]) -> rusqlite::Result<Vec<Inserted>> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let mut results = Vec::with_capacity(posts.len());
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO posts (key, message_id, list_code, lang, status, reason, filed_by, tag, \
                 subject, title, translations, machine_translation, author_name, author_address, \
                 date_header, date, received_at, body, attachments, size) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20) \
                 ON CONFLICT (key) DO NOTHING",
            )?;
            let mut insert_raw =
                tx.prepare_cached("INSERT INTO raw_messages (post_id, bytes) VALUES (?1, ?2)")?;
            let mut existing = tx.prepare_cached("SELECT id FROM posts WHERE key = ?1")?;
            for post in posts {
                let changed = insert.execute(params![
                    post.key,
                    post.message_id,
                    post.list_code,
                    post.lang,
                    post.status.as_str(),
                    post.reason,
                    post.filed_by,
                    post.tag,
                    post.subject,
                    post.title,
                    to_json(&post.translations),
                    post.machine_translation,
                    post.author_name,
                    post.author_address,
                    post.date_header,
                    post.date,
                    post.received_at,
                    post.body,
                    to_json(&post.attachments),
                    post.size as i64,
                ])?;
                if changed == 0 {
                    let id = existing.query_row([&post.key], |row| row.get(0))?;
                    results.push(Inserted::Duplicate(id));
                    continue;
                }
                let id = tx.last_insert_rowid();
                if let Some(raw) = &post.raw {
                    insert_raw.execute(params![id, raw])?;
                }
                results.push(Inserted::New(id));
            }
        }
        tx.commit()?;
        Ok(results)
    }

    /// Posts matching `filter`, oldest first.
    pub fn posts(&self, filter: &PostFilter) -> rusqlite::Result<Vec<Post>> {
        let mut sql = format!("SELECT {POST_COLUMNS} FROM posts WHERE 1 = 1");
        if filter.list_code.is_some() {
            sql.push_str(" AND list_code = :list");
        }
        if filter.status.is_some() {
            sql.push_str(" AND status = :status");
        }
        sql.push_str(" ORDER BY id DESC LIMIT :limit");
        let mut statement = self.conn.prepare(&sql)?;
        let limit = filter.limit.map_or(-1, |n| n as i64);
        let status = filter.status.map(Status::as_str);
        let mut named: Vec<(&str, &dyn rusqlite::ToSql)> = vec![(":limit", &limit)];
        if let Some(list) = &filter.list_code {
            named.push((":list", list));
        }
        if let Some(status) = &status {
            named.push((":status", status));
        }
        let mut posts = statement
            .query_map(named.as_slice(), post_from_row)?
            .collect::<rusqlite::Result<Vec<Post>>>()?;
        posts.reverse();
        Ok(posts)
    }

    /// The newest `limit` published posts of a list (or of all lists), newest
    /// first. Walks the partial index, so the cost follows `limit`, not the
    /// size of the archive.
    pub fn latest_published(
        &self,
        list_code: Option<&str>,
        limit: usize,
    ) -> rusqlite::Result<Vec<Post>> {
        let limit = limit as i64;
        match list_code {
            Some(code) => {
                let mut statement = self.conn.prepare_cached(&format!(
                    "SELECT {POST_COLUMNS} FROM posts INDEXED BY posts_published_by_list \
                     WHERE list_code = ?1 AND status = 'published' ORDER BY id DESC LIMIT ?2"
                ))?;
                let posts = statement.query_map(params![code, limit], post_from_row)?;
                posts.collect()
            }
            None => {
                let mut statement = self.conn.prepare_cached(&format!(
                    "SELECT {POST_COLUMNS} FROM posts INDEXED BY posts_published \
                     WHERE status = 'published' ORDER BY id DESC LIMIT ?1"
                ))?;
                let posts = statement.query_map(params![limit], post_from_row)?;
                posts.collect()
            }
        }
    }

    /// One post by id.
    pub fn post(&self, id: i64) -> rusqlite::Result<Option<Post>> {
        self.conn
            .query_row(
                &format!("SELECT {POST_COLUMNS} FROM posts WHERE id = ?1"),
                [id],
                post_from_row,
            )
            .optional()
    }

    /// The bytes of a post exactly as they were received.
    pub fn raw_message(&self, id: i64) -> rusqlite::Result<Option<Vec<u8>>> {
        self.conn
            .query_row(
                "SELECT bytes FROM raw_messages WHERE post_id = ?1",
                [id],
                |row| row.get(0),
            )
            .optional()
    }

    /// Number of posts in each (list, status), for summaries.
    pub fn count_posts(&self) -> rusqlite::Result<Vec<(Option<String>, Status, u64)>> {
        let mut statement = self
            .conn
            .prepare("SELECT list_code, status, count(*) FROM posts GROUP BY list_code, status ORDER BY list_code, status")?;
        let rows = statement.query_map([], |row| {
            Ok((
                row.get(0)?,
                status_from(row, 1)?,
                row.get::<_, i64>(2)? as u64,
            ))
        })?;
        rows.collect()
    }
}

fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("plain data serialises")
}

fn from_json<T: for<'de> Deserialize<'de>>(row: &Row<'_>, index: usize) -> rusqlite::Result<T> {
    let text: String = row.get(index)?;
    serde_json::from_str(&text).map_err(|error| {
        rusqlite::Error::FromSqlConversionFailure(index, Type::Text, Box::new(error))
    })
}

fn status_from(row: &Row<'_>, index: usize) -> rusqlite::Result<Status> {
    let text: String = row.get(index)?;
    Status::parse(&text).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            index,
            Type::Text,
            format!("unknown status {text}").into(),
        )
    })
}

fn post_from_row(row: &Row<'_>) -> rusqlite::Result<Post> {
    Ok(Post {
        id: row.get(0)?,
        key: row.get(1)?,
        message_id: row.get(2)?,
        list_code: row.get(3)?,
        lang: row.get(4)?,
        status: status_from(row, 5)?,
        reason: row.get(6)?,
        filed_by: row.get(7)?,
        tag: row.get(8)?,
        subject: row.get(9)?,
        title: row.get(10)?,
        translations: from_json(row, 11)?,
        machine_translation: row.get(12)?,
        author_name: row.get(13)?,
        author_address: row.get(14)?,
        date_header: row.get(15)?,
        date: row.get(16)?,
        received_at: row.get(17)?,
        body: row.get(18)?,
        attachments: from_json(row, 19)?,
        size: row.get::<_, i64>(20)? as usize,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(key: &str, list: &str) -> NewPost {
        NewPost {
            key: Some(key.to_string()),
            message_id: Some(format!("<{key}@example.org>")),
            list_code: Some(list.to_string()),
            lang: Some(list.to_string()),
            status: Status::Published,
            reason: None,
            filed_by: Some("tag"),
            tag: Some(list.to_string()),
            subject: format!("({list}) Title {key}"),
            title: format!("Title {key}"),
            translations: vec!["de".into(), "fr".into()],
            machine_translation: true,
            author_name: "A. Writer".into(),
            author_address: "writer@example.org".into(),
            date_header: None,
            date: Some(1_700_000_000),
            received_at: 1_700_000_100,
            body: "Body text".into(),
            attachments: vec![],
            size: 9,
            raw: Some(b"Subject: x\r\n\r\nBody text".to_vec()),
        }
    }

    #[test]
    fn duplicates_are_stored_once_even_within_a_batch() {
        let mut store = Store::open_in_memory().unwrap();
        let first = store
            .insert_posts(&[post("a", "en"), post("b", "en"), post("a", "en")])
            .unwrap();
        assert_eq!(
            first,
            vec![Inserted::New(1), Inserted::New(2), Inserted::Duplicate(1)]
        );
        let again = store.insert_posts(&[post("b", "en")]).unwrap();
        assert_eq!(again, vec![Inserted::Duplicate(2)]);
        assert_eq!(store.posts(&PostFilter::default()).unwrap().len(), 2);
    }

    #[test]
    fn a_post_round_trips_with_its_raw_bytes() {
        let mut store = Store::open_in_memory().unwrap();
        let new = post("a", "gr");
        store.insert_posts(std::slice::from_ref(&new)).unwrap();
        let stored = store.post(1).unwrap().unwrap();
        assert_eq!(stored.translations, new.translations);
        assert!(stored.machine_translation);
        assert_eq!(stored.status, Status::Published);
        assert_eq!(store.raw_message(1).unwrap(), new.raw);
    }

    #[test]
    fn latest_published_is_per_list_and_newest_first() {
        let mut store = Store::open_in_memory().unwrap();
        let mut held = post("h", "en");
        held.status = Status::Held;
        store
            .insert_posts(&[post("1", "en"), post("2", "fr"), post("3", "en"), held])
            .unwrap();
        let en: Vec<i64> = store
            .latest_published(Some("en"), 10)
            .unwrap()
            .iter()
            .map(|p| p.id)
            .collect();
        assert_eq!(en, vec![3, 1]);
        let all: Vec<i64> = store
            .latest_published(None, 2)
            .unwrap()
            .iter()
            .map(|p| p.id)
            .collect();
        assert_eq!(all, vec![3, 2]);
    }

    #[test]
    fn migrations_are_applied_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.sqlite3");
        drop(Store::open(&path).unwrap());
        let store = Store::open(&path).unwrap();
        assert_eq!(
            store.schema_version().unwrap(),
            super::super::MIGRATIONS.len()
        );
    }
}
