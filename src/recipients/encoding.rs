//! The recipient file must be UTF-8 as a whole, and is checked as a whole before anything is
//! sent.
//!
//! A file saved as Latin-1 (or Windows-1252, or UTF-16) is mostly readable: rows whose names
//! happen to be ASCII come out fine and the others do not. Sending the readable rows and
//! rejecting the rest would look like success (exit 0) while whole groups of people, those
//! with an accent in their name, are never mailed. So the file is read once through first, in
//! fixed-size chunks (constant memory, at the speed of `std::str::from_utf8`), and refused at
//! its first bad byte, with its line and how to convert it.

use std::io::{ErrorKind, Read};
use std::path::Path;

/// Bytes read at a time: large enough to amortize each read, small enough to stay in cache.
const CHUNK: usize = 64 * 1024;

/// The first place where a stream stops being UTF-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct NotUtf8 {
    /// The line (from 1) it is on.
    pub line: u64,
    /// The first byte of the bad sequence.
    pub byte: u8,
}

/// Reads `input` to the end and returns where it first stops being UTF-8, if it does.
pub(super) fn first_non_utf8(mut input: impl Read) -> std::io::Result<Option<NotUtf8>> {
    let mut buf = vec![0; CHUNK];
    // Bytes of a character that the last chunk cut in two, moved to the front of `buf`.
    let mut kept = 0;
    let mut line = 1;
    loop {
        let read = match input.read(&mut buf[kept..]) {
            Ok(read) => read,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let chunk = &buf[..kept + read];
        if read == 0 {
            // The file ends in the middle of a character (which holds no line break).
            return Ok((kept > 0).then(|| NotUtf8 {
                line,
                byte: chunk[0],
            }));
        }
        match std::str::from_utf8(chunk) {
            Ok(_) => {
                line += line_breaks(chunk);
                kept = 0;
            }
            Err(e) => {
                let valid = e.valid_up_to();
                line += line_breaks(&chunk[..valid]);
                if e.error_len().is_some() {
                    return Ok(Some(NotUtf8 {
                        line,
                        byte: chunk[valid],
                    }));
                }
                // A character cut by the end of the chunk: finish it with the next one.
                let end = chunk.len();
                buf.copy_within(valid..end, 0);
                kept = end - valid;
            }
        }
    }
}

fn line_breaks(bytes: &[u8]) -> u64 {
    memchr::memchr_iter(b'\n', bytes).count() as u64
}

/// A command that converts the file at `path` to UTF-8, guessing its encoding from `start`,
/// its first bytes: a UTF-16 byte-order mark, or else Latin-1 (what most old exports are).
pub(super) fn conversion(path: &Path, start: &[u8]) -> String {
    let from = if start.starts_with(&[0xff, 0xfe]) || start.starts_with(&[0xfe, 0xff]) {
        "utf-16"
    } else {
        "latin1"
    };
    let converted = path.with_extension("utf8.csv");
    format!(
        "iconv -f {from} -t utf-8 {} > {}",
        shell_word(&path.display().to_string()),
        shell_word(&converted.display().to_string())
    )
}

/// `text` as one word of a POSIX shell command line, quoted only when it needs to be.
fn shell_word(text: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._-+,:@%=".contains(c);
    if !text.is_empty() && text.chars().all(plain) {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that hands out `step` bytes at a time, so that characters straddle reads.
    struct Trickle<'a> {
        bytes: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.step.min(buf.len()).min(self.bytes.len());
            buf[..n].copy_from_slice(&self.bytes[..n]);
            self.bytes = &self.bytes[n..];
            Ok(n)
        }
    }

    fn scan(bytes: &[u8]) -> Vec<Option<NotUtf8>> {
        [1, 2, 3, 7, CHUNK]
            .into_iter()
            .map(|step| first_non_utf8(Trickle { bytes, step }).unwrap())
            .collect()
    }

    #[test]
    fn utf8_passes_whatever_the_reads_cut() {
        let text = "\u{feff}email,prénom\r\nzoé@example.com,Zoé 🎉\r\n".repeat(3);
        assert!(scan(text.as_bytes()).iter().all(Option::is_none));
        assert!(scan(b"").iter().all(Option::is_none));
    }

    #[test]
    fn the_first_bad_byte_is_found_with_its_line() {
        let latin1 = b"email,first_name\na@example.com,Zoe\nb@example.com,Fran\xe7oise\nc,\xe9\n";
        let bad = Some(NotUtf8 {
            line: 3,
            byte: 0xe7,
        });
        assert!(scan(latin1).iter().all(|found| *found == bad));
        // A character cut short by the end of the file.
        let cut = b"email\n\xc3";
        let bad = Some(NotUtf8 {
            line: 2,
            byte: 0xc3,
        });
        assert!(scan(cut).iter().all(|found| *found == bad));
    }

    #[test]
    fn large_inputs_are_read_in_chunks() {
        // A bad byte far beyond the first chunk, a multi-byte character straddling chunks.
        let mut bytes = "é".repeat(CHUNK).into_bytes();
        bytes.insert(CHUNK - 2, b'\n');
        bytes.extend_from_slice(b"\nx\xff");
        let found = first_non_utf8(bytes.as_slice()).unwrap();
        assert_eq!(
            found,
            Some(NotUtf8 {
                line: 3,
                byte: 0xff
            })
        );
    }

    #[test]
    fn the_conversion_names_the_file_and_a_likely_encoding() {
        assert_eq!(
            conversion(Path::new("recipients/list.csv"), b"email"),
            "iconv -f latin1 -t utf-8 recipients/list.csv > recipients/list.utf8.csv"
        );
        assert_eq!(
            conversion(Path::new("/tmp/my list.csv"), b"\xff\xfee\0"),
            "iconv -f utf-16 -t utf-8 '/tmp/my list.csv' > '/tmp/my list.utf8.csv'"
        );
    }
}
