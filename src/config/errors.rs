//! Located errors: every problem in a configuration file as file, line,
//! column, what is wrong and how to fix it, and the collector that gathers
//! them while the tables are checked.

use std::fmt;
use std::ops::{Range, RangeInclusive};

use serde::de::{DeserializeOwned, IntoDeserializer};
use serde::{Deserialize, Deserializer};
use toml::de::{DeValue, ValueDeserializer};
use toml::Spanned;

/// One problem in a configuration file.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    /// The file, as given on the command line (or the embedded name).
    pub file: String,
    /// Line of the problem, from 1.
    pub line: usize,
    /// Column of the problem in characters, from 1.
    pub column: usize,
    /// What is wrong, quoting what the file says.
    pub message: String,
    /// How to fix it.
    pub help: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}\n  help: {}",
            self.file, self.line, self.column, self.message, self.help
        )
    }
}

/// Every problem found in a configuration file, in the order of the file.
#[derive(Debug, Clone, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

/// The text of a configuration file read as bytes, or the error that
/// locates its first byte that is not UTF-8.
pub(super) fn decode<'a>(bytes: &'a [u8], file: &str) -> Result<&'a str, ConfigErrors> {
    let error = match std::str::from_utf8(bytes) {
        Ok(text) => return Ok(text),
        Err(error) => error,
    };
    let offset = error.valid_up_to();
    let valid = std::str::from_utf8(&bytes[..offset]).expect("valid up to here");
    let (line, column) = Lines::new(valid).locate(valid, offset);
    Err(ConfigErrors(vec![ConfigError {
        file: file.to_string(),
        line,
        column,
        message: format!(
            "the file is not UTF-8: byte 0x{:02X} here starts no character",
            bytes[offset]
        ),
        help: "save the file as UTF-8, e.g. `iconv -f latin1 -t utf-8`, or correct the text at this point".to_string(),
    }]))
}

/// Where each line of a text starts, so that a byte offset finds its line
/// by binary search instead of by counting every line break before it.
struct Lines {
    /// Byte offset of the start of each line; the first is 0.
    starts: Vec<usize>,
}

impl Lines {
    fn new(text: &str) -> Lines {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(at, _)| at + 1));
        Lines { starts }
    }

    /// Line and column (both from 1, the column in characters) of `offset`.
    fn locate(&self, text: &str, offset: usize) -> (usize, usize) {
        let offset = offset.min(text.len());
        let line = self.starts.partition_point(|&start| start <= offset);
        let start = self.starts[line - 1];
        let column = text
            .get(start..offset)
            .map_or(offset - start, |before| before.chars().count());
        (line, column + 1)
    }
}

/// Collects the problems of one file while its tables are checked.
pub(super) struct Errors<'a> {
    file: &'a str,
    text: &'a str,
    lines: Lines,
    found: Vec<ConfigError>,
    warnings: Vec<ConfigError>,
}

impl<'a> Errors<'a> {
    pub(super) fn new(file: &'a str, text: &'a str) -> Errors<'a> {
        Errors {
            file,
            text,
            lines: Lines::new(text),
            found: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// Records something that works but is likely not what the operator
    /// wants; it does not stop tidings.
    pub(super) fn warn(&mut self, span: Range<usize>, message: &str, help: &str) {
        let (line, column) = self.lines.locate(self.text, span.start);
        self.warnings.push(ConfigError {
            file: self.file.to_string(),
            line,
            column,
            message: message.to_string(),
            help: help.to_string(),
        });
    }

    /// The warnings recorded so far, in the file's order.
    pub(super) fn take_warnings(&mut self) -> Vec<ConfigError> {
        let mut warnings = std::mem::take(&mut self.warnings);
        warnings.sort_by_key(|warning| (warning.line, warning.column));
        warnings
    }

    /// Whether nothing has been found wrong so far.
    pub(super) fn is_empty(&self) -> bool {
        self.found.is_empty()
    }

    /// Everything found, in the file's order, for [`super::parse`] to
    /// return.
    pub(super) fn into_errors(mut self) -> ConfigErrors {
        self.found.sort_by_key(|error| (error.line, error.column));
        ConfigErrors(self.found)
    }

    /// Records a problem at the start of `span`.
    pub(super) fn at(&mut self, span: Range<usize>, message: &str, help: &str) {
        let (line, column) = self.lines.locate(self.text, span.start);
        self.found.push(ConfigError {
            file: self.file.to_string(),
            line,
            column,
            message: message.to_string(),
            help: help.to_string(),
        });
    }

    /// The line (from 1) where `span` starts, to point from one problem to
    /// another place in the file.
    pub(super) fn line_of(&self, span: Range<usize>) -> usize {
        self.lines.locate(self.text, span.start).0
    }

    /// Records a TOML error; `fallback` locates errors that carry no span.
    pub(super) fn toml(&mut self, error: &toml::de::Error, fallback: Range<usize>, help: &str) {
        let span = error.span().unwrap_or(fallback);
        let message = error.message().trim().to_string();
        let help = if message.starts_with("unknown field") {
            "remove the key or correct its spelling (see the shipped lists.toml)"
        } else if message.starts_with("missing field") {
            "add the key to this table"
        } else {
            help
        };
        self.at(span, &message, help);
    }

    /// Deserialises one table on its own, so that an error in it leaves the
    /// other tables to be checked; `name` is how the table is written.
    pub(super) fn table<T: DeserializeOwned>(
        &mut self,
        value: Spanned<DeValue<'_>>,
        name: &str,
    ) -> Option<T> {
        let span = value.span();
        if !matches!(value.get_ref(), DeValue::Table(_)) {
            self.at(
                span,
                &format!("{name} must be a table"),
                "see the shipped lists.toml for its layout",
            );
            return None;
        }
        match T::deserialize(ValueDeserializer::from(value)) {
            Ok(table) => Some(table),
            Err(error) => {
                self.toml(&error, span, &format!("correct this value in {name}"));
                None
            }
        }
    }

    /// The value chosen from a closed set, or `None` when the file spells
    /// something outside the set (recorded, with the set's help).
    pub(super) fn choice<T: Choice>(&mut self, chosen: Chosen<T>) -> Option<T> {
        match chosen.value {
            Ok(value) => Some(value),
            Err(written) => {
                self.at(
                    chosen.span,
                    &format!("{} `{written}` is not known", T::WHAT),
                    T::HELP,
                );
                None
            }
        }
    }

    /// Whether `value` fits on one header line; records the problem if
    /// not. Every string that ends up in a mail header goes through here: a
    /// line break in it would start a header of the writer's choosing (a
    /// `Bcc:`) in every message.
    pub(super) fn one_line(&mut self, value: &Spanned<String>, key: &str) -> bool {
        let Some(control) = value.get_ref().chars().find(|c| c.is_control()) else {
            return true;
        };
        let what = match control {
            '\r' | '\n' => "a line break",
            '\t' => "a tab",
            _ => "a control character",
        };
        self.at(
            value.span(),
            &format!(
                "{key} contains {what} (U+{:04X}); it goes into mail headers",
                control as u32
            ),
            "write it on one line without control characters: a line break here would start a new header in every message",
        );
        false
    }

    /// A whole number in `range`, or `default` when absent; `what` and
    /// `help` explain a value out of range.
    pub(super) fn bounded<T>(
        &mut self,
        value: Option<Spanned<i64>>,
        range: RangeInclusive<i64>,
        default: T,
        what: &str,
        help: &str,
    ) -> T
    where
        T: TryFrom<i64>,
    {
        let Some(value) = value else {
            return default;
        };
        if range.contains(value.get_ref()) {
            if let Ok(number) = T::try_from(*value.get_ref()) {
                return number;
            }
        }
        self.at(
            value.span(),
            &format!(
                "{what} must be between {} and {}",
                range.start(),
                range.end()
            ),
            help,
        );
        default
    }

    /// A whole number above zero, or `default` when absent.
    pub(super) fn positive<T>(&mut self, value: Option<Spanned<i64>>, default: T, what: &str) -> T
    where
        T: TryFrom<i64> + fmt::Display,
    {
        let Some(value) = value else {
            return default;
        };
        match T::try_from(*value.get_ref()) {
            Ok(number) if *value.get_ref() > 0 => number,
            _ => {
                self.at(
                    value.span(),
                    &format!("{what} must be a positive whole number"),
                    &format!("the default is {default}"),
                );
                default
            }
        }
    }
}

/// A closed set of values spelled in lists.toml (an enum that serde reads
/// from its spelling), with what to say when a file spells another.
pub(super) trait Choice: DeserializeOwned {
    /// What the key is called in an error, e.g. "transport".
    const WHAT: &'static str;
    /// The allowed spellings and what each means, for the help line.
    const HELP: &'static str;
}

/// A [`Choice`] as the file spells it: serde's reading of the spelling, or
/// the spelling it could not read. A bad spelling is kept instead of
/// failing the whole table, so the table's other keys are still checked.
pub(super) struct Chosen<T> {
    span: Range<usize>,
    value: Result<T, String>,
}

impl<'de, T: Choice> Deserialize<'de> for Chosen<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let written = Spanned::<String>::deserialize(deserializer)?;
        let span = written.span();
        let spelling: serde::de::value::StrDeserializer<'_, serde::de::value::Error> =
            written.get_ref().as_str().into_deserializer();
        let value = T::deserialize(spelling).map_err(|_| written.into_inner());
        Ok(Chosen { span, value })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_found_by_offset() {
        let text = "a\nbé\n\nlast";
        let lines = Lines::new(text);
        assert_eq!(lines.locate(text, 0), (1, 1));
        assert_eq!(lines.locate(text, 1), (1, 2));
        assert_eq!(lines.locate(text, 2), (2, 1));
        // The column counts characters, not bytes: é is two bytes.
        assert_eq!(lines.locate(text, 5), (2, 3));
        assert_eq!(lines.locate(text, 6), (3, 1));
        assert_eq!(lines.locate(text, 7), (4, 1));
        assert_eq!(lines.locate(text, text.len()), (4, 5));
        assert_eq!(lines.locate(text, text.len() + 10), (4, 5));
    }

    #[test]
    fn invalid_utf8_names_its_line_and_column() {
        let bytes = b"[site]\nname = \"Caf\xe9\"\n";
        let errors = decode(bytes, "lists.toml").unwrap_err().0;
        assert_eq!(errors.len(), 1);
        assert_eq!((errors[0].line, errors[0].column), (2, 12));
        assert!(errors[0].message.contains("0xE9"), "{}", errors[0].message);
        assert!(errors[0].help.contains("UTF-8"));
        // Characters before the bad byte on its line count once each.
        let errors = decode(b"x = \"\xc3\xa9\xff\"", "f").unwrap_err().0;
        assert_eq!((errors[0].line, errors[0].column), (1, 7));
        assert_eq!(decode("ok = 1".as_bytes(), "f").unwrap(), "ok = 1");
    }
}
