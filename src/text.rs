//! Plain text as posts and templates hold it, read the same way by the
//! digests and the feeds (pure).

/// The paragraphs of `text`: runs of lines between blank lines (empty or
/// white space only, which are not kept), each line without its trailing
/// white space. Indentation is kept; a caller that has no use for it trims
/// it.
pub fn paragraphs(text: &str) -> Vec<Vec<&str>> {
    let mut paragraphs = Vec::new();
    let mut current = Vec::new();
    for line in text.lines() {
        let line = line.trim_end();
        if line.is_empty() {
            if !current.is_empty() {
                paragraphs.push(std::mem::take(&mut current));
            }
        } else {
            current.push(line);
        }
    }
    if !current.is_empty() {
        paragraphs.push(current);
    }
    paragraphs
}

/// `words` on one line, separated by one space, except between two
/// characters of the scripts that write words without spaces
/// ([`is_unspaced`]) that a line break split: a hard-wrapped Chinese or
/// Japanese line rejoins without one, a Korean one with its space.
pub fn join_words<'a>(words: impl IntoIterator<Item = &'a str>) -> String {
    let mut out = String::new();
    let mut previous: Option<char> = None;
    for word in words {
        let first = word.chars().next();
        if let (Some(before), Some(after)) = (previous, first) {
            if !(is_unspaced(before) && is_unspaced(after)) {
                out.push(' ');
            }
        }
        out.push_str(word);
        previous = word.chars().last().or(previous);
    }
    out
}

/// Whether `c` belongs to text written without spaces between words, so
/// that a line break between two such characters is no word break: Han
/// ideographs (Chinese, and Japanese kanji), kana, bopomofo, and CJK and
/// full-width punctuation and forms. Hangul is wide too but not one of
/// them: Korean puts spaces between words, so a hard-wrapped Korean line
/// keeps its space when rejoined. Neither are emoji, wide as they are.
pub fn is_unspaced(c: char) -> bool {
    matches!(
        c,
        // CJK and Kangxi radicals, ideographic description characters,
        // CJK symbols and punctuation (、。「」 and the ideographic space).
        '\u{2E80}'..='\u{303F}'
            // Hiragana, katakana, bopomofo.
            | '\u{3040}'..='\u{312F}'
            // Kanbun, bopomofo extended, CJK strokes, katakana extensions,
            // enclosed CJK letters, CJK compatibility, extension A and the
            // unified ideographs (3130..318F, Hangul compatibility jamo, is
            // left out).
            | '\u{3190}'..='\u{9FFF}'
            | '\u{F900}'..='\u{FAFF}'
            // Vertical and CJK compatibility forms, small form variants.
            | '\u{FE10}'..='\u{FE1F}'
            | '\u{FE30}'..='\u{FE6F}'
            // Full-width forms and half-width katakana (FFA0..FFDC,
            // half-width Hangul, is left out).
            | '\u{FF01}'..='\u{FF9F}'
            | '\u{FFE0}'..='\u{FFEE}'
            // Kana supplement and extensions, then the ideographs of the
            // supplementary planes.
            | '\u{1B000}'..='\u{1B16F}'
            | '\u{20000}'..='\u{3FFFD}'
    )
}

/// Lines of `text` at most `width` columns wide (wide characters count
/// two), broken where Unicode's line breaking (UAX #14) allows: at spaces,
/// between CJK characters, never before closing punctuation such as `。`
/// or after opening punctuation; a word wider than a line is cut. A link
/// or a mail address ([`is_link`]) is never broken, at a `/` or a `-` as
/// UAX #14 and hyphenation would: cut in two, it no longer works when a
/// reader follows it. One wider than a line has a line of its own.
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    use textwrap::core::display_width;
    use textwrap::{WordSeparator, WordSplitter};
    let width = width.max(1);
    // textwrap cuts every word wider than the line, or none.
    let long_link = text
        .split_whitespace()
        .any(|word| is_link(word) && display_width(word) > width);
    let options = textwrap::Options::new(width)
        .word_separator(WordSeparator::Custom(words_keeping_links))
        .word_splitter(WordSplitter::Custom(hyphens_outside_links))
        .break_words(!long_link);
    let cut = textwrap::Options::new(width).word_separator(WordSeparator::UnicodeBreakProperties);
    textwrap::wrap(text, options)
        .into_iter()
        .flat_map(|line| {
            // Wider than the line only by a word alone on it: cut, unless
            // it is a link.
            if display_width(&line) > width && !line.split_whitespace().any(is_link) {
                textwrap::wrap(&line, &cut)
                    .into_iter()
                    .map(|part| part.into_owned())
                    .collect()
            } else {
                vec![line.into_owned()]
            }
        })
        .map(|line| line.trim_end().to_string())
        .filter(|line| !line.is_empty())
        .collect()
}

/// Whether `word` (no white space in it) is a link or a mail address:
/// it has `://` in it, or an `@` with a `.` after it.
fn is_link(word: &str) -> bool {
    word.contains("://")
        || word
            .split_once('@')
            .is_some_and(|(_, host)| host.contains('.'))
}

/// The words of `line` as UAX #14 finds them, but each link ([`is_link`])
/// one word with the spaces after it.
fn words_keeping_links(line: &str) -> Box<dyn Iterator<Item = textwrap::core::Word<'_>> + '_> {
    let unicode = textwrap::WordSeparator::UnicodeBreakProperties;
    let mut words = Vec::new();
    // Where the text not yet handed on starts, and where `token` starts.
    let (mut plain, mut at) = (0, 0);
    for token in line.split_inclusive(' ') {
        if is_link(token.trim_end_matches(' ')) {
            words.extend(unicode.find_words(&line[plain..at]));
            words.push(textwrap::core::Word::from(token));
            plain = at + token.len();
        }
        at += token.len();
    }
    words.extend(unicode.find_words(&line[plain..]));
    Box::new(words.into_iter())
}

/// Where a word may be hyphenated (after its hyphens), never in a link.
fn hyphens_outside_links(word: &str) -> Vec<usize> {
    match is_link(word) {
        true => Vec::new(),
        false => textwrap::WordSplitter::HyphenSplitter.split_points(word),
    }
}

/// Whether `c` is a formatting character that can make a title or a name
/// read as something else without being seen: the bidi embeddings,
/// overrides and isolates (U+202A..U+202E, U+2066..U+2069), which reorder
/// the text after them (an override turns `gpj.exe` into `exe.jpg`), and
/// the invisible zero-width space, word joiner and byte order mark
/// (U+200B, U+2060, U+FEFF), which split a word without showing. Titles
/// and names drop them: each is shown in its own isolated element
/// (`dir="auto"`), which is how right-to-left text is kept right, so they
/// add nothing there. The marks LRM, RLM and ALM and the joiners ZWJ and
/// ZWNJ are kept: Persian, Indic and emoji text needs them, and they
/// reorder nothing past their neighbours.
pub fn is_spoofing_format(c: char) -> bool {
    matches!(
        c,
        '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200B}' | '\u{2060}' | '\u{FEFF}'
    )
}

/// `text` in at most `max_chars` characters: whole when it fits, else cut
/// after its last word when that keeps three quarters of them, else at the
/// last grapheme boundary (never between a letter and its accents, nor
/// inside an emoji sequence), leaving room for the "…" it ends with.
pub fn cut_chars(text: &str, max_chars: usize) -> std::borrow::Cow<'_, str> {
    use unicode_segmentation::UnicodeSegmentation;
    if text.chars().nth(max_chars).is_none() {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut kept = 0;
    let mut end = 0;
    for (index, grapheme) in text.grapheme_indices(true) {
        let chars = grapheme.chars().count();
        if kept + chars + 1 > max_chars {
            break;
        }
        kept += chars;
        end = index + grapheme.len();
    }
    // After a word when that keeps three quarters of what fits.
    let head = &text[..end];
    let end = head
        .rfind(char::is_whitespace)
        .filter(|&space| head[..space].chars().count() * 4 >= kept * 3)
        .unwrap_or(end);
    let mut cut = text[..end].trim_end().to_string();
    cut.push('…');
    std::borrow::Cow::Owned(cut)
}

/// The longest start of `text` in at most `max_chars` characters that ends
/// at a paragraph break (a blank line), else at a line break, else after
/// white space, each only when it keeps at least half of them, else at a
/// grapheme boundary; `None` when the whole text fits.
pub fn cut_at_paragraph(text: &str, max_chars: usize) -> Option<&str> {
    use unicode_segmentation::UnicodeSegmentation;
    let (limit, _) = text.char_indices().nth(max_chars)?;
    let head = &text[..limit];
    let half = limit / 2;
    let at = |found: Option<usize>| found.filter(|&end| end >= half);
    let end = at(head.rfind("\n\n"))
        .or_else(|| at(head.rfind('\n')))
        .or_else(|| at(head.rfind(char::is_whitespace)))
        .unwrap_or_else(|| {
            head.grapheme_indices(true)
                .map(|(index, _)| index)
                .next_back()
                .filter(|&index| index > 0)
                .unwrap_or(limit)
        });
    Some(text[..end].trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cjk_lines_rejoin_without_spaces_and_never_begin_with_closing_punctuation() {
        assert_eq!(
            join_words(["世界自", "由", "and", "free"]),
            "世界自由 and free"
        );
        assert_eq!(join_words(["Ελλάδα:", "απεργία"]), "Ελλάδα: απεργία");
        let text = "人人生而自由，在尊严和权利上一律平等。他们赋有理性和良心，并应以兄弟关系的精神相对待。";
        for width in 4..40 {
            let lines = wrap(text, width);
            assert_eq!(lines.concat(), text, "nothing lost at {width}");
            for line in &lines {
                let columns = unicode_width::UnicodeWidthStr::width(line.as_str());
                assert!(columns <= width, "{line:?} at {width}");
                assert!(
                    !line.starts_with(['。', '，', '、', '）', '」']),
                    "{line:?} begins with closing punctuation at {width}"
                );
            }
        }
        assert_eq!(
            wrap("the quick brown fox jumps", 10),
            ["the quick", "brown fox", "jumps"]
        );
    }

    #[test]
    fn links_and_addresses_are_never_broken_and_long_words_are_cut() {
        let url = "https://news.example.org/unsubscribe/aeaaaaaaaiaabzhxyu6jybt2hnyjq";
        let line = format!("To leave Français, visit {url}");
        assert_eq!(wrap(&line, 74), ["To leave Français, visit", url]);
        assert_eq!(wrap(&line, 40), ["To leave Français, visit", url]);
        let address = "To post to it, send your message to a-infos-fr@lists.example.org";
        assert_eq!(
            wrap(address, 50),
            [
                "To post to it, send your message to",
                "a-infos-fr@lists.example.org"
            ]
        );
        assert_eq!(
            wrap(&format!("{url} and more"), 90),
            [format!("{url} and more")]
        );
        // Words that are no links are hyphenated and cut as before.
        assert_eq!(wrap("well-known words", 12), ["well-known", "words"]);
        assert_eq!(wrap("abcdefghijkl mn", 5), ["abcde", "fghij", "kl mn"]);
        assert_eq!(
            wrap(&format!("abcdefghijkl {url}"), 5),
            ["abcde", "fghij", "kl", url]
        );
    }

    #[test]
    fn korean_lines_rejoin_with_their_space_and_chinese_and_japanese_without() {
        // Article 1 of the Universal Declaration, hard-wrapped between words.
        let korean = "모든 인간은 태어날 때부터 자유로우며\n그 존엄과 권리에 있어 동등하다.";
        let lines = &paragraphs(korean)[0];
        assert_eq!(
            join_words(lines.iter().flat_map(|line| line.split_whitespace())),
            "모든 인간은 태어날 때부터 자유로우며 그 존엄과 권리에 있어 동등하다."
        );
        assert_eq!(join_words(["자유로우며", "그"]), "자유로우며 그");
        assert_eq!(join_words(["ㄱ", "ㄴ"]), "ㄱ ㄴ");
        assert_eq!(
            join_words(["すべての人間は、生れながらにして", "自由であり、"]),
            "すべての人間は、生れながらにして自由であり、"
        );
        assert_eq!(
            join_words(["カタカナ", "ｶﾀｶﾅ", "（注）"]),
            "カタカナｶﾀｶﾅ（注）"
        );
        assert_eq!(join_words(["自由", "𠀀"]), "自由𠀀");
        // Emoji are wide, but words around them have their spaces.
        assert_eq!(join_words(["🎉", "🎉"]), "🎉 🎉");
        for c in ['모', 'ᄀ', 'ㄱ', 'ﾡ', '🎉', 'a', 'Ω'] {
            assert!(!is_unspaced(c), "{c:?}");
        }
        for c in [
            '世', 'か', 'カ', 'ㄅ', '。', '，', '「', '\u{3000}', 'Ａ', 'ｶ', '𠀀',
        ] {
            assert!(is_unspaced(c), "{c:?}");
        }
    }

    #[test]
    fn blank_lines_separate_paragraphs_and_indentation_is_kept() {
        assert_eq!(
            paragraphs("\n  \nOne  \r\n  two\n\n \t\n\nThree\t"),
            [vec!["One", "  two"], vec!["Three"]]
        );
        assert!(paragraphs(" \n\t\n").is_empty());
    }

    #[test]
    fn titles_are_cut_between_graphemes_with_an_ellipsis() {
        assert_eq!(cut_chars("short", 10), "short");
        assert_eq!(cut_chars("abcdefghij", 10), "abcdefghij");
        assert_eq!(cut_chars("one two three", 8), "one two…");
        // e + combining acute is one grapheme: never split.
        let accents = "e\u{301}".repeat(10);
        let cut = cut_chars(&accents, 6);
        assert_eq!(cut, format!("{}…", "e\u{301}".repeat(2)));
        // A family emoji (7 characters) is kept whole or not at all.
        let family = "\u{1F468}\u{200D}\u{1F469}\u{200D}\u{1F467}\u{200D}\u{1F466}";
        assert_eq!(cut_chars(&format!("ab{family}cd"), 6), "ab…");
        assert!(cut_chars(&"x".repeat(200_000), 500).chars().count() <= 500);
    }

    #[test]
    fn texts_are_cut_at_a_paragraph_else_a_line_else_a_space() {
        let text = format!("{}\n\n{}\n\nlast", "a".repeat(60), "b".repeat(30));
        assert_eq!(cut_at_paragraph(&text, 1000), None);
        assert_eq!(cut_at_paragraph(&text, 95), Some(&text[..92]));
        assert_eq!(cut_at_paragraph(&text, 70), Some("a".repeat(60).as_str()));
        let lines = format!("{}\n{}", "a".repeat(60), "b".repeat(60));
        assert_eq!(cut_at_paragraph(&lines, 100), Some("a".repeat(60).as_str()));
        let words = "word ".repeat(50);
        let cut = cut_at_paragraph(&words, 52).unwrap();
        assert!(cut.ends_with("word") && cut.len() <= 52, "{cut:?}");
        // One word longer than the limit: cut between graphemes.
        let long = "e\u{301}".repeat(100);
        let cut = cut_at_paragraph(&long, 51).unwrap();
        assert_eq!(cut, "e\u{301}".repeat(25));
    }

    #[test]
    fn what_reorders_or_hides_text_is_told_from_what_scripts_need() {
        for c in [
            '\u{202E}', '\u{202A}', '\u{2066}', '\u{2069}', '\u{200B}', '\u{FEFF}',
        ] {
            assert!(is_spoofing_format(c), "{c:?}");
        }
        for c in [
            '\u{200C}', '\u{200D}', '\u{200E}', '\u{200F}', '\u{061C}', 'a', 'ש',
        ] {
            assert!(!is_spoofing_format(c), "{c:?}");
        }
    }
}
