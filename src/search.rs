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

/// `text` as the index holds it: each CJK character a word of its own.
pub fn indexed(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 2);
    let mut previous_cjk = false;
    for c in text.chars() {
        let cjk = is_cjk(c);
        if (cjk || previous_cjk) && !c.is_whitespace() && !out.is_empty() && !out.ends_with(' ') {
            out.push(' ');
        }
        out.push(c);
        previous_cjk = cjk;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cjk_characters_become_words_and_other_text_stays() {
        assert_eq!(indexed("罢工开始了"), "罢 工 开 始 了");
        assert_eq!(
            indexed("总罢工 strike2026 继续"),
            "总 罢 工 strike2026 继 续"
        );
        assert_eq!(indexed("Γενική απεργία"), "Γενική απεργία");
        assert_eq!(indexed(""), "");
    }
}
