//! Pure: subscribers as rows of a file. Read from CSV (address, name, mode,
//! lists) or from the output of Mailman 3's `mailman members LIST`
//! (`Anne Person <anne@example.com>` or a bare address, one a line), and
//! written as the same CSV, so an export imports again as it was.

use std::io::{Read, Write};

use super::{checked_address, Mode};

/// The columns of a roster CSV, in the order they are written.
pub const COLUMNS: [&str; 4] = ["address", "name", "mode", "lists"];

/// One person as a file names them: an address (checked), a name, and the
/// mode and lists when the file gives them (the command's defaults apply
/// otherwise).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The line it came from, for messages.
    pub line: u64,
    pub address: String,
    pub name: String,
    pub mode: Option<Mode>,
    /// List codes, lowercased; empty when the file names none.
    pub lists: Vec<String>,
}

/// A line that could not be read, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub line: u64,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// What a file held: its entries and the lines that were not.
#[derive(Debug, Default)]
pub struct Roster {
    pub entries: Vec<Entry>,
    pub problems: Vec<Problem>,
}

impl Roster {
    fn entry(&mut self, line: u64, address: &str, name: &str, mode: &str, lists: &str) {
        let Some(checked) = checked_address(address) else {
            let shown = if address.trim().is_empty() {
                "an empty address".to_string()
            } else {
                format!(
                    "`{}` cannot be subscribed: {}",
                    address.trim(),
                    super::refusal(address)
                )
            };
            self.problems.push(Problem {
                line,
                message: shown,
            });
            return;
        };
        let mode = match mode.trim() {
            "" => None,
            text => match text.to_ascii_lowercase().parse::<Mode>() {
                Ok(mode) => Some(mode),
                Err(_) => {
                    let known: Vec<&str> = Mode::ALL.iter().map(|m| m.as_str()).collect();
                    self.problems.push(Problem {
                        line,
                        message: format!("`{text}` is no mode (one of {})", known.join(", ")),
                    });
                    return;
                }
            },
        };
        let lists = lists
            .split(|c: char| c == ';' || c == ',' || c.is_whitespace())
            .filter(|code| !code.is_empty())
            .map(str::to_ascii_lowercase)
            .collect();
        self.entries.push(Entry {
            line,
            address: checked,
            name: name.trim().to_string(),
            mode,
            lists,
        });
    }
}

/// Reads a roster CSV. A first row naming the columns (`address`, `name`,
/// `mode`, `lists`, in any order, some left out) says where each is;
/// without one, the columns are taken in that order. Lists within the
/// `lists` field are separated by spaces or semicolons. Blank lines and
/// lines starting with `#` are skipped.
pub fn read_csv(input: impl Read) -> Roster {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .comment(Some(b'#'))
        .trim(csv::Trim::All)
        .from_reader(input);
    let mut roster = Roster::default();
    // Where address, name, mode and lists are.
    let mut positions: [Option<usize>; 4] = [Some(0), Some(1), Some(2), Some(3)];
    let mut first = true;
    for record in reader.records() {
        let record = match record {
            Ok(record) => record,
            Err(error) => {
                let line = error.position().map_or(0, |p| p.line());
                roster.problems.push(Problem {
                    line,
                    message: format!("not CSV: {error}"),
                });
                continue;
            }
        };
        let line = record.position().map_or(0, |p| p.line());
        if std::mem::take(&mut first) && is_header(&record) {
            positions = COLUMNS.map(|column| {
                record
                    .iter()
                    .position(|field| field.eq_ignore_ascii_case(column))
            });
            if positions[0].is_none() {
                roster.problems.push(Problem {
                    line,
                    message: "the header names no `address` column".into(),
                });
                return roster;
            }
            continue;
        }
        if record.iter().all(str::is_empty) {
            continue;
        }
        let field = |which: usize| {
            positions[which]
                .and_then(|at| record.get(at))
                .unwrap_or_default()
        };
        roster.entry(line, field(0), field(1), field(2), field(3));
    }
    roster
}

/// Whether a first CSV row names columns rather than a person.
fn is_header(record: &csv::StringRecord) -> bool {
    record
        .iter()
        .any(|field| COLUMNS.iter().any(|c| field.eq_ignore_ascii_case(c)))
        && !record.iter().any(|field| field.contains('@'))
}

/// Reads what `mailman members LIST` prints: a member a line, as
/// `Display Name <address>` or a bare address; the line Mailman prints for
/// a list without members (`LIST has no members`) and blank lines are
/// skipped. The output names neither lists nor modes: the command's apply.
pub fn read_mailman(text: &str) -> Roster {
    let mut roster = Roster::default();
    for (index, line) in text.lines().enumerate() {
        let number = index as u64 + 1;
        let line = line.trim();
        if line.is_empty() || line.ends_with(" has no members") {
            continue;
        }
        let (name, address) = match line.rsplit_once('<') {
            Some((name, rest)) if rest.ends_with('>') => {
                let name = name.trim().trim_matches('"').replace("\\\"", "\"");
                (name, rest.trim_end_matches('>').to_string())
            }
            _ => (String::new(), line.to_string()),
        };
        roster.entry(number, &address, &name, "", "");
    }
    roster
}

/// One row of an export: a person, a mode and the lists they follow in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub address: String,
    pub name: String,
    pub mode: Mode,
    pub lists: Vec<String>,
}

/// Writes rows as a roster CSV with its header, as [`read_csv`] reads it.
pub fn write_csv(output: impl Write, rows: impl IntoIterator<Item = Row>) -> csv::Result<()> {
    let mut writer = csv::Writer::from_writer(output);
    writer.write_record(COLUMNS)?;
    for row in rows {
        writer.write_record([
            row.address.as_str(),
            row.name.as_str(),
            row.mode.as_str(),
            row.lists.join(" ").as_str(),
        ])?;
    }
    writer.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_csv_with_or_without_a_header_gives_its_people_and_names_its_bad_lines() {
        let text = "\
# exported from somewhere
lists,address,mode
en ca,Ana@Example.NET,plain
,bob@example.org,
es,not an address,mime
en,eve@example.org,weekly
";
        let roster = read_csv(text.as_bytes());
        assert_eq!(roster.entries.len(), 2, "{:?}", roster.problems);
        assert_eq!(roster.entries[0].address, "Ana@example.net");
        assert_eq!(roster.entries[0].lists, ["en", "ca"]);
        assert_eq!(roster.entries[0].mode, Some(Mode::Plain));
        assert_eq!(roster.entries[1].mode, None);
        assert!(roster.entries[1].lists.is_empty());
        let lines: Vec<u64> = roster.problems.iter().map(|p| p.line).collect();
        assert_eq!(lines, [5, 6], "{:?}", roster.problems);
        assert!(roster.problems[1].message.contains("weekly"));

        let bare = read_csv("ana@example.net,Ana Pérez,html,en\n".as_bytes());
        assert_eq!(bare.entries[0].name, "Ana Pérez");
        assert_eq!(bare.entries[0].mode, Some(Mode::Html));
    }

    #[test]
    fn an_export_reads_back_as_it_was_written() {
        let rows = vec![Row {
            address: "ana@example.net".into(),
            name: "Pérez, Ana \"la roja\"".into(),
            mode: Mode::NoMail,
            lists: vec!["ca".into(), "en".into()],
        }];
        let mut bytes = Vec::new();
        write_csv(&mut bytes, rows.clone()).unwrap();
        let roster = read_csv(bytes.as_slice());
        assert!(roster.problems.is_empty(), "{:?}", roster.problems);
        let entry = &roster.entries[0];
        assert_eq!(
            (&entry.address, &entry.name, entry.mode, &entry.lists),
            (
                &rows[0].address,
                &rows[0].name,
                Some(Mode::NoMail),
                &rows[0].lists
            )
        );
    }

    #[test]
    fn mailman_members_output_gives_names_and_addresses() {
        let text = "\
Anne Person <anne@example.com>
bart@example.com
\"Person, Cris\" <cris@example.com>

ant@example.com has no members
Dave <dave at example.com>
";
        let roster = read_mailman(text);
        let people: Vec<(&str, &str)> = roster
            .entries
            .iter()
            .map(|e| (e.address.as_str(), e.name.as_str()))
            .collect();
        assert_eq!(
            people,
            [
                ("anne@example.com", "Anne Person"),
                ("bart@example.com", ""),
                ("cris@example.com", "Person, Cris"),
            ]
        );
        assert_eq!(roster.problems.len(), 1);
        assert_eq!(roster.problems[0].line, 6);
    }
}
