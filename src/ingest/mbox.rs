//! Reading mbox files whose writers did not escape body lines that begin
//! with "From ", as Mailman 2's pipermail does in its monthly `.txt`
//! archives: mail-parser's reader takes every such line for the start of a
//! message. [`FromLines`] sits between the file and that reader and quotes
//! (`>From `) each "From " line that is not a message separator, which the
//! reader unquotes again, so the body comes through as written.
//!
//! A separator, as Mailman's own `cleanarch` judges one, is a "From " line
//! that ends in a ctime date (`Fri Feb  4 10:00:00 2022`, a zone allowed
//! before the year), as every mbox writer puts there; prose seldom does.

use std::io::{BufRead, Read, Result};

/// `inner` with every "From " line that is not a separator quoted.
pub struct FromLines<R> {
    inner: R,
    line: Vec<u8>,
    at: usize,
}

impl<R: BufRead> FromLines<R> {
    pub fn new(inner: R) -> FromLines<R> {
        FromLines {
            inner,
            line: Vec::with_capacity(256),
            at: 0,
        }
    }
}

impl<R: BufRead> Read for FromLines<R> {
    fn read(&mut self, out: &mut [u8]) -> Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(out.len());
        out[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for FromLines<R> {
    fn fill_buf(&mut self) -> Result<&[u8]> {
        if self.at == self.line.len() {
            self.line.clear();
            self.at = 0;
            if self.inner.read_until(b'\n', &mut self.line)? > 0
                && self.line.starts_with(b"From ")
                && !ends_in_ctime_date(&self.line)
            {
                self.line.insert(0, b'>');
            }
        }
        Ok(&self.line[self.at..])
    }

    fn consume(&mut self, amount: usize) {
        self.at = (self.at + amount).min(self.line.len());
    }
}

/// Whether `line` ends in `Www Mmm dd hh:mm[:ss] [zone] yyyy`.
fn ends_in_ctime_date(line: &[u8]) -> bool {
    let Ok(line) = std::str::from_utf8(line) else {
        return false;
    };
    let mut words = line.split_whitespace().rev();
    let year = words
        .next()
        .is_some_and(|w| w.len() == 4 && w.bytes().all(|b| b.is_ascii_digit()));
    let mut time = words.next();
    if time.is_some_and(|w| !w.contains(':')) {
        time = words.next(); // a zone between time and year
    }
    let time = time.is_some_and(|w| {
        let parts: Vec<&str> = w.split(':').collect();
        (2..=3).contains(&parts.len())
            && parts
                .iter()
                .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_digit()))
    });
    let day = words
        .next()
        .is_some_and(|w| (1..=2).contains(&w.len()) && w.bytes().all(|b| b.is_ascii_digit()));
    let month = words.next().is_some_and(|w| {
        [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ]
        .iter()
        .any(|m| w.eq_ignore_ascii_case(m))
    });
    let weekday = words.next().is_some_and(|w| {
        ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
            .iter()
            .any(|d| w.eq_ignore_ascii_case(d))
    });
    year && time && day && month && weekday
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(mbox: &[u8]) -> Vec<String> {
        mail_parser::mailbox::mbox::MessageIterator::new(FromLines::new(mbox))
            .map(|m| String::from_utf8(m.unwrap().contents().to_vec()).unwrap())
            .collect()
    }

    #[test]
    fn only_separators_start_a_message() {
        let mbox = b"From ana at example.org  Fri Feb  4 10:00:00 2022\n\
Subject: one\n\nThe strike starts.\nFrom the assembly, a call.\n\n\
From the beginning, we said so.\n>From quoted\n\n\
From bob@example.net Sat Feb  5 11:00:00 +0100 2022\nSubject: two\n\nbody\n\n\
From MAILER-DAEMON Sun Feb  6 12:00 2022\r\nSubject: three\r\n\r\nend\r\n";
        let got = messages(mbox);
        assert_eq!(got.len(), 3, "{got:#?}");
        assert_eq!(
            got[0],
            "Subject: one\n\nThe strike starts.\nFrom the assembly, a call.\n\n\
From the beginning, we said so.\nFrom quoted\n\n"
        );
        assert_eq!(got[1], "Subject: two\n\nbody\n\n");
        assert_eq!(got[2], "Subject: three\r\n\r\nend\r\n");
    }

    #[test]
    fn ctime_dates() {
        for yes in [
            "From a@b Fri Feb  4 10:00:00 2022\n",
            "From a at b  Mon Jan 15 15:30 2018\n",
            "From a@b Thu Apr 13 17:35:52 EST 2023\n",
        ] {
            assert!(ends_in_ctime_date(yes.as_bytes()), "{yes}");
        }
        for no in [
            "From the beginning, we said so in 2022\n",
            "From a@b\n",
            "From \n",
        ] {
            assert!(!ends_in_ctime_date(no.as_bytes()), "{no}");
        }
    }
}
