//! `tidings posts` and `tidings posts show`.

use std::io::Write;

use anyhow::Context;

use super::open_store;
use crate::config::Config;
use crate::post::{Status, StoredPost};
use crate::store::posts::{self, PostFilter};

/// `tidings posts`: one line (or JSON object) per post.
pub fn list(config: &Config, filter: &PostFilter, json: bool) -> anyhow::Result<()> {
    let db = open_store(config)?;
    let posts = posts::list(&db, filter).context("reading posts")?;
    let mut out = std::io::stdout().lock();
    for post in &posts {
        if json {
            serde_json::to_writer(&mut out, &post_json(post))?;
            writeln!(out)?;
        } else {
            writeln!(
                out,
                "{:>7}  {:<10} {:<9} {:<16} {}",
                post.id,
                post.list_code.as_deref().unwrap_or("-"),
                post.status.as_str(),
                post_date(post),
                match (&post.status, &post.reason) {
                    (Status::Published, _) | (_, None) => post.title.clone(),
                    (_, Some(reason)) => format!("{}  [{}]", post.title, reason),
                }
            )?;
        }
    }
    Ok(())
}

/// The JSON line `tidings posts --json` prints for a post.
pub fn post_json(post: &StoredPost) -> serde_json::Value {
    serde_json::json!({
        "id": post.id,
        "key": post.key,
        "message_id": post.message_id,
        "list": post.list_code,
        "lang": post.lang,
        "status": post.status,
        "reason": post.reason,
        "filed_by": post.filed_by,
        "tag": post.tag,
        "subject": post.subject,
        "title": post.title,
        "translations": post.translations,
        "machine_translation": post.machine_translation,
        "author": post.author_name,
        "date": post.date.and_then(|d| chrono::DateTime::from_timestamp(d, 0)).map(|d| d.to_rfc3339()),
        "received_at": chrono::DateTime::from_timestamp(post.received_at, 0).map(|d| d.to_rfc3339()),
        "attachments": post.attachments,
        "size": post.size,
    })
}

fn post_date(post: &StoredPost) -> String {
    chrono::DateTime::from_timestamp(post.date.unwrap_or(post.received_at), 0)
        .map(|d| d.format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_default()
}

/// `tidings posts show`: one post, or its original bytes.
pub fn show(config: &Config, id: i64, raw: bool) -> anyhow::Result<()> {
    let db = open_store(config)?;
    let mut out = std::io::stdout().lock();
    if raw {
        let bytes =
            posts::raw(&db, id)?.with_context(|| format!("post {id} has no stored message"))?;
        out.write_all(&bytes)?;
        return Ok(());
    }
    let post = posts::get(&db, id)?.with_context(|| format!("no post {id}"))?;
    writeln!(out, "Post:        {}", post.id)?;
    writeln!(
        out,
        "Status:      {}{}",
        post.status.as_str(),
        post.reason
            .as_ref()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default()
    )?;
    writeln!(
        out,
        "List:        {} ({})",
        post.list_code.as_deref().unwrap_or("-"),
        post.lang.as_deref().unwrap_or("-")
    )?;
    writeln!(
        out,
        "Filed by:    {}",
        post.filed_by.map_or("-", |by| by.as_str())
    )?;
    writeln!(
        out,
        "Message-ID:  {}",
        post.message_id.as_deref().unwrap_or("-")
    )?;
    writeln!(
        out,
        "From:        {} <{}>",
        post.author_name, post.author_address
    )?;
    writeln!(
        out,
        "Date:        {}",
        post.date_header.as_deref().unwrap_or("-")
    )?;
    writeln!(out, "Subject:     {}", post.subject)?;
    // What incoming authentication found, one method a line (its
    // Authentication-Results field, unfolded).
    if let Some(results) = posts::auth_results(&db, id)? {
        let lines: Vec<&str> = results
            .split("\r\n")
            .map(|line| line.trim_start_matches('\t'))
            .collect();
        writeln!(out, "Auth:        {}", lines.join("\n             "))?;
    }
    writeln!(out, "Title:       {}", post.title)?;
    if !post.translations.is_empty() {
        writeln!(out, "Translations: {}", post.translations.join(", "))?;
    }
    if post.machine_translation {
        writeln!(out, "Machine translation: yes")?;
    }
    for attachment in &post.attachments {
        writeln!(
            out,
            "Attachment:  {} ({}, {} bytes)",
            attachment.filename.as_deref().unwrap_or("(unnamed)"),
            attachment.content_type,
            attachment.size
        )?;
    }
    writeln!(out)?;
    out.write_all(post.body.as_bytes())?;
    Ok(())
}
