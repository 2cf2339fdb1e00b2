//! The subscriber's pages: subscribe, confirm, one-click unsubscribe (RFC
//! 8058), the list's leave page and a person's preferences.
//!
//! Nothing changes on a GET: a link scanner that follows every link in a
//! mail subscribes and unsubscribes nobody. Changes are POSTs, and the
//! tokens in the URLs are signed (`tokens.rs`); pages never say whether an
//! address follows a list. No page needs a cookie or a script.

use std::sync::Arc;

use axum::extract::{Form, Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{json, Value};

use super::pages::{
    error_page, Button, Field, Layout, Link, Message, PageResult, Respond, WebError,
};
use super::Web;
use crate::config::{Config, List};
use crate::digest::DigestMode;
use crate::store::{self, requests, subscribers};
use crate::subscribe::{Confirmed, Service, Via};
use crate::subscribers::Mode;
use crate::tokens::Purpose;

/// The answer to a page handler's result.
fn answer(web: &Web, result: PageResult) -> Response {
    match result {
        Ok(page) => page.into_response(),
        Err(error) => error_page(web, error),
    }
}

fn list<'a>(config: &'a Config, code: &str) -> Result<&'a List, WebError> {
    config.list(code).ok_or(WebError::NotFound)
}

/// The modes as a form's options, in the page's language.
fn modes(layout: &Layout<'_>) -> anyhow::Result<Vec<serde_json::Value>> {
    Mode::ALL
        .iter()
        .map(|mode| {
            let label = layout.label(&format!("mode_{mode}"), &json!({}))?;
            Ok(json!({"value": mode.as_str(), "label": label}))
        })
        .collect()
}

/// A mail address as given in a form, by the check every way in shares.
fn address(given: &str) -> Option<String> {
    crate::subscribers::checked_address(given)
}

/// GET /lists/CODE/subscribe: the form.
pub async fn subscribe_form(State(web): State<Arc<Web>>, Path(code): Path<String>) -> Response {
    let config = web.config.borrow().clone();
    let result = (|| {
        let list = list(&config, &code)?;
        let layout = Layout::for_list(&config, &web.templates, list);
        let title = layout.label("subscribe_title", &json!({}))?;
        layout.render(
            "subscribe.html",
            &title,
            StatusCode::OK,
            json!({
                "action": format!("{}lists/{}/subscribe", config.site.base_url, list.code),
                "modes": modes(&layout)?,
                "chosen": list.default_mode.as_str(),
                "address": "",
            }),
        )
    })();
    answer(&web, result)
}

/// The subscribe form as POSTed.
#[derive(Debug, Deserialize)]
pub struct SubscribeForm {
    address: String,
    mode: Option<String>,
}

/// POST /lists/CODE/subscribe: asks for the confirmation; the answer is
/// the same whoever the address is.
pub async fn subscribe(
    State(web): State<Arc<Web>>,
    Path(code): Path<String>,
    Form(form): Form<SubscribeForm>,
) -> Response {
    let config = web.config.borrow().clone();
    let result = async {
        let list = list(&config, &code)?.clone();
        let layout = Layout::for_list(&config, &web.templates, &list);
        let mode = form
            .mode
            .as_deref()
            .and_then(|mode| mode.parse().ok())
            .unwrap_or(list.default_mode);
        let Some(address) = address(&form.address) else {
            let title = layout.label("subscribe_title", &json!({}))?;
            let page = layout.render(
                "subscribe.html",
                &title,
                StatusCode::BAD_REQUEST,
                json!({
                    "action": format!("{}lists/{}/subscribe", config.site.base_url, list.code),
                    "modes": modes(&layout)?,
                    "chosen": mode.as_str(),
                    "address": form.address,
                    "error": layout.label("bad_address", &json!({}))?,
                }),
            );
            return page;
        };
        let (config_for_write, templates, secret) =
            (config.clone(), web.templates.clone(), web.secret.clone());
        let list_for_write = list.clone();
        web.store
            .write(move |tx| {
                let service = Service {
                    config: &config_for_write,
                    templates: &templates,
                    secret: &secret,
                    now: crate::clock::unix_now(),
                };
                service.ask(tx, &list_for_write, &address, mode, Via::Web)
            })
            .await?;
        web.outbox.notify_one();
        layout.message(
            StatusCode::OK,
            Message {
                heading: layout.label("check_title", &json!({}))?,
                paragraphs: vec![layout.label("check_text", &json!({}))?],
                ..Message::default()
            },
        )
    }
    .await;
    answer(&web, result)
}

/// GET /confirm/TOKEN: a button that confirms; nothing changes yet.
pub async fn confirm_page(State(web): State<Arc<Web>>, Path(token): Path<String>) -> Response {
    let config = web.config.borrow().clone();
    let result = async {
        let now = crate::clock::unix_now();
        let id = web
            .secret
            .verify(&token, Purpose::Confirm, now)
            .map_err(|_| WebError::NotFound)?;
        let request = web
            .store
            .read(move |db| requests::get(db, id))
            .await?
            .ok_or(WebError::NotFound)?;
        let list = list(&config, &request.list_code)?;
        let layout = Layout::for_list(&config, &web.templates, list);
        if request.expires_at < now {
            return invalid(&layout);
        }
        let mode = layout.label(&format!("mode_{}", request.mode), &json!({}))?;
        let context = json!({"address": request.address, "mode": mode});
        if request.confirmed_at.is_some() {
            return layout.message(
                StatusCode::OK,
                Message {
                    heading: layout.label("confirmed_title", &context)?,
                    paragraphs: vec![layout.label("already_confirmed_text", &context)?],
                    ..Message::default()
                },
            );
        }
        layout.message(
            StatusCode::OK,
            Message {
                heading: layout.label("confirm_title", &context)?,
                paragraphs: vec![layout.label("confirm_text", &context)?],
                button: Some(Button {
                    action: format!("{}confirm/{token}", config.site.base_url),
                    label: layout.label("confirm_button", &context)?,
                    fields: Vec::new(),
                }),
                links: Vec::new(),
            },
        )
    }
    .await;
    answer(&web, result)
}

fn invalid(layout: &Layout<'_>) -> PageResult {
    let mut links = Vec::new();
    if let Some(list) = layout.list {
        links.push(Link {
            url: format!(
                "{}lists/{}/subscribe",
                layout.config.site.base_url, list.code
            ),
            text: layout.label("subscribe_again", &json!({}))?,
        });
    }
    layout.message(
        StatusCode::NOT_FOUND,
        Message {
            heading: layout.label("invalid_title", &json!({}))?,
            paragraphs: vec![layout.label("invalid_text", &json!({}))?],
            button: None,
            links,
        },
    )
}

/// POST /confirm/TOKEN: confirms.
pub async fn confirm(State(web): State<Arc<Web>>, Path(token): Path<String>) -> Response {
    let config = web.config.borrow().clone();
    let result = async {
        let (config_for_write, templates, secret) =
            (config.clone(), web.templates.clone(), web.secret.clone());
        let token_for_write = token.clone();
        let confirmed = web
            .store
            .write(move |tx| {
                let service = Service {
                    config: &config_for_write,
                    templates: &templates,
                    secret: &secret,
                    now: crate::clock::unix_now(),
                };
                service.confirm(tx, &token_for_write)
            })
            .await?;
        match confirmed {
            Confirmed::Subscribed {
                list: code,
                address,
                mode,
            } => {
                web.outbox.notify_one();
                let list = list(&config, &code)?;
                let layout = Layout::for_list(&config, &web.templates, list);
                let mode = layout.label(&format!("mode_{mode}"), &json!({}))?;
                let context = json!({"address": address, "mode": mode});
                layout.message(
                    StatusCode::OK,
                    Message {
                        heading: layout.label("confirmed_title", &context)?,
                        paragraphs: vec![layout.label("confirmed_text", &context)?],
                        ..Message::default()
                    },
                )
            }
            Confirmed::AlreadyDone { list: code } => {
                let list = list(&config, &code)?;
                let layout = Layout::for_list(&config, &web.templates, list);
                layout.message(
                    StatusCode::OK,
                    Message {
                        heading: layout.label("confirmed_title", &json!({}))?,
                        paragraphs: vec![layout.label("already_confirmed_text", &json!({}))?],
                        ..Message::default()
                    },
                )
            }
            Confirmed::Invalid => invalid(&Layout::site(&config, &web.templates, "en")),
        }
    }
    .await;
    answer(&web, result)
}

/// GET /unsubscribe/TOKEN (the URL of List-Unsubscribe): a button, and the
/// way to the person's page; nothing changes on a GET.
pub async fn unsubscribe_page(State(web): State<Arc<Web>>, Path(token): Path<String>) -> Response {
    let config = web.config.borrow().clone();
    let result = async {
        let id = web
            .secret
            .verify(&token, Purpose::Unsubscribe, crate::clock::unix_now())
            .map_err(|_| WebError::NotFound)?;
        let subscriber = web.store.read(move |db| subscribers::get(db, id)).await?;
        let Some(subscriber) = subscriber else {
            return left_page(&web, &config, None);
        };
        let list = list(&config, &subscriber.list_code)?;
        let layout = Layout::for_list(&config, &web.templates, list);
        let context = json!({"address": subscriber.address});
        before_leaving(
            &web,
            &layout,
            [
                "unsubscribe_title",
                "unsubscribe_text",
                "unsubscribe_button",
            ],
            &context,
            format!("{}unsubscribe/{token}", config.site.base_url),
            subscriber.person_id,
        )
    }
    .await;
    answer(&web, result)
}

/// The page behind a link that leaves: its heading, text and button
/// (`words`, label keys seen with `context`), the button posting to
/// `action` as a mail client's RFC 8058 one-click does, and a link to the
/// person's own page.
fn before_leaving(
    web: &Web,
    layout: &Layout<'_>,
    [heading, text, button]: [&str; 3],
    context: &Value,
    action: String,
    person_id: i64,
) -> PageResult {
    let prefs = web.secret.sign(Purpose::Preferences, person_id, None);
    layout.message(
        StatusCode::OK,
        Message {
            heading: layout.label(heading, context)?,
            paragraphs: vec![layout.label(text, context)?],
            button: Some(Button {
                action,
                label: layout.label(button, context)?,
                fields: vec![Field {
                    name: "List-Unsubscribe".into(),
                    value: "One-Click".into(),
                }],
            }),
            links: vec![Link {
                url: format!("{}prefs/{prefs}", layout.config.site.base_url),
                text: layout.label("your_page", context)?,
            }],
        },
    )
}

/// POST /unsubscribe/TOKEN: RFC 8058 one-click (`List-Unsubscribe=One-Click`
/// from a mail client) or the page's button. Leaves at once and answers 200
/// with a short page, no redirect (RFC 8058 3.2); the write is grouped with
/// the others waiting, so a burst of them costs few disk flushes.
pub async fn unsubscribe(State(web): State<Arc<Web>>, Path(token): Path<String>) -> Response {
    let config = web.config.borrow().clone();
    let result = async {
        let now = crate::clock::unix_now();
        let id = web
            .secret
            .verify(&token, Purpose::Unsubscribe, now)
            .map_err(|_| WebError::NotFound)?;
        let left = web
            .store
            .write_grouped(move |tx| {
                let subscriber = subscribers::get(tx, id)?;
                subscribers::unsubscribe(tx, id, now)?;
                Ok::<_, store::Error>(subscriber)
            })
            .await?;
        left_page(&web, &config, left.as_ref())
    }
    .await;
    answer(&web, result)
}

/// GET /unsubscribe-all/TOKEN: the page behind the link of a digest
/// across lists that leaves the lists it covers
/// ([`store::combined::covered`]); its button (or a mail client's
/// one-click POST) leaves them.
pub async fn leave_all_page(State(web): State<Arc<Web>>, Path(token): Path<String>) -> Response {
    let config = web.config.borrow().clone();
    let result = async {
        let person_id = web
            .secret
            .verify(&token, Purpose::LeaveAll, crate::clock::unix_now())
            .map_err(|_| WebError::NotFound)?;
        let (person, covered) = web
            .store
            .read(move |db| {
                Ok::<_, store::Error>((
                    subscribers::person_by_id(db, person_id)?,
                    store::combined::covered(db, person_id)?,
                ))
            })
            .await?;
        let Some(person) = person else {
            return left_page(&web, &config, None);
        };
        let Some((layout, names)) = covered_lists(&web, &config, &covered) else {
            return left_page(&web, &config, None);
        };
        let context = json!({"address": person.address, "names": names});
        before_leaving(
            &web,
            &layout,
            ["leave_all_title", "leave_all_text", "leave_all_button"],
            &context,
            format!("{}unsubscribe-all/{token}", config.site.base_url),
            person_id,
        )
    }
    .await;
    answer(&web, result)
}

/// The layout of the first of `covered`'s lists and their names, joined;
/// `None` when none of them is a list of the configuration.
fn covered_lists<'a>(
    web: &'a Web,
    config: &'a Config,
    covered: &[crate::subscribers::Subscriber],
) -> Option<(Layout<'a>, String)> {
    let lists: Vec<&List> = covered
        .iter()
        .filter_map(|s| config.list(&s.list_code))
        .collect();
    let first = lists.first()?;
    let names: Vec<&str> = lists.iter().map(|l| l.name.as_str()).collect();
    Some((
        Layout::for_list(config, &web.templates, first),
        names.join(", "),
    ))
}

/// POST /unsubscribe-all/TOKEN: RFC 8058 one-click of a digest across
/// lists, or the page's button: leaves the lists it covers, ends the
/// person's digest across lists and takes back one still waiting to go,
/// at once, answering 200. Lists followed otherwise (each post as it
/// arrives, say) stay.
pub async fn leave_all(State(web): State<Arc<Web>>, Path(token): Path<String>) -> Response {
    let config = web.config.borrow().clone();
    let result = async {
        let now = crate::clock::unix_now();
        let person_id = web
            .secret
            .verify(&token, Purpose::LeaveAll, now)
            .map_err(|_| WebError::NotFound)?;
        let (person, left) = web
            .store
            .write_grouped(move |tx| {
                let person = subscribers::person_by_id(tx, person_id)?;
                let covered = store::combined::covered(tx, person_id)?;
                for subscription in &covered {
                    subscribers::unsubscribe(tx, subscription.id, now)?;
                }
                store::combined::stop(tx, person_id)?;
                if let Some(person) = &person {
                    store::outgoing::cancel_combined(tx, &person.address)?;
                }
                Ok::<_, store::Error>((person, covered))
            })
            .await?;
        let (Some(person), Some((layout, names))) = (person, covered_lists(&web, &config, &left))
        else {
            return left_page(&web, &config, None);
        };
        let context = json!({"address": person.address, "names": names});
        layout.message(
            StatusCode::OK,
            Message {
                heading: layout.label("left_all_title", &context)?,
                paragraphs: vec![layout.label("left_all_text", &context)?],
                button: None,
                links: Vec::new(),
            },
        )
    }
    .await;
    answer(&web, result)
}

/// The page after leaving (or after a link for a subscription that has
/// ended already: the same, so replays learn nothing).
fn left_page(
    web: &Web,
    config: &Config,
    subscriber: Option<&crate::subscribers::Subscriber>,
) -> PageResult {
    let list = subscriber.and_then(|s| config.list(&s.list_code));
    let layout = match list {
        Some(list) => Layout::for_list(config, &web.templates, list),
        None => Layout::site(config, &web.templates, "en"),
    };
    let mut links = Vec::new();
    if let Some(list) = list {
        links.push(Link {
            url: format!("{}lists/{}/subscribe", config.site.base_url, list.code),
            text: layout.label("subscribe_again", &json!({}))?,
        });
    }
    let (heading, text) = match list {
        Some(_) => ("unsubscribed_title", "unsubscribed_text"),
        None => ("not_subscribed_title", "not_subscribed_text"),
    };
    layout.message(
        StatusCode::OK,
        Message {
            heading: layout.label(heading, &json!({}))?,
            paragraphs: vec![layout.label(text, &json!({}))?],
            button: None,
            links,
        },
    )
}

/// GET /lists/CODE/unsubscribe: how to leave without a link at hand.
pub async fn leave_form(State(web): State<Arc<Web>>, Path(code): Path<String>) -> Response {
    let config = web.config.borrow().clone();
    let result = (|| {
        let list = list(&config, &code)?;
        let layout = Layout::for_list(&config, &web.templates, list);
        let title = layout.label("leave_title", &json!({}))?;
        layout.render(
            "leave.html",
            &title,
            StatusCode::OK,
            json!({"action": format!("{}lists/{}/unsubscribe", config.site.base_url, list.code)}),
        )
    })();
    answer(&web, result)
}

/// The leave form as POSTed.
#[derive(Debug, Deserialize)]
pub struct LeaveForm {
    address: String,
}

/// POST /lists/CODE/unsubscribe: mails the link to the person's page (if
/// the address follows a list); the answer is the same either way.
pub async fn leave(
    State(web): State<Arc<Web>>,
    Path(code): Path<String>,
    Form(form): Form<LeaveForm>,
) -> Response {
    let config = web.config.borrow().clone();
    let result = async {
        let list = list(&config, &code)?.clone();
        let layout = Layout::for_list(&config, &web.templates, &list);
        if let Some(address) = address(&form.address) {
            let (config_for_write, templates, secret) =
                (config.clone(), web.templates.clone(), web.secret.clone());
            let list_for_write = list.clone();
            let sent = web
                .store
                .write(move |tx| {
                    let service = Service {
                        config: &config_for_write,
                        templates: &templates,
                        secret: &secret,
                        now: crate::clock::unix_now(),
                    };
                    service.send_preferences(tx, &list_for_write, &address)
                })
                .await?;
            if sent {
                web.outbox.notify_one();
            }
        }
        layout.message(
            StatusCode::OK,
            Message {
                heading: layout.label("link_sent_title", &json!({}))?,
                paragraphs: vec![layout.label("link_sent_text", &json!({}))?],
                ..Message::default()
            },
        )
    }
    .await;
    answer(&web, result)
}

/// What the preferences page says was just done.
#[derive(Debug, Deserialize)]
pub struct Done {
    done: Option<String>,
}

/// GET /prefs/TOKEN: the person's subscriptions, each with its mode and a
/// way to leave, and the other lists to join.
pub async fn preferences(
    State(web): State<Arc<Web>>,
    Path(token): Path<String>,
    Query(done): Query<Done>,
) -> Response {
    let config = web.config.borrow().clone();
    let result = async {
        let person_id = web
            .secret
            .verify(&token, Purpose::Preferences, crate::clock::unix_now())
            .map_err(|_| WebError::NotFound)?;
        let (person, subscriptions, disabled, choice) = web
            .store
            .read(move |db| {
                let person = subscribers::person_by_id(db, person_id)?;
                let subscriptions = subscribers::of_person(db, person_id)?;
                let mut disabled = Vec::new();
                for s in &subscriptions {
                    if store::bounces::disabled_at(db, s.id)?.is_some() {
                        disabled.push(s.id);
                    }
                }
                let choice = store::combined::get(db, person_id)?;
                Ok::<_, store::Error>((person, subscriptions, disabled, choice))
            })
            .await?;
        let person = person.ok_or(WebError::NotFound)?;
        let first = subscriptions
            .iter()
            .find_map(|s| config.list(&s.list_code))
            .or_else(|| config.lists.first())
            .ok_or(WebError::NotFound)?;
        let mut layout = Layout::for_list(&config, &web.templates, first);
        layout.list = None;
        let modes = modes(&layout)?;
        let label = |mode: Mode| layout.label(&format!("mode_{mode}"), &json!({}));
        let mut rows = Vec::new();
        for s in &subscriptions {
            let Some(list) = config.list(&s.list_code) else {
                continue;
            };
            let waiting = match s.next_mode {
                Some(next) => Some(label(next)?),
                None => None,
            };
            rows.push(json!({
                "code": list.code,
                "name": list.name,
                "mode": s.chosen_mode().as_str(),
                "waiting": waiting,
                "disabled": disabled.contains(&s.id),
            }));
        }
        let others: Vec<_> = config
            .lists
            .iter()
            .filter(|list| !subscriptions.iter().any(|s| s.list_code == list.code))
            .map(|list| json!({"code": list.code, "name": list.name}))
            .collect();
        let notice = match done.done.as_deref() {
            Some(key @ ("changed" | "joined" | "left" | "enabled" | "combined" | "separated")) => {
                Some(layout.label(key, &json!({}))?)
            }
            _ => None,
        };
        let title = layout.label("prefs_title", &json!({}))?;
        // One digest across lists, offered to a person who gets the digests
        // of two lists or more.
        let in_digests: Vec<&str> = config
            .lists
            .iter()
            .filter(|list| {
                subscriptions
                    .iter()
                    .any(|s| s.list_code == list.code && s.mode.digest().is_some())
            })
            .map(|list| list.code.as_str())
            .collect();
        let combined = (in_digests.len() >= 2 || choice.is_some()).then(|| {
            json!({
                "on": choice.is_some(),
                "order": choice
                    .as_ref()
                    .map(|c| c.lists.join(", "))
                    .unwrap_or_else(|| in_digests.join(", ")),
                "mode": choice.as_ref().map_or("html", |c| c.mode.as_str()),
                "schedule": choice.as_ref().map(|c| c.schedule.clone()),
                "schedules": config.site.combined_schedules.keys().collect::<Vec<_>>(),
                "modes": modes
                    .iter()
                    .filter(|m| {
                        m["value"]
                            .as_str()
                            .is_some_and(|v| v.parse::<DigestMode>().is_ok())
                    })
                    .collect::<Vec<_>>(),
            })
        });
        layout.render(
            "prefs.html",
            &title,
            StatusCode::OK,
            json!({
                "address": person.address,
                "subscriptions": rows,
                "others": others,
                "modes": modes,
                "combined": combined,
                "notice": notice,
                "action": format!("{}prefs/{token}", config.site.base_url),
            }),
        )
    }
    .await;
    answer(&web, result)
}

/// A change on the preferences page.
#[derive(Debug, Deserialize)]
pub struct Change {
    action: String,
    #[serde(default)]
    list: String,
    mode: Option<String>,
    /// For `combine`: a name of `[site] combined_schedules`.
    schedule: Option<String>,
    /// For `combine`: the lists' codes in the order wanted, separated by
    /// commas or spaces.
    order: Option<String>,
}

/// POST /prefs/TOKEN: changes a mode, leaves a list or joins one (the token
/// proves the address, so no confirmation is asked), then back to the page.
pub async fn change_preferences(
    State(web): State<Arc<Web>>,
    Path(token): Path<String>,
    Form(change): Form<Change>,
) -> Response {
    let config = web.config.borrow().clone();
    let result = async {
        let now = crate::clock::unix_now();
        let person_id = web
            .secret
            .verify(&token, Purpose::Preferences, now)
            .map_err(|_| WebError::NotFound)?;
        // The token as verified, without the white space around it that
        // verify ignores (a %0A or %20 a mail client left at the end of
        // the link): in the Location, a line break made the header
        // invalid, and the 303 went without one; a space made it no URI.
        let token = token.trim();
        if matches!(change.action.as_str(), "combine" | "separate") {
            let location = match combine(&web, &config, person_id, &change, now).await? {
                Some(done) => format!("{}prefs/{token}?done={done}", config.site.base_url),
                None => format!("{}prefs/{token}", config.site.base_url),
            };
            return Ok(location);
        }
        let list = list(&config, &change.list)?.code.clone();
        let mode: Option<Mode> = change.mode.as_deref().and_then(|mode| mode.parse().ok());
        let action = change.action.clone();
        let done = web
            .store
            .write(move |tx| {
                let person = subscribers::person_by_id(tx, person_id)?.ok_or(store::Error::Closed);
                let Ok(person) = person else {
                    return Ok::<_, store::Error>(None);
                };
                let current = subscribers::find(tx, &list, &person.address)?;
                Ok(match (action.as_str(), current, mode) {
                    ("mode", Some(subscriber), Some(mode)) => {
                        subscribers::set_mode(tx, subscriber.id, mode)?;
                        Some("changed")
                    }
                    ("enable", Some(subscriber), _) => {
                        store::bounces::enable(tx, subscriber.id)?;
                        Some("enabled")
                    }
                    ("leave", Some(subscriber), _) => {
                        subscribers::unsubscribe(tx, subscriber.id, now)?;
                        Some("left")
                    }
                    ("join", None, Some(mode)) => {
                        subscribers::add(
                            tx,
                            &list,
                            std::slice::from_ref(&person.address),
                            mode,
                            now,
                        )?;
                        Some("joined")
                    }
                    _ => None,
                })
            })
            .await?;
        let location = match done {
            Some(done) => format!("{}prefs/{token}?done={done}", config.site.base_url),
            None => format!("{}prefs/{token}", config.site.base_url),
        };
        Ok::<_, WebError>(location)
    }
    .await;
    match result {
        Ok(location) => (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response(),
        Err(error) => error_page(&web, error),
    }
}

/// The preferences page's `combine` (choose or change one digest across
/// the person's lists) and `separate` (end it); says what was done, if
/// anything.
async fn combine(
    web: &Web,
    config: &Config,
    person_id: i64,
    change: &Change,
    now: i64,
) -> Result<Option<&'static str>, WebError> {
    if change.action == "separate" {
        let stopped = web
            .store
            .write(move |tx| store::combined::stop(tx, person_id))
            .await?;
        return Ok(stopped.then_some("separated"));
    }
    let schedules = &config.site.combined_schedules;
    let schedule = change
        .schedule
        .clone()
        .filter(|name| schedules.contains_key(name))
        .or_else(|| schedules.keys().next().cloned())
        .unwrap_or_default();
    let mode: DigestMode = change
        .mode
        .as_deref()
        .and_then(|mode| mode.parse().ok())
        .unwrap_or(DigestMode::Html);
    let asked: Vec<String> = change
        .order
        .as_deref()
        .unwrap_or("")
        .split([',', ' '])
        .map(|code| code.trim().to_ascii_lowercase())
        .filter(|code| !code.is_empty())
        .collect();
    let order: Vec<String> = config.lists.iter().map(|l| l.code.clone()).collect();
    Ok(web
        .store
        .write(move |tx| {
            let following: Vec<String> = subscribers::of_person(tx, person_id)?
                .into_iter()
                .filter(|s| s.mode.digest().is_some())
                .map(|s| s.list_code)
                .collect();
            // The order asked, then the other lists followed in a digest
            // mode, in the configuration's order; no list twice.
            let mut lists: Vec<String> = Vec::new();
            for code in asked.iter().chain(&order) {
                if following.contains(code) && !lists.contains(code) {
                    lists.push(code.clone());
                }
            }
            // One list is no digest across lists.
            if lists.len() < 2 {
                return Ok::<_, store::Error>(None);
            }
            store::combined::choose(tx, person_id, &schedule, mode, &lists, now)?;
            Ok(Some("combined"))
        })
        .await?)
}

#[cfg(test)]
mod tests {
    use super::address;

    #[test]
    fn only_addresses_a_list_can_reach_are_taken() {
        assert_eq!(address(" Ana@Example.NET "), Some("Ana@example.net".into()));
        for bad in [
            "",
            "ana",
            "ana@",
            "ana@[127.0.0.1]",
            "ana@localhost",
            "a b@example.net",
        ] {
            assert_eq!(address(bad), None, "{bad}");
        }
    }
}
