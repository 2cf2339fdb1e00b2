//! Full-text search in every list's language (pure): how a post's text is
//! put into the SQLite FTS5 index, and how a reader's query is read.
//!
//! The index tokenizes with `unicode61 remove_diacritics 2`: words of the
//! alphabetic scripts, case and diacritics folded, so `Αθήνα` and `αθηνα`,
//! `grève` and `greve` meet. Chinese and Japanese have no spaces between
//! words; their characters are indexed one by one ([`indexed`] puts a space
//! between them) and a query's run of them becomes a phrase of those
//! characters, so a two-character word finds the posts where the two stand
//! side by side.

/// Whether `c` is written without spaces between words: Han ideographs,
/// kana, and the CJK punctuation and symbols around them.
pub fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF      // Hiragana, Katakana
        | 0x3400..=0x4DBF    // CJK Extension A
        | 0x4E00..=0x9FFF    // CJK Unified Ideographs
        | 0xF900..=0xFAFF    // CJK Compatibility Ideographs
        | 0x20000..=0x2FA1F  // CJK Extensions B..F, Compatibility Supplement
    )
}

/// Whether `c` is Greek (the Greek and Coptic block, and Greek Extended).
fn is_greek(c: char) -> bool {
    matches!(c as u32, 0x0370..=0x03FF | 0x1F00..=0x1FFF)
}

/// `text` as the index holds it: each CJK character a word of its own,
/// Greek without its accents and breathings (the tokenizer folds Latin
/// diacritics alone: `απεργία` and `απεργια` must meet too).
pub fn indexed(text: &str) -> String {
    use unicode_normalization::char::{decompose_canonical, is_combining_mark};
    let mut out = String::with_capacity(text.len() + text.len() / 2);
    let mut previous_cjk = false;
    for c in text.chars() {
        if is_greek(c) {
            decompose_canonical(c, |part| {
                if !is_combining_mark(part) {
                    out.push(part);
                }
            });
            previous_cjk = false;
            continue;
        }
        let cjk = is_cjk(c);
        if (cjk || previous_cjk) && !c.is_whitespace() && !out.is_empty() && !out.ends_with(' ') {
            out.push(' ');
        }
        out.push(c);
        previous_cjk = cjk;
    }
    out
}

/// A reader's query as an FTS5 query: each word a quoted string (so no
/// character of theirs is FTS syntax), each run of CJK characters the
/// phrase of its characters, all of them required. `None` when it has
/// no word at all.
pub fn query(text: &str) -> Option<String> {
    let mut terms: Vec<String> = Vec::new();
    let mut word = String::new();
    let mut cjk_run = false;
    let flush = |word: &mut String, terms: &mut Vec<String>| {
        if !word.is_empty() {
            terms.push(format!("\"{}\"", indexed(word).replace('"', "\"\"")));
            word.clear();
        }
    };
    for c in text.chars() {
        let cjk = is_cjk(c);
        if c.is_alphanumeric() || cjk {
            if cjk != cjk_run {
                flush(&mut word, &mut terms);
                cjk_run = cjk;
            }
            word.push(c);
        } else {
            flush(&mut word, &mut terms);
        }
    }
    flush(&mut word, &mut terms);
    // A bounded query: a pasted page must not become a query of thousands
    // of terms.
    terms.truncate(32);
    (!terms.is_empty()).then(|| terms.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_is_quoted_words_and_cjk_phrases_whatever_its_syntax() {
        assert_eq!(query("Streik"), Some("\"Streik\"".into()));
        assert_eq!(
            query("\"unbalanced AND ("),
            Some("\"unbalanced\" \"AND\"".into())
        );
        assert_eq!(query("罢工 Athens"), Some("\"罢 工\" \"Athens\"".into()));
        assert_eq!(
            query("总罢工strike"),
            Some("\"总 罢 工\" \"strike\"".into())
        );
        assert_eq!(
            query("NEAR(a b) * ^ : -"),
            Some("\"NEAR\" \"a\" \"b\"".into())
        );
        assert_eq!(query(" ( ) \" * "), None);
    }

    #[test]
    fn cjk_characters_become_words_and_other_text_stays() {
        assert_eq!(indexed("罢工开始了"), "罢 工 开 始 了");
        assert_eq!(
            indexed("总罢工 strike2026 继续"),
            "总 罢 工 strike2026 继 续"
        );
        assert_eq!(indexed("Γενική απεργία"), "Γενικη απεργια");
        assert_eq!(indexed("ΐ Ώρα"), "ι Ωρα");
        assert_eq!(indexed(""), "");
    }
}
