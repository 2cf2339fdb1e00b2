//! Text as feeds carry it (pure): what XML cannot hold is removed, and a
//! post's summary is its first few lines, cut at a word boundary.

use std::borrow::Cow;

use unicode_width::UnicodeWidthChar;

/// Width of a summary, in terminal columns: about four lines of a mail
/// reader, like the "first few lines" A-Infos shows. A CJK character takes
/// two columns, so a Chinese summary holds half as many characters.
pub const SUMMARY_COLUMNS: usize = 300;

/// Width of a title made up from the text when the subject held nothing
/// printable.
const FALLBACK_TITLE_COLUMNS: usize = 80;

/// Marks a summary or title that was cut short.
const ELLIPSIS: char = '…';

/// `text` without what an XML 1.0 document cannot carry or a feed should
/// not: C0 controls except tab and line feed, DEL, C1 controls, carriage
/// returns, the Unicode noncharacters (U+FDD0..U+FDEF and U+xFFFE/U+xFFFF
/// in every plane), and U+FFFD, which only marks bytes ingest could not
/// decode and which feed validators flag as a bad character. Unpaired surrogates cannot occur: a Rust string is valid
/// UTF-8 by construction. Borrowed when nothing had to go, as is usual.
pub fn xml_safe(text: &str) -> Cow<'_, str> {
    if text.chars().all(is_carried) {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(text.chars().filter(|&c| is_carried(c)).collect())
    }
}

fn is_carried(c: char) -> bool {
    let code = c as u32;
    match c {
        '\t' | '\n' => true,
        _ if c.is_control() => false,
        '\u{FFFD}' => false,
        _ => !(0xFDD0..=0xFDEF).contains(&code) && code & 0xFFFE != 0xFFFE,
    }
}

/// The name a feed gives a contributor: their display name without what
/// does not belong in one, so that no reader or harvester finds markup or an
/// address there: anything between `<` and `>` (a tag, or an address in
/// angle brackets), and any word with an `@` in it.
pub fn author_name(display_name: &str) -> String {
    let name = xml_safe(display_name);
    let mut untagged = String::with_capacity(name.len());
    let mut rest = name.as_ref();
    while let Some(open) = rest.find('<') {
        match rest[open..].find('>') {
            Some(close) => {
                untagged.push_str(&rest[..open]);
                rest = &rest[open + close + 1..];
            }
            None => break,
        }
    }
    untagged.push_str(rest);
    untagged
        .split_whitespace()
        .filter(|word| !word.contains('@'))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether readers that take text for HTML (as many do with RSS titles)
/// could find markup in it: a `<`, or something shaped like a character
/// reference (`&amp;`, `&#60;`). Such text is sent as escaped HTML.
pub fn looks_like_markup(text: &str) -> bool {
    text.contains('<')
        || text.match_indices('&').any(|(at, _)| {
            let reference = &text[at + 1..];
            let name_length = reference
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '#'))
                .unwrap_or(reference.len());
            name_length > 0 && reference[name_length..].starts_with(';')
        })
}

/// `text` with each line that is UTF-8 read as Latin-1 ("Ã©" for "é", as
/// when a mailer sends UTF-8 labelled us-ascii or ISO-8859-1) read as UTF-8
/// again. Only a line made wholly of Latin-1 characters, with at least one
/// such pair, whose bytes are valid UTF-8, is touched: genuine Latin-1 text
/// practically never is all three. Feed validators flag such lines as bad
/// characters, and readers see garbage.
pub fn undo_double_encoding(text: &str) -> Cow<'_, str> {
    if !text.chars().any(|c| ('\u{C2}'..='\u{F4}').contains(&c)) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut changed = false;
    for line in text.split_inclusive('\n') {
        match redecode(line) {
            Some(decoded) => {
                out.push_str(&decoded);
                changed = true;
            }
            None => out.push_str(line),
        }
    }
    if changed {
        Cow::Owned(out)
    } else {
        Cow::Borrowed(text)
    }
}

fn redecode(line: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(line.len());
    let mut pairs = false;
    let mut previous = '\0';
    for c in line.chars() {
        let byte = u8::try_from(u32::from(c)).ok()?;
        pairs |= ('\u{C2}'..='\u{F4}').contains(&previous) && ('\u{80}'..='\u{BF}').contains(&c);
        previous = c;
        bytes.push(byte);
    }
    if !pairs {
        return None;
    }
    String::from_utf8(bytes).ok()
}

/// The first few lines of a post: its text before the signature (or all of
/// it, when nothing comes before), with runs of white space made one space,
/// cut at the last word boundary that fits in [`SUMMARY_COLUMNS`] and ended
/// with "…" when cut. Empty only for a text without a printable character.
pub fn summarize(body: &str) -> String {
    let mut text = flowed(without_signature(body), SUMMARY_COLUMNS);
    if text.is_empty() {
        text = flowed(body, SUMMARY_COLUMNS);
    }
    first_words(&text, SUMMARY_COLUMNS)
}

/// The title of a post in a feed: its subject, or when that held nothing
/// printable, the first words of its text, or its key.
pub fn title(subject: &str, body: &str, key: &str) -> String {
    let subject = xml_safe(subject);
    let subject = subject.split_whitespace().collect::<Vec<_>>().join(" ");
    if !subject.is_empty() {
        return subject;
    }
    let words = first_words(
        &flowed(&xml_safe(without_signature(body)), FALLBACK_TITLE_COLUMNS),
        FALLBACK_TITLE_COLUMNS,
    );
    if words.is_empty() {
        key.to_string()
    } else {
        words
    }
}

/// Text before the "-- " line that starts a signature (RFC 3676, 4.3).
fn without_signature(body: &str) -> &str {
    if body.starts_with("-- \n") {
        return "";
    }
    body.find("\n-- \n").map_or(body, |end| &body[..end])
}

/// The words of `text` on one line ([`crate::text::join_words`]: one space
/// between words, none between two Chinese or Japanese characters a line
/// break split).
/// Only as many words as make it wider than `columns`: [`first_words`] cuts
/// that start where it would cut the whole line, and a long post is not
/// copied whole to show its first few lines.
fn flowed(text: &str, columns: usize) -> String {
    let mut width = 0;
    let mut previous: Option<char> = None;
    let words = text.split_whitespace().take_while(|word| {
        if width > columns {
            return false;
        }
        let first = word.chars().next();
        if let (Some(before), Some(after)) = (previous, first) {
            if !(crate::text::is_unspaced(before) && crate::text::is_unspaced(after)) {
                width += 1;
            }
        }
        width += word.chars().map(|c| c.width().unwrap_or(0)).sum::<usize>();
        previous = word.chars().last().or(previous);
        true
    });
    crate::text::join_words(words)
}

/// The longest start of `text` (one line, as [`flowed`] makes it) that fits
/// in `columns`, ending at a word boundary: before a space, or next to a
/// wide character, since CJK text may break between any two of its
/// characters. A start that would end before half the width (one very long
/// word or URL) is cut inside the word instead, never before a combining
/// mark.
fn first_words(text: &str, columns: usize) -> String {
    let total: usize = text.chars().map(|c| c.width().unwrap_or(0)).sum();
    if total <= columns {
        return text.to_string();
    }
    // One column is kept for the ellipsis.
    let mut width = 0;
    let mut boundary = None;
    let mut previous_wide = false;
    for (index, c) in text.char_indices() {
        let char_width = c.width().unwrap_or(0);
        if width + char_width >= columns {
            let end = match boundary {
                Some(end) if end * 2 >= index => end,
                _ => index,
            };
            let mut cut = text[..end].trim_end().to_string();
            cut.push(ELLIPSIS);
            return cut;
        }
        if c == ' ' || (char_width == 2 && index > 0) || previous_wide {
            boundary = Some(index);
        }
        width += char_width;
        previous_wide = char_width == 2;
    }
    text.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_xml_cannot_carry_is_removed() {
        let text =
            "a\u{1}b\u{8}\r\n\tc\u{7f}\u{85}d\u{fffe}\u{ffff}\u{fdd0}\u{1fffe}\u{fffd}e\u{feff}";
        assert_eq!(xml_safe(text), "ab\n\tcde\u{feff}");
        assert!(matches!(
            xml_safe("ok: Ελλάδα, 中文, עברית"),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn utf8_read_as_latin1_is_read_again() {
        assert_eq!(
            undo_double_encoding("ok\nCafÃ© Ã¬IGTS\nCafé 100 ÂµA\n"),
            "ok\nCafé ìIGTS\nCafé 100 ÂµA\n"
        );
        assert!(matches!(
            undo_double_encoding("Grüße, Ελλάδα"),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn author_names_carry_no_markup_and_no_address() {
        assert_eq!(author_name("\"<b>Mallory</b> & Co\""), "\"Mallory & Co\"");
        assert_eq!(author_name("Ana (ana@example.org) Silva"), "Ana Silva");
        assert_eq!(author_name("Ana <ana@example.org>"), "Ana");
        assert_eq!(author_name("1 < 2 \u{1}"), "1 < 2");
    }

    #[test]
    fn markup_is_told_from_plain_text() {
        assert!(looks_like_markup("<script>"));
        assert!(looks_like_markup("a &amp; b"));
        assert!(looks_like_markup("&#60;"));
        assert!(!looks_like_markup("AT&T & co; 100%"));
        assert!(!looks_like_markup("Ελλάδα: «απεργία» & διαδήλωση"));
    }

    #[test]
    fn short_text_is_kept_whole() {
        assert_eq!(
            summarize("One line.\n\nTwo  lines.\n"),
            "One line. Two lines."
        );
    }

    #[test]
    fn long_text_is_cut_at_a_word_boundary() {
        let body = "word ".repeat(200);
        let summary = summarize(&body);
        assert!(summary.ends_with("word…"), "{summary}");
        assert!(summary.chars().count() <= SUMMARY_COLUMNS);
        assert!(summary.chars().count() > SUMMARY_COLUMNS - 6);
    }

    #[test]
    fn cjk_text_is_cut_between_characters_and_lines_join_without_spaces() {
        let body = "人人生而自由，在尊严和权利上一律平等。\n他们赋有理性和良心。".repeat(20);
        let summary = summarize(&body);
        assert!(!summary.contains(' '), "{summary}");
        assert!(summary.ends_with('…'));
        let width: usize = summary.chars().map(|c| c.width().unwrap_or(0)).sum();
        assert!(
            (SUMMARY_COLUMNS - 3..=SUMMARY_COLUMNS).contains(&width),
            "{width}"
        );
    }

    #[test]
    fn one_long_word_is_cut_inside_but_not_before_a_combining_mark() {
        let body = format!("see {}", "e\u{301}".repeat(400));
        let summary = summarize(&body);
        assert!(summary.ends_with("e\u{301}…"), "{summary}");
    }

    /// [`flowed`] stops once it is wider than the summary: the summary of
    /// that start is the summary of the whole text, for texts on either
    /// side of the width, with and without wide characters.
    #[test]
    fn a_summary_of_the_first_words_is_that_of_the_whole_text() {
        let words = [
            "a",
            "word",
            "longer-word",
            "人人",
            "自由",
            "\n",
            "  ",
            "e\u{301}",
        ];
        for seed in 0..400usize {
            let mut body = String::new();
            let mut state = seed;
            for _ in 0..(seed % 120) {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1);
                body.push_str(words[(state >> 33) % words.len()]);
                body.push(if state % 3 == 0 { '\n' } else { ' ' });
            }
            let whole = first_words(&flowed(&body, usize::MAX), SUMMARY_COLUMNS);
            assert_eq!(summarize(&body), whole, "{body:?}");
        }
    }

    #[test]
    fn signature_is_not_summarized() {
        assert_eq!(summarize("Text.\n-- \nName\nhttp://x\n"), "Text.");
        assert_eq!(
            summarize("\n-- \nOnly a signature\n"),
            "-- Only a signature"
        );
    }

    #[test]
    fn empty_subject_falls_back_to_the_text_then_the_key() {
        assert_eq!(title("\u{1}\u{fffe} ", "First words.", "k"), "First words.");
        assert_eq!(title("", "", "0123abcd"), "0123abcd");
        assert_eq!(title(" a \u{7}  b ", "", "k"), "a b");
    }
}
