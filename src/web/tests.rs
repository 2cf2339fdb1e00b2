//! The web side in process: the router of [`super::router`] driven with
//! `tower::ServiceExt::oneshot` over a feeds directory in a tempdir, as a
//! feed reader, a cache and a prober would ask, and the pure helpers
//! underneath.

use std::io::Read;
use std::time::{Duration, UNIX_EPOCH};

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Request};
use tower::ServiceExt;

use super::feeds::feed_format;
use super::files::not_modified;
use super::*;
use crate::digest::DigestMode;
use crate::feeds::Format;
use crate::tokens::Purpose;

#[test]
fn conditional_requests_follow_rfc_9110() {
    let modified = UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
    let mut request = HeaderMap::new();
    assert!(!not_modified(&request, "\"a\"", modified));
    request.insert(
        header::IF_MODIFIED_SINCE,
        HeaderValue::from_str(&httpdate::fmt_http_date(modified)).unwrap(),
    );
    assert!(not_modified(&request, "\"a\"", modified));
    // If-None-Match wins over If-Modified-Since.
    request.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"b\""));
    assert!(!not_modified(&request, "\"a\"", modified));
    request.insert(
        header::IF_NONE_MATCH,
        HeaderValue::from_static("\"b\", W/\"a\""),
    );
    assert!(not_modified(&request, "\"a\"", modified));
}

#[test]
fn only_feed_files_are_served() {
    assert_eq!(feed_format("en.atom"), Some(Format::Atom));
    assert_eq!(feed_format("all.json"), Some(Format::Json));
    assert_eq!(feed_format("tidings.sqlite3"), None);
}

/// 2024-01-07 10:00:00 UTC, the modification time of the feeds written here.
const MODIFIED_SECS: u64 = 1_704_621_600;
const MODIFIED_HTTP: &str = "Sun, 07 Jan 2024 10:00:00 GMT";

/// A feeds directory of its own, with the router that serves it.
struct Site {
    dir: tempfile::TempDir,
    metrics: Arc<Metrics>,
    store: Handle,
    secret: Arc<Secret>,
    /// The SMTP listener /healthz reports on.
    smtp: Arc<crate::health::Listener>,
    router: Router,
}

/// What a request got back.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: HeaderName) -> Option<&str> {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("ascii header"))
    }
}

impl Site {
    /// `dir/feeds` is the feeds directory; `dir` itself holds what must
    /// never be served from it.
    fn new() -> Site {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("feeds")).expect("feeds dir");
        let metrics = Arc::new(Metrics::default());
        let store =
            crate::store::Handle::open(&dir.path().join("tidings.sqlite3"), 1).expect("a store");
        let text = crate::config::EMBEDDED_LISTS_TOML.replace(
            "base_url = \"http://127.0.0.1:8080/\"",
            "base_url = \"https://news.example.org/\"",
        );
        let config = crate::config::parse(&text, "lists.toml", dir.path()).expect("config");
        let (_, config) = watch::channel(Arc::new(config));
        let secret = Arc::new(Secret::from_bytes(&[3; 32]));
        let smtp = Arc::new(crate::health::Listener::new(
            "smtp",
            "127.0.0.1:8025".parse().expect("an address"),
            true,
        ));
        let web = Arc::new(Web {
            feeds_dir: dir.path().join("feeds"),
            metrics: metrics.clone(),
            store: store.clone(),
            config,
            templates: Arc::new(Templates::shipped()),
            secret: secret.clone(),
            outbox: Arc::new(Notify::new()),
            health: Arc::new(Health {
                listeners: vec![smtp.clone()],
            }),
        });
        Site {
            dir,
            metrics,
            store,
            secret,
            smtp,
            router: router(web),
        }
    }

    fn feeds_dir(&self) -> PathBuf {
        self.dir.path().join("feeds")
    }

    /// Writes `bytes` at `path` (relative to the feeds directory), modified
    /// `seconds` after [`MODIFIED_SECS`].
    fn write(&self, path: &str, bytes: &[u8], seconds: u64) {
        let path = self.feeds_dir().join(path);
        std::fs::write(&path, bytes).expect("write feed");
        std::fs::File::options()
            .write(true)
            .open(&path)
            .and_then(|file| {
                file.set_modified(UNIX_EPOCH + Duration::from_secs(MODIFIED_SECS + seconds))
            })
            .expect("set the modification time");
    }

    async fn get(&self, uri: &str, headers: &[(HeaderName, &str)]) -> Answer {
        let mut request = Request::builder().uri(uri);
        for (name, value) in headers {
            request = request.header(name, *value);
        }
        self.send(request.body(Body::empty()).expect("request"))
            .await
    }

    /// POSTs `form` (application/x-www-form-urlencoded) to `uri`.
    async fn post(&self, uri: &str, form: &str) -> Answer {
        let request = Request::builder()
            .method("POST")
            .uri(uri)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(form.to_string()))
            .expect("request");
        self.send(request).await
    }

    async fn send(&self, request: Request<Body>) -> Answer {
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("the router answers");
        let (parts, body) = response.into_parts();
        let body = axum::body::to_bytes(body, usize::MAX)
            .await
            .expect("the whole body");
        Answer {
            status: parts.status,
            headers: parts.headers,
            body: body.to_vec(),
        }
    }
}

/// An Atom feed long enough to be worth compressing.
fn atom_feed() -> Vec<u8> {
    let mut feed = String::from(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<feed xmlns=\"http://www.w3.org/2005/Atom\">\n<title>A-Infos (en)</title>\n",
    );
    for n in 0..20 {
        feed.push_str(&format!(
            "<entry><id>tag:lists.example.org,2026:posts/{n:020x}</id><title>Général strike, day {n}</title></entry>\n"
        ));
    }
    feed.push_str("</feed>\n");
    feed.into_bytes()
}

#[tokio::test]
async fn each_feed_is_served_with_its_media_type_etag_and_last_modified() {
    let site = Site::new();
    let formats = [
        ("en.rss", "application/rss+xml; charset=utf-8"),
        ("en.atom", "application/atom+xml; charset=utf-8"),
        ("en.rdf", "application/rdf+xml; charset=utf-8"),
        ("en.json", "application/feed+json; charset=utf-8"),
    ];
    for (name, _) in formats {
        site.write(name, format!("the feed {name}\n").as_bytes(), 0);
    }
    for (name, media_type) in formats {
        let answer = site.get(&format!("/feeds/{name}"), &[]).await;
        assert_eq!(answer.status, StatusCode::OK, "{name}");
        assert_eq!(answer.header(header::CONTENT_TYPE), Some(media_type));
        assert_eq!(
            answer.body,
            std::fs::read(site.feeds_dir().join(name)).unwrap()
        );
        assert_eq!(answer.header(header::LAST_MODIFIED), Some(MODIFIED_HTTP));
        assert_eq!(
            answer.header(header::CACHE_CONTROL),
            Some("public, max-age=60")
        );
        assert!(
            answer
                .headers
                .get_all(header::VARY)
                .iter()
                .any(|v| v.as_bytes().eq_ignore_ascii_case(b"accept-encoding")),
            "{:?}",
            answer.headers
        );
        let etag = answer.header(header::ETAG).expect("an ETag").to_string();
        assert!(
            etag.len() > 2 && etag.starts_with('"') && etag.ends_with('"'),
            "a strong entity tag: {etag}"
        );
        // A second poll of the same file gets the same validators.
        let again = site.get(&format!("/feeds/{name}"), &[]).await;
        assert_eq!(again.header(header::ETAG), Some(etag.as_str()));
    }
}

#[tokio::test]
async fn a_conditional_get_that_matches_is_answered_304_without_the_body() {
    let site = Site::new();
    site.write("en.atom", &atom_feed(), 0);
    let first = site.get("/feeds/en.atom", &[]).await;
    let etag = first.header(header::ETAG).expect("an ETag").to_string();
    let among_others = format!("\"other\", W/{etag}");

    for request in [
        (header::IF_NONE_MATCH, etag.as_str()),
        (header::IF_NONE_MATCH, among_others.as_str()),
        (header::IF_MODIFIED_SINCE, MODIFIED_HTTP),
        (header::IF_MODIFIED_SINCE, "Sun, 07 Jan 2024 11:00:00 GMT"),
    ] {
        let answer = site
            .get("/feeds/en.atom", std::slice::from_ref(&request))
            .await;
        assert_eq!(answer.status, StatusCode::NOT_MODIFIED, "{request:?}");
        assert!(answer.body.is_empty(), "{request:?}");
        // RFC 9110 15.4.5: a 304 carries the validators a 200 would.
        assert_eq!(answer.header(header::ETAG), Some(etag.as_str()));
        assert_eq!(answer.header(header::LAST_MODIFIED), Some(MODIFIED_HTTP));
    }
    for request in [
        (header::IF_NONE_MATCH, "\"other\""),
        (header::IF_MODIFIED_SINCE, "Sun, 07 Jan 2024 09:59:59 GMT"),
    ] {
        let answer = site
            .get("/feeds/en.atom", std::slice::from_ref(&request))
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{request:?}");
        assert_eq!(answer.body, atom_feed(), "{request:?}");
    }

    // A rewritten feed has new validators: the old ETag gets the new body.
    let mut changed = atom_feed();
    changed.extend_from_slice(b"<!-- one more -->\n");
    site.write("en.atom", &changed, 60);
    let answer = site
        .get("/feeds/en.atom", &[(header::IF_NONE_MATCH, etag.as_str())])
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body, changed);
    assert_ne!(answer.header(header::ETAG), Some(etag.as_str()));
    assert_eq!(
        answer.header(header::LAST_MODIFIED),
        Some("Sun, 07 Jan 2024 10:01:00 GMT")
    );
}

#[tokio::test]
async fn a_feed_is_gzipped_when_the_client_asks_and_decodes_to_the_file() {
    let site = Site::new();
    site.write("en.atom", &atom_feed(), 0);
    let answer = site
        .get("/feeds/en.atom", &[(header::ACCEPT_ENCODING, "gzip")])
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.header(header::CONTENT_ENCODING), Some("gzip"));
    assert_ne!(answer.body, atom_feed());
    let mut decoded = Vec::new();
    flate2::read::GzDecoder::new(answer.body.as_slice())
        .read_to_end(&mut decoded)
        .expect("a gzip stream");
    assert_eq!(decoded, atom_feed());

    let plain = site.get("/feeds/en.atom", &[]).await;
    assert_eq!(plain.header(header::CONTENT_ENCODING), None);
    assert_eq!(plain.body, atom_feed());

    // RFC 9110 8.8.3: another encoding is another representation, so its
    // strong ETag differs; either one given back is a match.
    let gzip_etag = answer.header(header::ETAG).unwrap().to_string();
    let plain_etag = plain.header(header::ETAG).unwrap().to_string();
    assert_ne!(gzip_etag, plain_etag);
    assert!(gzip_etag.ends_with("-gzip\""), "{gzip_etag}");
    for etag in [&gzip_etag, &plain_etag] {
        let again = site
            .get(
                "/feeds/en.atom",
                &[
                    (header::ACCEPT_ENCODING, "gzip"),
                    (header::IF_NONE_MATCH, etag.as_str()),
                ],
            )
            .await;
        assert_eq!(again.status, StatusCode::NOT_MODIFIED, "{etag}");
    }
}

#[tokio::test]
async fn dot_files_traversal_other_files_and_missing_feeds_are_404() {
    let site = Site::new();
    site.write("en.atom", &atom_feed(), 0);
    // The feed writer's own files, a dot file with a feed's extension, a
    // file that is not a feed, and a feed outside the directory.
    let private: [&[u8]; 4] = [
        b"en 1-0123456789abcdef\n",
        b"a half-written feed",
        b"not a feed",
        b"not for the web",
    ];
    site.write(".fingerprints", private[0], 0);
    site.write(".en.atom", private[1], 0);
    site.write(".en.atom.1234.tmp", private[1], 0);
    site.write("notes.txt", private[2], 0);
    std::fs::create_dir(site.feeds_dir().join("sub")).unwrap();
    std::fs::write(site.dir.path().join("secret.atom"), private[3]).unwrap();
    let secret = site.dir.path().join("secret.atom");
    let absolute = secret.to_str().unwrap().replace('/', "%2F");

    assert_eq!(site.get("/feeds/en.atom", &[]).await.status, StatusCode::OK);
    for (uri, name) in [
        ("/feeds/.fingerprints".to_string(), Some(".fingerprints")),
        ("/feeds/.en.atom".to_string(), Some(".en.atom")),
        (
            "/feeds/.en.atom.1234.tmp".to_string(),
            Some(".en.atom.1234.tmp"),
        ),
        ("/feeds/notes.txt".to_string(), Some("notes.txt")),
        (
            "/feeds/..%2Fsecret.atom".to_string(),
            Some("../secret.atom"),
        ),
        (
            "/feeds/sub%2F..%2F..%2Fsecret.atom".to_string(),
            Some("sub/../../secret.atom"),
        ),
        (format!("/feeds/{absolute}"), secret.to_str()),
        ("/feeds/../secret.atom".to_string(), Some("../secret.atom")),
        ("/feeds/fr.atom".to_string(), None),
    ] {
        // Each file exists but the missing one's: only the routing (for
        // the raw `..`) and the handler's checks keep it from being served.
        if let Some(name) = name {
            assert!(site.feeds_dir().join(name).is_file(), "{name}");
        }
        let answer = site.get(&uri, &[]).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{uri}");
        assert!(
            !private.contains(&answer.body.as_slice()),
            "{uri}: {:?}",
            String::from_utf8_lossy(&answer.body)
        );
    }
}

#[tokio::test]
async fn healthz_and_metrics_answer_in_plain_text() {
    let site = Site::new();
    let health = site.get("/healthz", &[]).await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(
        health.header(header::CONTENT_TYPE),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(
        String::from_utf8_lossy(&health.body),
        "ok\nstore ok\nsmtp 127.0.0.1:8025 listening\n"
    );
    // A mail listener that cannot accept makes the daemon unhealthy, and
    // says why: it answered "ok" while SMTP was unreachable (issue 13).
    site.smtp.set(crate::health::State::Failing(
        "Too many open files (os error 24)".into(),
        std::time::Instant::now(),
    ));
    let health = site.get("/healthz", &[]).await;
    assert_eq!(health.status, StatusCode::SERVICE_UNAVAILABLE);
    let text = String::from_utf8_lossy(&health.body);
    assert!(text.starts_with("down\nstore ok\n"), "{text}");
    assert!(
        text.contains("smtp 127.0.0.1:8025 failing for 0s: Too many open files"),
        "{text}"
    );
    site.smtp.set(crate::health::State::Listening);

    site.metrics.count_post(Some("en"), "stored");
    let metrics = site.get("/metrics", &[]).await;
    assert_eq!(metrics.status, StatusCode::OK);
    // The Prometheus text exposition format, version 0.0.4.
    assert_eq!(
        metrics.header(header::CONTENT_TYPE),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let text = String::from_utf8(metrics.body).expect("utf-8 metrics");
    assert!(
        text.contains("tidings_posts_received_total{list=\"en\",outcome=\"stored\"} 1\n"),
        "{text}"
    );
}

impl Answer {
    fn text(&self) -> String {
        String::from_utf8(self.body.clone()).expect("utf-8 page")
    }
}

impl Site {
    /// The notices queued so far: (recipient, decoded text).
    async fn notices(&self) -> Vec<(String, String)> {
        self.store
            .read(|db| {
                let mut statement =
                    db.prepare("SELECT recipient, message FROM outgoing ORDER BY id")?;
                let rows = statement.query_map([], |row| {
                    Ok((row.get::<_, String>(0)?, row.get::<_, Vec<u8>>(1)?))
                })?;
                let mut notices = Vec::new();
                for row in rows {
                    let (to, message) = row?;
                    let parsed = mail_parser::MessageParser::new().parse(&message).unwrap();
                    notices.push((to, parsed.body_text(0).unwrap().into_owned()));
                }
                Ok::<_, crate::store::Error>(notices)
            })
            .await
            .unwrap()
    }

    async fn subscriber(
        &self,
        list: &str,
        address: &str,
    ) -> Option<crate::subscribers::Subscriber> {
        let (list, address) = (list.to_string(), address.to_string());
        self.store
            .read(move |db| crate::store::subscribers::find(db, &list, &address))
            .await
            .unwrap()
    }

    async fn subscribe(&self, list: &str, address: &str, mode: crate::subscribers::Mode) -> i64 {
        let (list, address) = (list.to_string(), address.to_string());
        self.store
            .write(move |tx| {
                crate::store::subscribers::add(tx, &list, std::slice::from_ref(&address), mode, 1)?;
                Ok::<_, crate::store::Error>(
                    crate::store::subscribers::find(tx, &list, &address)?
                        .unwrap()
                        .id,
                )
            })
            .await
            .unwrap()
    }
}

/// The path of the first URL in `text` under the test site that starts
/// with `prefix` (e.g. "confirm/").
fn site_path(text: &str, prefix: &str) -> String {
    let start = format!("https://news.example.org/{prefix}");
    let at = text
        .find(&start)
        .unwrap_or_else(|| panic!("no {start} in {text}"));
    let url: String = text[at..]
        .chars()
        .take_while(|c| !c.is_whitespace())
        .collect();
    url.trim_start_matches("https://news.example.org")
        .to_string()
}

#[tokio::test]
async fn subscribing_on_the_web_waits_for_the_confirmation_and_a_get_of_its_link_changes_nothing() {
    use crate::subscribers::Mode;
    let site = Site::new();
    let form = site.get("/lists/en/subscribe", &[]).await;
    assert_eq!(form.status, StatusCode::OK);
    assert!(form.text().contains("name=\"address\""));
    assert!(form.text().contains("lang=\"en\""));
    let asked = site
        .post("/lists/en/subscribe", "address=Ana%40Example.net&mode=html")
        .await;
    assert_eq!(asked.status, StatusCode::OK, "{}", asked.text());
    assert!(asked.text().contains("Check your mail"));
    assert!(site.subscriber("en", "ana@example.net").await.is_none());
    let notices = site.notices().await;
    assert_eq!(notices.len(), 1);
    assert_eq!(notices[0].0, "Ana@example.net");
    let confirm = site_path(&notices[0].1, "confirm/");

    // A link scanner's GET subscribes nobody.
    let page = site.get(&confirm, &[]).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text().contains("method=\"post\""), "{}", page.text());
    assert!(site.subscriber("en", "ana@example.net").await.is_none());

    let confirmed = site.post(&confirm, "").await;
    assert_eq!(confirmed.status, StatusCode::OK);
    assert!(
        confirmed.text().contains("You are subscribed"),
        "{}",
        confirmed.text()
    );
    assert_eq!(
        site.subscriber("en", "ana@example.net").await.unwrap().mode,
        Mode::Html
    );
    // Replayed, it changes nothing and sends nothing more (confirmation and welcome).
    let again = site.post(&confirm, "").await;
    assert!(again.text().contains("used already"), "{}", again.text());
    assert_eq!(site.notices().await.len(), 2);

    let forged = format!("{}x", &confirm[..confirm.len() - 1]);
    assert_eq!(site.post(&forged, "").await.status, StatusCode::NOT_FOUND);
    assert_eq!(site.get(&forged, &[]).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_bad_address_gets_the_form_again_and_nothing_is_sent() {
    let site = Site::new();
    for bad in ["nobody", "a%40%5B127.0.0.1%5D", "a%40localhost"] {
        let answer = site
            .post("/lists/en/subscribe", &format!("address={bad}&mode=post"))
            .await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(answer.text().contains("name=\"address\""));
    }
    assert!(site.notices().await.is_empty());
    assert_eq!(
        site.get("/lists/xx/subscribe", &[]).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn a_hundred_requests_for_one_address_send_three_confirmations() {
    let site = Site::new();
    for _ in 0..100 {
        let answer = site
            .post(
                "/lists/en/subscribe",
                "address=victim%40example.net&mode=post",
            )
            .await;
        // The same page whatever happened: nobody learns anything.
        assert!(answer.text().contains("Check your mail"));
    }
    assert_eq!(site.notices().await.len(), 3);
}

#[tokio::test]
async fn one_click_unsubscribe_leaves_at_once_a_get_does_not_and_foreign_tokens_do_nothing() {
    use crate::subscribers::Mode;
    let site = Site::new();
    let id = site.subscribe("en", "ana@example.net", Mode::Mime).await;
    let other = site.subscribe("en", "bo@example.net", Mode::Mime).await;
    let token = site.secret.sign(Purpose::Unsubscribe, id, None);
    let page = site.get(&format!("/unsubscribe/{token}"), &[]).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(site.subscriber("en", "ana@example.net").await.is_some());
    // Another purpose's token for the same id, or a forged one: nothing.
    let preferences = site.secret.sign(Purpose::Preferences, id, None);
    for wrong in [preferences, format!("{}a", &token[..28])] {
        let answer = site
            .post(
                &format!("/unsubscribe/{wrong}"),
                "List-Unsubscribe=One-Click",
            )
            .await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND);
    }
    assert!(site.subscriber("en", "ana@example.net").await.is_some());
    // RFC 8058: the POST a mail client makes, answered 200, no redirect.
    let answer = site
        .post(
            &format!("/unsubscribe/{token}"),
            "List-Unsubscribe=One-Click",
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(answer.text().contains("You have left"), "{}", answer.text());
    assert!(site.subscriber("en", "ana@example.net").await.is_none());
    assert!(
        site.subscriber("en", "bo@example.net").await.is_some(),
        "{other}"
    );
    let again = site
        .post(
            &format!("/unsubscribe/{token}"),
            "List-Unsubscribe=One-Click",
        )
        .await;
    assert_eq!(again.status, StatusCode::OK);
}

#[tokio::test]
async fn the_preferences_page_changes_modes_joins_and_leaves_with_posts_only() {
    use crate::subscribers::Mode;
    let site = Site::new();
    let id = site.subscribe("en", "ana@example.net", Mode::Mime).await;
    let person = site
        .subscriber("en", "ana@example.net")
        .await
        .unwrap()
        .person_id;
    let token = site.secret.sign(Purpose::Preferences, person, None);
    let path = format!("/prefs/{token}");
    let page = site.get(&path, &[]).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text().contains("ana@example.net"));
    let changed = site.post(&path, "action=mode&list=en&mode=plain").await;
    assert_eq!(changed.status, StatusCode::SEE_OTHER);
    assert_eq!(
        site.subscriber("en", "ana@example.net").await.unwrap().mode,
        Mode::Plain
    );
    site.post(&path, "action=join&list=ca&mode=post").await;
    assert_eq!(
        site.subscriber("ca", "ana@example.net").await.unwrap().mode,
        Mode::Post
    );
    // The page speaks the language of the person's first list, now the
    // Castellano one.
    let done = site.get(&format!("{path}?done=joined"), &[]).await;
    assert!(
        done.text().contains("Hecho: ya está suscrito."),
        "{}",
        done.text()
    );
    site.post(&path, "action=leave&list=en").await;
    assert!(
        site.subscriber("en", "ana@example.net").await.is_none(),
        "{id}"
    );
    // Someone else's token opens nothing.
    let forged = format!(
        "/prefs/{}",
        site.secret.sign(Purpose::Unsubscribe, person, None)
    );
    assert_eq!(site.get(&forged, &[]).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_greek_list_pages_are_in_greek() {
    let site = Site::new();
    let page = site.get("/lists/gr/subscribe", &[]).await;
    assert_eq!(page.status, StatusCode::OK);
    let text = page.text();
    assert!(text.contains("<html lang=\"el\""), "{text}");
    assert!(text.contains("<h1>Εγγραφή</h1>"), "{text}");
    assert!(text.contains("καθημερινή σύνοψη σε απλό κείμενο"), "{text}");
    assert!(!text.contains("Your mail address"), "{text}");
}

#[tokio::test]
async fn the_preferences_page_chooses_one_digest_across_lists_and_one_click_leaves_them_all() {
    use crate::subscribers::Mode;
    let site = Site::new();
    site.subscribe("en", "ana@example.net", Mode::Mime).await;
    let page_of = |person| {
        format!(
            "/prefs/{}",
            site.secret.sign(Purpose::Preferences, person, None)
        )
    };
    let person = site
        .subscriber("en", "ana@example.net")
        .await
        .unwrap()
        .person_id;
    let path = page_of(person);
    // One list's digest: nothing to combine, nothing offered.
    assert!(!site
        .get(&path, &[])
        .await
        .text()
        .contains("action\" value=\"combine\""));
    site.subscribe("fr", "ana@example.net", Mode::Plain).await;
    site.subscribe("de", "ana@example.net", Mode::Post).await;
    let page = site.get(&path, &[]).await.text();
    assert!(page.contains("value=\"combine\""), "{page}");
    assert!(page.contains("value=\"en, fr\""), "{page}");

    // French first, weekly, plain; German comes by post and stays out.
    let chosen = site
        .post(
            &path,
            "action=combine&order=fr%2C+de%2C+en&schedule=weekly&mode=plain",
        )
        .await;
    assert_eq!(chosen.status, StatusCode::SEE_OTHER);
    let choice = site
        .store
        .read(move |db| store::combined::get(db, person))
        .await
        .unwrap()
        .expect("a choice");
    assert_eq!(choice.lists, ["fr", "en"]);
    assert_eq!(
        (choice.schedule.as_str(), choice.mode),
        ("weekly", DigestMode::Plain)
    );
    let page = site.get(&format!("{path}?done=combined"), &[]).await.text();
    assert!(page.contains("value=\"separate\""), "{page}");

    // The digest's one-click link leaves the lists it covers, takes back
    // one of its messages still waiting and ends the choice; German, by
    // post, stays. A token for another purpose does nothing.
    let wrong = site.secret.sign(Purpose::Unsubscribe, person, None);
    let refused = site
        .post(
            &format!("/unsubscribe-all/{wrong}"),
            "List-Unsubscribe=One-Click",
        )
        .await;
    assert_eq!(refused.status, StatusCode::NOT_FOUND);
    let waiting = crate::deliver::NewMessage {
        kind: crate::deliver::MessageKind::Combined,
        list_code: Some("fr".into()),
        sender: String::new(),
        recipient: "ana@example.net".into(),
        message: b"Subject: a digest across lists\r\n\r\nposts\r\n".to_vec(),
        sign: false,
    };
    site.store
        .write(move |tx| store::outgoing::queue(tx, &waiting, 0))
        .await
        .unwrap();
    let token = site.secret.sign(Purpose::LeaveAll, person, None);
    let shown = site.get(&format!("/unsubscribe-all/{token}"), &[]).await;
    let shown = shown.text();
    // The lists it names, German not among them.
    assert!(shown.contains(" : Français, English.</p>"), "{shown}");
    assert!(
        shown.contains("<html lang=\"fr\""),
        "in the first list's language: {shown}"
    );
    assert!(site.subscriber("fr", "ana@example.net").await.is_some());
    let left = site
        .post(
            &format!("/unsubscribe-all/{token}"),
            "List-Unsubscribe=One-Click",
        )
        .await;
    assert_eq!(left.status, StatusCode::OK);
    assert!(
        left.text().contains(" : Français, English.</p>"),
        "{}",
        left.text()
    );
    for list in ["en", "fr"] {
        assert!(
            site.subscriber(list, "ana@example.net").await.is_none(),
            "{list}"
        );
    }
    assert!(site.subscriber("de", "ana@example.net").await.is_some());
    let still_waiting: i64 = site
        .store
        .read(|db| {
            db.query_row(
                "SELECT count(*) FROM outgoing WHERE kind = 'combined' AND state = 'queued'",
                [],
                |row| row.get(0),
            )
            .map_err(store::Error::from)
        })
        .await
        .unwrap();
    assert_eq!(still_waiting, 0);
    let gone = site
        .store
        .read(move |db| store::combined::get(db, person))
        .await
        .unwrap();
    assert_eq!(gone, None);
}

/// The archive's route takes any path: none of them, however encoded,
/// reaches a file outside the site directory, a dot file in it, or a file
/// of another kind than a page or a raw message.
#[tokio::test]
async fn no_archive_path_leaves_the_site_directory() {
    let site = Site::new();
    let site_dir = site.dir.path().join("site");
    std::fs::create_dir_all(site_dir.join("lists/en")).unwrap();
    std::fs::write(site_dir.join("lists/en/index.html"), "<p>English</p>").unwrap();
    let secret: &[u8] = b"<p>not for the web</p>";
    std::fs::write(site.dir.path().join("secret.html"), secret).unwrap();
    std::fs::write(site.dir.path().join("tidings.eml"), secret).unwrap();
    std::fs::write(site_dir.join(".hidden.html"), secret).unwrap();
    std::fs::write(site_dir.join("notes.txt"), secret).unwrap();
    let absolute = site.dir.path().join("secret.html");
    let absolute = absolute.to_str().unwrap();

    let served = site.get("/lists/en/", &[]).await;
    assert_eq!(served.status, StatusCode::OK, "the page itself");
    assert_eq!(served.body, b"<p>English</p>");
    for uri in [
        "/..%2Fsecret.html".to_string(),
        "/..%2Ftidings.eml".to_string(),
        "/lists/%2e%2e/%2e%2e/..%2Fsecret".to_string(),
        "/lists/en/..%2F..%2F..%2Fsecret.html".to_string(),
        "/lists/en/..%5C..%5C..%5Csecret.html".to_string(),
        "/%2e%2e%2fsecret.html".to_string(),
        format!("/{}", absolute.replace('/', "%2F")),
        format!("/{absolute}"),
        format!("//{}", absolute.trim_start_matches('/')),
        "/.hidden.html".to_string(),
        "/notes.txt".to_string(),
        "/lists/en/index.html%00.txt".to_string(),
    ] {
        let answer = site.get(&uri, &[]).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{uri}");
        assert!(
            !answer.body.windows(secret.len()).any(|w| w == secret),
            "{uri} served the file outside"
        );
    }
}

/// Promise 5's floods of the web side, at their size: 10,000 requests to
/// subscribe one address send it three confirmations, and 10,000 forged
/// one-click POSTs (a character changed, another purpose's token, one
/// signed with another secret, for every subscriber in turn) leave every
/// subscription as it was.
#[tokio::test]
async fn ten_thousand_requests_for_one_address_and_ten_thousand_forged_one_clicks_change_nothing() {
    use crate::subscribers::Mode;
    let site = Site::new();
    for _ in 0..10_000 {
        let answer = site
            .post(
                "/lists/en/subscribe",
                "address=victim%40example.net&mode=post",
            )
            .await;
        assert_eq!(answer.status, StatusCode::OK);
    }
    assert_eq!(site.notices().await.len(), 3);

    let mut ids = Vec::new();
    for n in 0..20 {
        ids.push(
            site.subscribe("en", &format!("reader{n}@example.net"), Mode::Mime)
                .await,
        );
    }
    let foreign = Secret::from_bytes(&[4; 32]);
    const BASE32: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";
    for n in 0..10_000usize {
        let id = ids[n % ids.len()];
        let genuine = site.secret.sign(Purpose::Unsubscribe, id, None);
        let forged = match n % 3 {
            0 => {
                let mut bytes = genuine.into_bytes();
                let at = n % bytes.len();
                let was = bytes[at];
                bytes[at] = *BASE32
                    .iter()
                    .find(|&&c| c != was && c != was.to_ascii_lowercase())
                    .unwrap();
                String::from_utf8(bytes).unwrap()
            }
            1 => site.secret.sign(Purpose::Preferences, id, None),
            _ => foreign.sign(Purpose::Unsubscribe, id, None),
        };
        let answer = site
            .post(
                &format!("/unsubscribe/{forged}"),
                "List-Unsubscribe=One-Click",
            )
            .await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{forged}");
    }
    for n in 0..20 {
        let address = format!("reader{n}@example.net");
        assert!(site.subscriber("en", &address).await.is_some(), "{address}");
    }
}

/// Issue 13: a symbolic link in the feeds directory is a missing feed,
/// whatever it points to (a file outside, the store, `/etc/passwd`, a
/// feed beside it) and however it is asked for (a conditional GET gets no
/// 304 from the target's validators); the answer is the missing feed's,
/// byte for byte. A feed past the size read whole is still streamed.
#[cfg(unix)]
#[tokio::test]
async fn a_symbolic_link_in_the_feeds_directory_is_404_like_a_missing_feed() {
    use std::os::unix::fs::symlink;
    let site = Site::new();
    site.write("en.atom", &atom_feed(), 0);
    let large: Vec<u8> = atom_feed().into_iter().cycle().take(300 * 1024).collect();
    site.write("all.atom", &large, 0);
    let secret: &[u8] = b"<feed>not for the web</feed>";
    std::fs::write(site.dir.path().join("secret.atom"), secret).unwrap();
    let links = [
        ("fr.atom", site.dir.path().join("secret.atom")),
        ("de.rss", "../secret.atom".into()),
        ("ca.json", site.dir.path().join("tidings.sqlite3")),
        ("it.rdf", "/etc/passwd".into()),
        ("gr.atom", "en.atom".into()),
        ("big.atom", "all.atom".into()),
    ];
    for (name, target) in &links {
        symlink(target, site.feeds_dir().join(name)).unwrap();
    }

    let served = site.get("/feeds/en.atom", &[]).await;
    assert_eq!(served.status, StatusCode::OK);
    assert_eq!(served.body, atom_feed());
    let streamed = site.get("/feeds/all.atom", &[]).await;
    assert_eq!(streamed.status, StatusCode::OK);
    assert_eq!(streamed.body, large);
    let missing = site.get("/feeds/xx.atom", &[]).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    for (name, _) in &links {
        assert!(site.feeds_dir().join(name).is_file(), "{name} resolves");
        for headers in [&[][..], &[(header::IF_NONE_MATCH, "*")][..]] {
            let answer = site.get(&format!("/feeds/{name}"), headers).await;
            assert_eq!(answer.status, StatusCode::NOT_FOUND, "{name} {headers:?}");
            assert_eq!(answer.body, missing.body, "{name}");
            assert_eq!(answer.header(header::ETAG), None, "{name}");
        }
    }
}

/// Issue 13: a symbolic link anywhere in the site directory is a missing
/// page: a page or raw message linked to a file outside or to the store,
/// and a linked directory (outside, or another of the site's own). The
/// answer is the missing page's. The same holds when `site_dir` itself is
/// a link, which the operator may make, and which still serves its pages.
#[cfg(unix)]
#[tokio::test]
async fn a_symbolic_link_in_the_site_directory_is_404_like_a_missing_page() {
    use std::os::unix::fs::symlink;
    let site = Site::new();
    let top = site.dir.path();
    let site_dir = top.join("site");
    let secret: &[u8] = b"<p>not for the web</p>";
    std::fs::write(top.join("secret.html"), secret).unwrap();
    std::fs::create_dir_all(top.join("outside/2024")).unwrap();
    std::fs::write(top.join("outside/index.html"), secret).unwrap();
    std::fs::write(top.join("outside/2024/index.html"), secret).unwrap();
    std::fs::create_dir_all(site_dir.join("lists/en")).unwrap();
    std::fs::create_dir_all(site_dir.join("posts")).unwrap();
    std::fs::write(site_dir.join("lists/en/index.html"), "<p>English</p>").unwrap();
    std::fs::write(site_dir.join("posts/0123.html"), "<p>A post</p>").unwrap();
    // Relative targets, so the same links hold once the site is moved.
    symlink("../../secret.html", site_dir.join("posts/4567.html")).unwrap();
    symlink("../../tidings.sqlite3", site_dir.join("posts/4567.eml")).unwrap();
    symlink("0123.html", site_dir.join("posts/89ab.html")).unwrap();
    symlink("../../outside", site_dir.join("lists/fr")).unwrap();
    symlink("en", site_dir.join("lists/de")).unwrap();
    symlink("../outside", site_dir.join("years")).unwrap();
    let linked = [
        "/posts/4567",
        "/posts/4567.html",
        "/posts/4567.eml",
        "/posts/89ab",
        "/lists/fr/",
        "/lists/de/",
        "/years/2024/",
    ];

    for root in ["a directory", "a link"] {
        if root == "a link" {
            std::fs::rename(&site_dir, top.join("real-site")).unwrap();
            symlink("real-site", &site_dir).unwrap();
        }
        for (uri, body) in [
            ("/lists/en/", &b"<p>English</p>"[..]),
            ("/posts/0123", b"<p>A post</p>"),
        ] {
            let served = site.get(uri, &[]).await;
            assert_eq!(served.status, StatusCode::OK, "{uri} under {root}");
            assert_eq!(served.body, body);
        }
        let missing = site.get("/posts/ffff", &[]).await;
        assert_eq!(missing.status, StatusCode::NOT_FOUND);
        for uri in linked {
            let file = crate::site::paths::file_of(uri).unwrap();
            assert!(site_dir.join(&file).is_file(), "{uri} resolves");
            for headers in [&[][..], &[(header::IF_NONE_MATCH, "*")][..]] {
                let answer = site.get(uri, headers).await;
                assert_eq!(answer.status, StatusCode::NOT_FOUND, "{uri} under {root}");
                assert_eq!(answer.body, missing.body, "{uri} under {root}");
            }
        }
    }
}

/// Without `openat2` (an old kernel, a seccomp filter), files are opened a
/// directory at a time, refusing links as `openat2` does.
#[cfg(unix)]
#[test]
fn without_openat2_each_directory_is_opened_without_following_links() {
    use super::files::{open_beneath, open_step_by_step};
    use std::os::unix::fs::symlink;
    use std::path::Path;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("site");
    std::fs::create_dir_all(root.join("lists/en")).unwrap();
    std::fs::write(root.join("lists/en/index.html"), "<p>English</p>").unwrap();
    std::fs::write(dir.path().join("secret.html"), "secret").unwrap();
    symlink("../../secret.html", root.join("lists/en/link.html")).unwrap();
    symlink("en", root.join("lists/de")).unwrap();
    symlink("site", dir.path().join("linked-root")).unwrap();
    for open in [open_beneath, open_step_by_step] {
        for root in [root.clone(), dir.path().join("linked-root")] {
            let mut page = String::new();
            open(&root, Path::new("lists/en/index.html"))
                .unwrap()
                .read_to_string(&mut page)
                .unwrap();
            assert_eq!(page, "<p>English</p>");
            // Refused (ELOOP, or ENOTDIR for a linked directory opened
            // step by step): a link is never followed.
            for refused in [
                "lists/en/link.html",
                "lists/de/index.html",
                "../secret.html",
                "/etc/passwd",
                "",
            ] {
                assert!(open(&root, Path::new(refused)).is_err(), "{refused:?}");
            }
        }
    }
}
