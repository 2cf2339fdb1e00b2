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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_lines_separate_paragraphs_and_indentation_is_kept() {
        assert_eq!(
            paragraphs("\n  \nOne  \r\n  two\n\n \t\n\nThree\t"),
            [vec!["One", "  two"], vec!["Three"]]
        );
        assert!(paragraphs(" \n\t\n").is_empty());
    }
}
