//! One digest across several lists, for a person who follows several and
//! chose it (pure).
//!
//! Its posts are those of the lists' own digests issued since the person's
//! last one ([`crate::store::combined`]), a section per list in the order
//! the person chose, each opened by the list's name and its masthead lines
//! (its description, how to post, the person's own link to leave it). A
//! story published in several of those languages
//! ([`crate::site::story::versions`]) is shown once, in the first section
//! that has it, with a link to each other version instead of the version
//! itself. The words are those of the first list's language.
//!
//! It is rendered like a list's digest, in the one format the person
//! chose: the same [`Digest`] with [`Section`]s and [`Version`]s filled in.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use data_encoding::HEXLOWER;
use sha2::{Digest as _, Sha256};

use super::headers::{self, ListAddresses};
use super::{tidy_text, Digest, Entry};
use super::{PendingPost, Section, Version};
use crate::config::{Config, List};
use crate::post::StoredPost;
use crate::templates::Templates;

/// One list's part: its posts since the person's last combined digest.
pub struct Part<'a> {
    pub list: &'a List,
    pub posts: Vec<PendingPost>,
    /// The person's own page to leave this list (one-click, RFC 8058).
    pub leave_url: String,
}

/// Everything a digest across several lists is made from.
pub struct Combined<'a> {
    pub config: &'a Config,
    pub templates: &'a Templates,
    pub issued_at: DateTime<Utc>,
    /// In the person's order; at least one.
    pub parts: &'a [Part<'a>],
    /// The person's page of lists, modes and this digest's settings.
    pub preferences_url: String,
    /// The person's page to leave every list at once.
    pub leave_all_url: String,
}

/// The digest, ready to render in any format.
pub fn digest<'a>(combined: &Combined<'a>) -> anyhow::Result<Digest<'a>> {
    let Combined {
        config,
        templates,
        issued_at,
        parts,
        ..
    } = *combined;
    let first = parts
        .first()
        .map(|part| part.list)
        .ok_or_else(|| anyhow::anyhow!("a digest across lists needs at least one list"))?;
    let lang = templates.language(&first.lang);
    let labels = templates.labels(&lang);
    let date = issued_at.with_timezone(&config.site.timezone);
    let names = parts
        .iter()
        .map(|part| part.list.name.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let subject = headers::unfold(&templates.render_str(
        &labels.combined_subject,
        minijinja::context! {
            site => &config.site.name,
            names => &names,
            date => date.format("%Y-%m-%d").to_string(),
        },
    )?);
    let masthead = tidy_text(&templates.render_str(
        &labels.combined_masthead,
        minijinja::context! {
            site => &config.site.name,
            names => &names,
            preferences_url => &combined.preferences_url,
        },
    )?);
    let footer = tidy_text(&templates.render_str(
        &labels.combined_footer,
        minijinja::context! { leave_all_url => &combined.leave_all_url },
    )?);

    // The posts of the digest by story head, to find each story's versions.
    let mut by_head: HashMap<String, Vec<StoredPost>> = HashMap::new();
    for pending in parts.iter().flat_map(|part| &part.posts) {
        if let Some(head) = crate::lang::story_head(&pending.post.title) {
            by_head.entry(head).or_default().push(pending.post.clone());
        }
    }
    let mut shown: HashMap<i64, usize> = HashMap::new();
    let mut entries: Vec<Entry<'a>> = Vec::new();
    for part in parts {
        let addresses = ListAddresses::new(config, part.list);
        let mut section = Some(section(templates, &labels, part, &addresses)?);
        for pending in &part.posts {
            let post = &pending.post;
            let earlier = crate::lang::story_head(&post.title)
                .and_then(|head| by_head.get(&head))
                .and_then(|candidates| {
                    crate::site::story::versions(post, candidates)
                        .into_iter()
                        .find_map(|version| shown.get(&version.id).copied())
                });
            if let Some(index) = earlier {
                let entry: &mut Entry<'a> = &mut entries[index];
                entry.also_in.push(Version {
                    name: part.list.name.clone(),
                    permalink: post
                        .key
                        .as_deref()
                        .map(|key| crate::feeds::permalink(config, key))
                        .unwrap_or_else(|| addresses.archive_url.clone()),
                });
                continue;
            }
            let mut entry = Entry::new(config, entries.len() + 1, pending, &addresses.archive_url);
            entry.section = section.take();
            shown.insert(post.id, entries.len());
            entries.push(entry);
        }
    }

    let mut seed = Sha256::new();
    seed.update(b"combined");
    seed.update(issued_at.timestamp().to_be_bytes());
    for entry in &entries {
        seed.update(entry.pending.post.id.to_be_bytes());
    }
    let seed = seed.finalize();
    // Posts past a size budget are left to the archive of all lists: they
    // may be of any section.
    let mut addresses = ListAddresses::new(config, first);
    addresses.archive_url = config.site.base_url.to_string();
    Ok(Digest {
        config,
        list: first,
        templates,
        addresses,
        lang,
        volume: 0,
        issue: 0,
        trailer: format!("End of {subject}"),
        subject,
        masthead,
        footer,
        date,
        entries,
        boundary_seed: HEXLOWER.encode(&seed[..8]),
        labels,
    })
}

/// The section heading `part` opens with.
fn section(
    templates: &Templates,
    labels: &crate::templates::Labels,
    part: &Part<'_>,
    addresses: &ListAddresses,
) -> anyhow::Result<Section> {
    let list = part.list;
    let mut lines = Vec::new();
    if !list.description.is_empty() && list.description != list.name {
        lines.push(list.description.clone());
    }
    lines.push(templates.render_str(
        &labels.section_post,
        minijinja::context! { address => &addresses.post },
    )?);
    lines.push(templates.render_str(
        &labels.section_leave,
        minijinja::context! { name => &list.name, url => &part.leave_url },
    )?);
    Ok(Section {
        lang: list.lang.clone(),
        dir: crate::site::layout::direction(&list.lang),
        heading: list.name.clone(),
        lines,
    })
}

impl Section {
    /// The section's heading as the plain table of contents shows it.
    pub fn text(&self) -> String {
        let mut out = format!("\n  {}\n", self.heading);
        out.push_str(&format!("  {}\n", "=".repeat(self.heading.chars().count())));
        for line in &self.lines {
            for part in super::wrap(line, super::TOC_WIDTH - 2) {
                out.push_str(&format!("  {part}\n"));
            }
        }
        out.push('\n');
        out
    }
}
