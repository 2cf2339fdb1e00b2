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

/// `words` on one line, separated by one space, except between two wide
/// (CJK) characters that a line break split: those scripts do not separate
/// words with spaces, so a hard-wrapped Chinese or Japanese line rejoins
/// without one.
pub fn join_words<'a>(words: impl IntoIterator<Item = &'a str>) -> String {
    let mut out = String::new();
    let mut previous: Option<char> = None;
    for word in words {
        let first = word.chars().next();
        if let (Some(before), Some(after)) = (previous, first) {
            if !(is_wide(before) && is_wide(after)) {
                out.push(' ');
            }
        }
        out.push_str(word);
        previous = word.chars().last().or(previous);
    }
    out
}

/// Whether `c` takes two columns (East Asian wide or full width: CJK
/// ideographs, kana, hangul, full-width punctuation).
pub fn is_wide(c: char) -> bool {
    use unicode_width::UnicodeWidthChar;
    c.width() == Some(2)
}

/// Lines of `text` at most `width` columns wide (wide characters count
/// two), broken where Unicode's line breaking (UAX #14) allows: at spaces,
/// between CJK characters, never before closing punctuation such as `。`
/// or after opening punctuation; a word wider than a line is cut.
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let options = textwrap::Options::new(width.max(1))
        .word_separator(textwrap::WordSeparator::UnicodeBreakProperties);
    textwrap::wrap(text, options)
        .into_iter()
        .map(|line| line.trim_end().to_string())
        .filter(|line| !line.is_empty())
        .collect()
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
                let columns: usize = line.chars().map(|c| if is_wide(c) { 2 } else { 1 }).sum();
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
    fn blank_lines_separate_paragraphs_and_indentation_is_kept() {
        assert_eq!(
            paragraphs("\n  \nOne  \r\n  two\n\n \t\n\nThree\t"),
            [vec!["One", "  two"], vec!["Three"]]
        );
        assert!(paragraphs(" \n\t\n").is_empty());
    }
}
