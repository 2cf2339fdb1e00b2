//! The versions of one story in several languages (pure).
//!
//! A-Infos publishes a story once per language, each version a post of its
//! list, and announces the others in the subject: `(en) France, UCL AL
//! #316 = International, ... (ca, de, it, fr, pt)`. The versions share the
//! story's head (`France, UCL AL #316`, [`crate::lang::story_head`]), which
//! is not translated. Two posts are versions of one story when
//! - they have the same head,
//! - they came within [`WINDOW`] of each other,
//! - they are on different lists, and
//! - one of them announces the other's list (its code or language among
//!   its translations).
//!
//! The last rule keeps apart two stories that share a head by chance (the
//! same group's next communiqué), since translations are announced.

use crate::post::StoredPost;

/// How far apart in time the versions of one story may come.
pub const WINDOW: i64 = 14 * 86_400;

/// Whether `a` announces `b`: b's list code or language is among a's
/// translations.
fn announces(a: &StoredPost, b: &StoredPost) -> bool {
    a.translations.iter().any(|code| {
        Some(code.as_str()) == b.list_code.as_deref() || Some(code.as_str()) == b.lang.as_deref()
    })
}

/// The other versions of `post` among `candidates` (posts with its head
/// that came within the window), at most one per list (the nearest in
/// time), in the order of their lists' codes.
pub fn versions<'a>(post: &StoredPost, candidates: &'a [StoredPost]) -> Vec<&'a StoredPost> {
    let mut versions: Vec<&StoredPost> = Vec::new();
    for candidate in candidates {
        let other_list = candidate.list_code.is_some() && candidate.list_code != post.list_code;
        let near = (candidate.received_at - post.received_at).abs() <= WINDOW;
        if candidate.id == post.id || !other_list || !near {
            continue;
        }
        if !(announces(post, candidate) || announces(candidate, post)) {
            continue;
        }
        match versions
            .iter_mut()
            .find(|v| v.list_code == candidate.list_code)
        {
            Some(kept) => {
                let distance = |p: &StoredPost| (p.received_at - post.received_at).abs();
                if distance(candidate) < distance(kept) {
                    *kept = candidate;
                }
            }
            None => versions.push(candidate),
        }
    }
    versions.sort_by(|a, b| a.list_code.cmp(&b.list_code));
    versions
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::post::{Post, Status};

    fn post(id: i64, list: &str, received_at: i64, translations: &[&str]) -> StoredPost {
        StoredPost {
            id,
            post: Post {
                key: Some(format!("{id:020x}")),
                message_id: None,
                list_code: Some(list.to_string()),
                lang: Some(list.to_string()),
                status: Status::Published,
                reason: None,
                filed_by: None,
                tag: Some(list.to_string()),
                subject: String::new(),
                title: "France, UCL AL #316 = x".into(),
                translations: translations.iter().map(|t| t.to_string()).collect(),
                machine_translation: false,
                author_name: String::new(),
                author_address: String::new(),
                date_header: None,
                date: None,
                received_at,
                body: String::new(),
                attachments: Vec::new(),
                size: 0,
            },
        }
    }

    #[test]
    fn versions_are_the_announced_posts_of_other_lists_near_in_time() {
        let en = post(1, "en", 1000, &["fr", "de"]);
        let candidates = vec![
            en.clone(),
            post(2, "fr", 2000, &["en", "de"]),
            post(3, "de", 3000, &[]),
            // Same head, same list: the group's next issue, not a version.
            post(4, "en", 4000, &["fr"]),
            // Announced by nobody and announcing nobody.
            post(5, "it", 1500, &[]),
            // Too late.
            post(6, "pt", 1000 + WINDOW + 1, &["en"]),
            // A second French candidate, farther in time.
            post(7, "fr", 90_000, &["en"]),
        ];
        let ids: Vec<i64> = versions(&en, &candidates).iter().map(|p| p.id).collect();
        assert_eq!(ids, [3, 2]);
        // And the other way: the German post finds the English one that
        // announced it.
        let de = candidates[2].clone();
        let ids: Vec<i64> = versions(&de, &candidates).iter().map(|p| p.id).collect();
        assert_eq!(ids, [1, 2]);
    }
}
