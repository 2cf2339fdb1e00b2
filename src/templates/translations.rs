//! Every language the digests speak has every mail and web template and
//! label English has, each with the placeholders English uses, and each
//! renders with a sample context with nothing undefined.
//!
//! English is the reference: a key or template added there is reported,
//! language by language, until it is translated.

use std::collections::{BTreeMap, BTreeSet};

use minijinja::{Environment, UndefinedBehavior};
use serde_json::{json, Value};

use super::{shipped_sources, FALLBACK};
use crate::subscribers::Mode;

/// The areas whose words are translated here (the digests have their own).
const AREAS: [&str; 2] = ["mail", "web"];

/// The shipped files of `area/lang/`, by file name.
fn files_of<'a>(
    sources: &'a BTreeMap<String, String>,
    area: &str,
    lang: &str,
) -> BTreeMap<&'a str, &'a str> {
    let prefix = format!("{area}/{lang}/");
    sources
        .iter()
        .filter_map(|(name, text)| Some((name.strip_prefix(&prefix)?, text.as_str())))
        .collect()
}

/// The languages of the digests besides English: every one must have mail
/// and web words.
fn languages(sources: &BTreeMap<String, String>) -> BTreeSet<String> {
    sources
        .keys()
        .filter_map(|name| {
            let mut parts = name.split('/');
            match (parts.next(), parts.next(), parts.next()) {
                (Some("digest"), Some(lang), Some(_)) if lang != FALLBACK => Some(lang.to_string()),
                _ => None,
            }
        })
        .collect()
}

fn labels_in(name: &str, text: &str) -> BTreeMap<String, String> {
    toml::from_str(text).unwrap_or_else(|error| panic!("{name}: {error}"))
}

/// The variables a template source names (with their attributes, as
/// `list.title`), less those it sets itself.
fn placeholders(env: &Environment<'_>, name: &str, source: &str) -> BTreeSet<String> {
    env.template_from_named_str(name, source)
        .unwrap_or_else(|error| panic!("{name}: {error}"))
        .undeclared_variables(true)
        .into_iter()
        .collect()
}

fn names(set: impl IntoIterator<Item = impl AsRef<str>>) -> String {
    set.into_iter()
        .map(|name| name.as_ref().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// What `lang` lacks or has wrong in `area`, compared with English, one
/// line each.
fn problems_of(
    env: &Environment<'_>,
    sources: &BTreeMap<String, String>,
    area: &str,
    lang: &str,
) -> Vec<String> {
    let english = files_of(sources, area, FALLBACK);
    let own = files_of(sources, area, lang);
    let mut problems = Vec::new();
    if own.is_empty() {
        problems.push(format!("no {area}/{lang}/ at all"));
        return problems;
    }
    for (file, english_text) in &english {
        let name = format!("{area}/{lang}/{file}");
        let Some(text) = own.get(file) else {
            problems.push(format!("{name} is missing"));
            continue;
        };
        if *file == "labels.toml" {
            let english_labels = labels_in(&format!("{area}/en/{file}"), english_text);
            let labels = labels_in(&name, text);
            let missing: Vec<&String> = english_labels
                .keys()
                .filter(|key| !labels.contains_key(*key))
                .collect();
            if !missing.is_empty() {
                problems.push(format!("{name} lacks keys: {}", names(&missing)));
            }
            let extra: Vec<&String> = labels
                .keys()
                .filter(|key| !english_labels.contains_key(*key))
                .collect();
            if !extra.is_empty() {
                problems.push(format!(
                    "{name} has keys English has not: {}",
                    names(&extra)
                ));
            }
            for (key, english_value) in &english_labels {
                let Some(value) = labels.get(key) else {
                    continue;
                };
                let expected = placeholders(env, key, english_value);
                let found = placeholders(env, &format!("{name}:{key}"), value);
                if expected != found {
                    problems.push(format!(
                        "{name}: {key} uses {{{}}}, English {{{}}}",
                        names(&found),
                        names(&expected)
                    ));
                }
            }
        } else {
            let expected = placeholders(env, file, english_text);
            let found = placeholders(env, &name, text);
            if expected != found {
                problems.push(format!(
                    "{name} uses {{{}}}, English {{{}}}",
                    names(&found),
                    names(&expected)
                ));
            }
        }
    }
    for file in own.keys().filter(|file| !english.contains_key(*file)) {
        problems.push(format!("{area}/{lang}/{file} has no English original"));
    }
    problems
}

#[test]
fn every_language_has_every_mail_and_web_template_and_label_english_has() {
    let sources = shipped_sources();
    let env = Environment::new();
    let languages = languages(&sources);
    assert!(languages.len() >= 14, "{languages:?}");
    let mut report = Vec::new();
    for lang in &languages {
        for area in AREAS {
            for problem in problems_of(&env, &sources, area, lang) {
                report.push(format!("{lang}: {problem}"));
            }
        }
    }
    assert!(
        report.is_empty(),
        "translations lack what English has (add them, or the key to each language):\n{}",
        report.join("\n")
    );
}

/// The digests' own words (labels, masthead, footer), the HTML digest's
/// notice of a shortened page among them, in every language.
#[test]
fn every_language_has_every_digest_template_and_label_english_has() {
    let sources = shipped_sources();
    let env = Environment::new();
    let english = labels_in(
        "digest/en/labels.toml",
        files_of(&sources, "digest", FALLBACK)["labels.toml"],
    );
    assert!(english.contains_key("shortened") && english.contains_key("more_posts"));
    let report: Vec<String> = languages(&sources)
        .iter()
        .flat_map(|lang| {
            problems_of(&env, &sources, "digest", lang)
                .into_iter()
                .map(move |problem| format!("{lang}: {problem}"))
        })
        .collect();
    assert!(
        report.is_empty(),
        "digest translations lack what English has:\n{}",
        report.join("\n")
    );
}

#[test]
fn a_missing_key_or_a_misspelt_placeholder_is_reported() {
    let mut sources = shipped_sources();
    let env = Environment::new();
    sources.insert(
        "mail/xx/labels.toml".into(),
        "welcome_subject = \"Hi {{ list.titel }}\"\n".into(),
    );
    sources.insert(
        "mail/xx/goodbye.txt".into(),
        "{{ adress }} {{ list.title }} {{ subscribe_url }} {{ site.name }}\n".into(),
    );
    let problems = problems_of(&env, &sources, "mail", "xx").join("\n");
    assert!(
        problems.contains("lacks keys: confirm_subject, disabled_subject, goodbye_subject"),
        "{problems}"
    );
    assert!(
        problems.contains("welcome_subject uses {list.titel}"),
        "{problems}"
    );
    assert!(
        problems.contains("mail/xx/goodbye.txt uses {adress"),
        "{problems}"
    );
    assert!(
        problems.contains("mail/xx/confirm.txt is missing"),
        "{problems}"
    );
}

/// Sample lists and site, as notices and pages see them.
fn sample_list() -> Value {
    json!({
        "code": "gr",
        "name": "Ελληνικά",
        "title": "A-Infos Ελληνικά",
        "description": "Πολύγλωσση υπηρεσία ειδήσεων",
        "lang": "el",
        "address": "a-infos-gr@lists.example.org",
        "request": "a-infos-gr-request@lists.example.org",
        "owner": "a-infos-gr-owner@lists.example.org",
        "archive_url": "https://news.example.org/lists/gr/",
        "subscribe_url": "https://news.example.org/lists/gr/subscribe",
    })
}

/// What a notice's template may see, every branch taken (`full`) or none.
fn mail_context(
    labels: &BTreeMap<String, String>,
    english: &BTreeMap<String, String>,
    full: bool,
) -> Value {
    let results: Vec<Value> = english
        .keys()
        .filter_map(|key| key.strip_prefix("result_"))
        .map(|result| json!({"command": format!("command {result}"), "result": result}))
        .collect();
    let subscriptions: Vec<Value> = Mode::ALL
        .iter()
        .map(|mode| json!({"code": "gr", "name": "Ελληνικά", "mode": mode.as_str()}))
        .collect();
    json!({
        "address": "ana@example.net",
        "mode": "plain",
        "token": "tok3n",
        "url": "https://news.example.org/confirm/tok3n",
        "reply_to": "a-infos-gr-confirm+tok3n@lists.example.org",
        "days": 7,
        "score": 5.0,
        "threshold": 5.0,
        "window_days": 7,
        "results": if full { results } else { Vec::new() },
        "help": full,
        "subscriptions": if full { subscriptions } else { Vec::new() },
        "prefs_url": if full { json!("https://news.example.org/prefs/p") } else { Value::Null },
        "left": !full,
        "welcome": if full { json!("post") } else { Value::Null },
        "subscribe_url": "https://news.example.org/lists/gr/subscribe",
        "id": 42,
        "subject": "(el) Strike",
        "sender": "ana@example.net",
        "sender_name": "Ana",
        "lang": if full { json!("el") } else { Value::Null },
        "reason": "moderated list",
        "first_lines": if full { vec!["First line", "Second line"] } else { Vec::new() },
        "approve_address": "a-infos-gr-owner+approve-t@lists.example.org",
        "reject_address": "a-infos-gr-owner+reject-t@lists.example.org",
        "list": sample_list(),
        "site": {"name": "A-Infos", "url": "https://news.example.org/"},
        "labels": labels,
    })
}

#[test]
fn every_language_renders_its_mail_and_web_words_with_nothing_undefined() {
    let sources = shipped_sources();
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    for (name, text) in &sources {
        if !name.ends_with("labels.toml") {
            env.add_template(name, text).unwrap();
        }
    }
    let mut languages = languages(&sources);
    languages.insert(FALLBACK.to_string());
    let english_mail = labels_in(
        "mail/en",
        files_of(&sources, "mail", FALLBACK)["labels.toml"],
    );
    let mut failures = Vec::new();
    for lang in &languages {
        // Its own labels alone: a label missing is an error here too.
        let own = |area: &str| {
            files_of(&sources, area, lang)
                .get("labels.toml")
                .map(|text| labels_in(&format!("{area}/{lang}"), text))
                .unwrap_or_default()
        };
        let (mail, web) = (own("mail"), own("web"));
        for full in [true, false] {
            let context = mail_context(&mail, &english_mail, full);
            for (file, _) in files_of(&sources, "mail", lang) {
                if file == "labels.toml" {
                    continue;
                }
                let name = format!("mail/{lang}/{file}");
                match env.get_template(&name).and_then(|t| t.render(&context)) {
                    Ok(text) if full && !text.contains("ana@example.net") => {
                        failures.push(format!("{name}: no address in {text:?}"))
                    }
                    Ok(_) => {}
                    Err(error) => failures.push(format!("{name}: {error:#}")),
                }
            }
            for (key, value) in &mail {
                match env.render_str(value, &context) {
                    Ok(text) if key.ends_with("_subject") && text.chars().count() > 70 => {
                        failures.push(format!("mail/{lang}: {key} is long: {text:?}"))
                    }
                    Ok(_) => {}
                    Err(error) => failures.push(format!("mail/{lang}: {key}: {error:#}")),
                }
            }
        }
        // What the archive pages give their headings: a count of posts
        // (`list_heading`, `recent_heading`), a year (`year_heading`) and a
        // month by its name in the language (`month_heading`); and what
        // the page that leaves every list names (`leave_all_text`).
        let month = web.get("month_11").cloned().unwrap_or_default();
        let context = json!({
            "address": "ana@example.net",
            "names": "Ελληνικά, English",
            "mode": "a mode",
            "count": 100,
            "year": 2026,
            "month": month,
            "list": sample_list(),
            "site": {"name": "A-Infos", "url": "https://news.example.org/"},
            "labels": web,
        });
        for (key, value) in &web {
            if let Err(error) = env.render_str(value, &context) {
                failures.push(format!("web/{lang}: {key}: {error:#}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
