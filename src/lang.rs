//! Which language a post is in: the subject tag, or the text itself (pure).
//!
//! A-Infos subjects look like
//! `(en) France, UCL AL #316 = International, ... (ca, de, it, fr, pt)[machine translation]`:
//! the leading tag is the post's language, the trailing list names the
//! languages it is translated into, and the marker says the translation was
//! made by machine. [`parse_subject`] takes such a subject apart;
//! [`Detector`] guesses the language of untagged text.

use whatlang::Lang as Detected;

/// A subject taken apart.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subject {
    /// The language tag, lowercase, as written ("en" in "(en) ...").
    pub tag: Option<String>,
    /// What remains: no reply prefixes, list tag, language tag, translation
    /// list or machine-translation marker.
    pub title: String,
    /// Codes in the trailing "(ca, de, it)" list, lowercase, in written order.
    pub translations: Vec<String>,
    /// Whether the subject carries "[machine translation]".
    pub machine_translation: bool,
    /// The code in a leading list tag such as "[a-infos-es]".
    pub list_tag: Option<String>,
}

/// Reply and forward prefixes mail clients put in front of a subject, in the
/// languages A-Infos carries (compared case-insensitively).
const REPLY_PREFIXES: &[&str] = &[
    "re",
    "fw",
    "fwd",
    "tr",
    "aw",
    "wg",
    "sv",
    "vs",
    "vl",
    "antw",
    "doorst",
    "rif",
    "r",
    "i",
    "odp",
    "pd",
    "ynt",
    "ilt",
    "enc",
    "res",
    "rv",
    "ref",
    "ответ",
    "отв",
    "пересл",
    "απ",
    "σχετ",
    "προώθ",
    "回复",
    "回覆",
    "转发",
    "轉寄",
    "答复",
    "vá",
    "välitä",
];

/// The head of a story's title, what the versions of one story in several
/// languages share: A-Infos titles read `Country, Group #316 = rest`, the
/// rest translated, the head not. It is the part before the first
/// separator (` = `, ` - `, ` – `, ` — `, `: `), when that part names at
/// least two things (holds a comma) and is long enough to tell stories
/// apart; normalised (lowercase, one space between words, no trailing
/// punctuation). `None` for a title without such a head.
pub fn story_head(title: &str) -> Option<String> {
    const SEPARATORS: [&str; 5] = [" = ", " - ", " \u{2013} ", " \u{2014} ", ": "];
    let cut = SEPARATORS
        .iter()
        .filter_map(|separator| title.find(separator))
        .min()?;
    let head = title[..cut].trim();
    if !head.contains(',') || head.chars().count() < 8 {
        return None;
    }
    let normal: Vec<String> = head
        .split_whitespace()
        .map(|word| word.to_lowercase())
        .collect();
    let normal = normal.join(" ");
    let normal = normal.trim_end_matches(|c: char| c.is_ascii_punctuation() && c != '#');
    (!normal.is_empty()).then(|| normal.to_string())
}

/// Takes an A-Infos style subject apart.
pub fn parse_subject(subject: &str) -> Subject {
    let mut parts = Subject::default();
    let mut rest = subject.trim();
    loop {
        if let Some(after) = strip_reply_prefix(rest) {
            rest = after;
        } else if let Some((inner, after)) = bracketed(rest, '[', ']')
            .filter(|(inner, _)| tag_shaped(inner.trim()).is_none() && !inner.contains(']'))
        {
            // A list tag such as "[a-infos-es]": its last segment names the list.
            let code = inner.trim().rsplit(['-', '_', ' ']).next().unwrap_or("");
            if tag_shaped(code).is_some() {
                parts.list_tag = Some(code.to_ascii_lowercase());
            }
            rest = after;
        } else {
            break;
        }
        rest = rest.trim_start();
    }

    let tag = bracketed(rest, '(', ')').or_else(|| bracketed(rest, '[', ']'));
    if let Some((code, after)) =
        tag.and_then(|(inner, after)| Some((tag_shaped(inner.trim())?, after)))
    {
        parts.tag = Some(code);
        rest = after.trim_start();
        // "(en) Re: ..." still carries a reply prefix worth dropping.
        while let Some(after) = strip_reply_prefix(rest) {
            rest = after.trim_start();
        }
    }

    loop {
        rest = rest.trim_end();
        if let Some(before) = strip_suffix_ignore_case(rest, "[machine translation]")
            .or_else(|| strip_suffix_ignore_case(rest, "(machine translation)"))
        {
            parts.machine_translation = true;
            rest = before;
        } else if let Some((codes, before)) = trailing_translations(rest) {
            if !parts.translations.is_empty() {
                break;
            }
            parts.translations = codes;
            rest = before;
        } else {
            break;
        }
    }
    parts.title = rest.trim().to_string();
    parts
}

/// `"Re: x"` -> `"x"` for any known reply prefix, with an optional "[2]"
/// counter, followed by an ASCII or full-width colon.
fn strip_reply_prefix(text: &str) -> Option<&str> {
    let colon = text.find([':', '：'])?;
    let head = text[..colon].trim_end();
    let head = match head.find('[') {
        Some(open) if head.ends_with(']') => &head[..open],
        _ => head,
    };
    let head = head.to_lowercase();
    if !REPLY_PREFIXES.contains(&head.as_str()) {
        return None;
    }
    let colon_len = text[colon..].chars().next().map_or(1, char::len_utf8);
    Some(text[colon + colon_len..].trim_start())
}

/// `"(en) rest"` -> `("en", "rest")` for the given brackets.
fn bracketed(text: &str, open: char, close: char) -> Option<(&str, &str)> {
    let inner = text.strip_prefix(open)?;
    let end = inner.find(close)?;
    Some((&inner[..end], &inner[end + close.len_utf8()..]))
}

/// The lowercase tag if `text` looks like a language tag: two or three
/// letters, optionally followed by a region or script ("pt-br", "zh-hant").
fn tag_shaped(text: &str) -> Option<String> {
    let (primary, region) = match text.split_once('-') {
        Some((primary, region)) => (primary, Some(region)),
        None => (text, None),
    };
    let primary_ok =
        (2..=3).contains(&primary.len()) && primary.chars().all(|c| c.is_ascii_alphabetic());
    let region_ok = region
        .is_none_or(|r| (2..=4).contains(&r.len()) && r.chars().all(|c| c.is_ascii_alphanumeric()));
    (primary_ok && region_ok).then(|| text.to_ascii_lowercase())
}

fn strip_suffix_ignore_case<'a>(text: &'a str, suffix: &str) -> Option<&'a str> {
    let cut = text.len().checked_sub(suffix.len())?;
    let (before, tail) = (text.get(..cut)?, text.get(cut..)?);
    tail.eq_ignore_ascii_case(suffix).then_some(before)
}

/// `"title (ca, de, it)"` -> `(["ca", "de", "it"], "title")`. Only lowercase
/// codes count, as A-Infos writes them: "(UK)" or "(CNT)" stay in the title.
fn trailing_translations(text: &str) -> Option<(Vec<String>, &str)> {
    let inner_end = text.strip_suffix(')')?;
    let open = inner_end.rfind('(')?;
    let inner = &inner_end[open + 1..];
    let codes: Vec<String> = inner
        .split(',')
        .map(|code| code.trim().to_string())
        .collect();
    let all_codes = codes
        .iter()
        .all(|code| tag_shaped(code).is_some() && !code.chars().any(|c| c.is_ascii_uppercase()));
    let before = &text[..open];
    (all_codes && !before.trim().is_empty()).then_some((codes, before))
}

/// Guesses the language of a post's text among the languages the lists serve.
pub struct Detector {
    inner: whatlang::Detector,
    min_confidence: f64,
}

impl Detector {
    /// A detector that only answers with one of `served` (BCP 47 tags);
    /// tags the detector does not know are skipped.
    pub fn new<'a>(served: impl IntoIterator<Item = &'a str>, min_confidence: f64) -> Self {
        let allow: Vec<Detected> = served.into_iter().filter_map(to_detected).collect();
        let inner = if allow.is_empty() {
            whatlang::Detector::new()
        } else {
            whatlang::Detector::with_allowlist(allow)
        };
        Detector {
            inner,
            min_confidence,
        }
    }

    /// The ISO 639-1 code of the text's language when the detector is at
    /// least `min_confidence` sure.
    pub fn detect(&self, text: &str) -> Option<&'static str> {
        // A few thousand characters decide as well as the whole text does.
        let sample = match text.char_indices().nth(4000) {
            Some((cut, _)) => &text[..cut],
            None => text,
        };
        let info = self.inner.detect(sample)?;
        (info.confidence() >= self.min_confidence)
            .then(|| from_detected(info.lang()))
            .flatten()
    }
}

/// ISO 639-1 codes for the languages the detector knows.
const ISO_639_1: &[(&str, Detected)] = &[
    ("af", Detected::Afr),
    ("ak", Detected::Aka),
    ("am", Detected::Amh),
    ("ar", Detected::Ara),
    ("az", Detected::Aze),
    ("be", Detected::Bel),
    ("bg", Detected::Bul),
    ("bn", Detected::Ben),
    ("ca", Detected::Cat),
    ("cs", Detected::Ces),
    ("cy", Detected::Cym),
    ("da", Detected::Dan),
    ("de", Detected::Deu),
    ("el", Detected::Ell),
    ("en", Detected::Eng),
    ("eo", Detected::Epo),
    ("es", Detected::Spa),
    ("et", Detected::Est),
    ("fa", Detected::Pes),
    ("fi", Detected::Fin),
    ("fr", Detected::Fra),
    ("gu", Detected::Guj),
    ("he", Detected::Heb),
    ("hi", Detected::Hin),
    ("hr", Detected::Hrv),
    ("hu", Detected::Hun),
    ("hy", Detected::Hye),
    ("id", Detected::Ind),
    ("it", Detected::Ita),
    ("ja", Detected::Jpn),
    ("jv", Detected::Jav),
    ("ka", Detected::Kat),
    ("km", Detected::Khm),
    ("kn", Detected::Kan),
    ("ko", Detected::Kor),
    ("la", Detected::Lat),
    ("lt", Detected::Lit),
    ("lv", Detected::Lav),
    ("mk", Detected::Mkd),
    ("ml", Detected::Mal),
    ("mr", Detected::Mar),
    ("my", Detected::Mya),
    ("nb", Detected::Nob),
    ("ne", Detected::Nep),
    ("nl", Detected::Nld),
    ("or", Detected::Ori),
    ("pa", Detected::Pan),
    ("pl", Detected::Pol),
    ("pt", Detected::Por),
    ("ro", Detected::Ron),
    ("ru", Detected::Rus),
    ("si", Detected::Sin),
    ("sk", Detected::Slk),
    ("sl", Detected::Slv),
    ("sn", Detected::Sna),
    ("sr", Detected::Srp),
    ("sv", Detected::Swe),
    ("ta", Detected::Tam),
    ("te", Detected::Tel),
    ("th", Detected::Tha),
    ("tk", Detected::Tuk),
    ("tl", Detected::Tgl),
    ("tr", Detected::Tur),
    ("uk", Detected::Ukr),
    ("ur", Detected::Urd),
    ("uz", Detected::Uzb),
    ("vi", Detected::Vie),
    ("yi", Detected::Yid),
    ("zh", Detected::Cmn),
    ("zu", Detected::Zul),
];

fn to_detected(bcp47: &str) -> Option<Detected> {
    let primary = bcp47.split('-').next()?.to_ascii_lowercase();
    ISO_639_1
        .iter()
        .find(|(code, _)| *code == primary)
        .map(|(_, lang)| *lang)
}

fn from_detected(lang: Detected) -> Option<&'static str> {
    ISO_639_1
        .iter()
        .find(|(_, known)| *known == lang)
        .map(|(code, _)| *code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_of_one_story_share_a_head() {
        let english =
            story_head("France, UCL AL #316 = International, Mirzali Mahammad: the real enemy");
        let french =
            story_head("France, UCL AL #316 - Internationale, Mirzali Mahammad : le vrai ennemi");
        assert_eq!(english.as_deref(), Some("france, ucl al #316"));
        assert_eq!(english, french);
        assert_eq!(story_head("FRANCE,  UCL AL #316 — Autre"), english);
        // Too little to tell stories apart: no head.
        assert_eq!(story_head("Greece: strike"), None);
        assert_eq!(story_head("A, B - c"), None);
        assert_eq!(story_head("No separator, at all"), None);
    }

    #[test]
    fn ainfos_subject_from_the_front_page() {
        let parts = parse_subject(
            "(en) France, UCL AL #316 = International, Mirzali Mahammad (Azerbaijani dissident): \"for me, the real enemy is Russian imperialism\" (ca, de, it, fr, pt)[machine translation]",
        );
        assert_eq!(parts.tag.as_deref(), Some("en"));
        assert_eq!(
            parts.title,
            "France, UCL AL #316 = International, Mirzali Mahammad (Azerbaijani dissident): \"for me, the real enemy is Russian imperialism\""
        );
        assert_eq!(parts.translations, ["ca", "de", "it", "fr", "pt"]);
        assert!(parts.machine_translation);
    }

    #[test]
    fn tag_variants_are_tolerated() {
        for subject in [
            "[en] Title",
            "( en ) Title",
            "(EN)Title",
            "(en)  Title",
            "Re: (en) Title",
            "AW: [a-infos-en] (en) Title",
        ] {
            let parts = parse_subject(subject);
            assert_eq!(parts.tag.as_deref(), Some("en"), "{subject}");
            assert_eq!(parts.title, "Title", "{subject}");
        }
    }

    #[test]
    fn list_tag_is_a_hint_not_a_language_tag() {
        let parts = parse_subject("[a-infos-gr] Ελλάδα, ομάδα: τίτλος");
        assert_eq!(parts.tag, None);
        assert_eq!(parts.list_tag.as_deref(), Some("gr"));
        assert_eq!(parts.title, "Ελλάδα, ομάδα: τίτλος");
    }

    #[test]
    fn uppercase_parentheses_stay_in_the_title() {
        let parts = parse_subject("(en) Solidarity Federation (UK)");
        assert_eq!(parts.title, "Solidarity Federation (UK)");
        assert!(parts.translations.is_empty());
    }

    #[test]
    fn a_title_word_with_a_colon_is_not_a_prefix() {
        let parts = parse_subject("France: strike");
        assert_eq!(parts.title, "France: strike");
        assert_eq!(parts.tag, None);
    }

    #[test]
    fn detector_answers_within_the_served_languages() {
        let detector = Detector::new(["en", "de", "el"], 0.5);
        assert_eq!(
            detector.detect("Alle Menschen sind frei und gleich an Würde und Rechten geboren. Sie sind mit Vernunft und Gewissen begabt."),
            Some("de")
        );
        assert_eq!(detector.detect("Όλοι οι άνθρωποι γεννιούνται ελεύθεροι και ίσοι στην αξιοπρέπεια και τα δικαιώματα."), Some("el"));
        assert_eq!(detector.detect(""), None);
    }
}
