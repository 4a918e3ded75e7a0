//! Where a CSV record starts, as an editor numbers lines: the line every report about a row
//! names.
//!
//! The csv crate counts `\n` bytes as it consumes them and stamps each record with the count
//! from before the record was read. But a CRLF line (what spreadsheets write) ends its record
//! at the `\r`, and the `\n` is consumed only when the next record is read: every record of a
//! CRLF file would come out one line early, and so would a record after a blank line. The
//! count from *after* a record is exact, so the line it starts on is that count less the line
//! breaks the record spans: those inside its quoted fields, and its own terminator when that
//! is a `\n` (not when it is a `\r`, or the end of the file). Telling them apart takes the
//! terminator's byte, which [`Tracked`] keeps at hand.

use std::io::Read;

/// A reader that keeps the bytes it handed out: the last chunk, so that the byte ending the
/// record just read can be looked at (the csv reader buffers its input and refills only once it
/// has consumed all of it, so that byte is always in the last chunk), and everything from the
/// [mark](Tracked::mark) on, so that a record whose quoting is broken can be read again line by
/// line ([`Tracked::resume_at`]).
pub struct Tracked<R> {
    inner: R,
    kept: Vec<u8>,
    /// Offset in the whole input of `kept`'s first byte.
    kept_start: u64,
    mark: Option<u64>,
    /// Bytes handed out before `inner`'s, from `pending_at` on: a broken record's lines after
    /// its first, read again.
    pending: Vec<u8>,
    pending_at: usize,
}

impl<R: Read> Tracked<R> {
    pub fn new(inner: R) -> Tracked<R> {
        Tracked {
            inner,
            kept: Vec::new(),
            kept_start: 0,
            mark: None,
            pending: Vec::new(),
            pending_at: 0,
        }
    }

    fn byte_at(&self, offset: u64) -> Option<u8> {
        let index = usize::try_from(offset.checked_sub(self.kept_start)?).ok()?;
        self.kept.get(index).copied()
    }

    /// Keeps every byte from `offset` on (the start of the next record) until the next mark.
    /// (Those before it go at the next read: once a chunk, not once a record.)
    pub fn mark(&mut self, offset: u64) {
        self.mark = Some(offset);
    }

    /// The bytes from `from` to `to`, when they are still kept.
    pub fn bytes(&self, from: u64, to: u64) -> Option<&[u8]> {
        let start = usize::try_from(from.checked_sub(self.kept_start)?).ok()?;
        let end = usize::try_from(to.checked_sub(self.kept_start)?).ok()?;
        self.kept.get(start..end)
    }

    /// A reader of the input from `offset` on (a kept byte), as if it started there.
    pub fn resume_at(self, offset: u64) -> Tracked<R> {
        let from = usize::try_from(offset.saturating_sub(self.kept_start))
            .unwrap_or(usize::MAX)
            .min(self.kept.len());
        let mut pending = self.kept[from..].to_vec();
        pending.extend_from_slice(&self.pending[self.pending_at..]);
        Tracked {
            pending,
            ..Tracked::new(self.inner)
        }
    }
}

impl<R: Read> Read for Tracked<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let read = match &self.pending[self.pending_at..] {
            [] => self.inner.read(buf)?,
            left => {
                let read = left.len().min(buf.len());
                buf[..read].copy_from_slice(&left[..read]);
                self.pending_at += read;
                read
            }
        };
        // An empty read (the end) keeps the last chunk: the last record ends in it.
        if read > 0 {
            let end = self.kept_start + self.kept.len() as u64;
            let keep_from = self.mark.unwrap_or(end).clamp(self.kept_start, end);
            let drop = (keep_from - self.kept_start) as usize;
            self.kept.drain(..drop);
            self.kept_start = keep_from;
            self.kept.extend_from_slice(&buf[..read]);
        }
        Ok(read)
    }
}

/// Where a record whose quoting is broken starts, given its bytes `raw` (from where the reader
/// stood before it, `line` there): the line it starts on, and the offset in `raw` of the line
/// after that one, where reading goes on.
pub fn broken_record_start(raw: &[u8], line: u64) -> (u64, usize) {
    let skipped = raw
        .iter()
        .take_while(|b| matches!(b, b'\r' | b'\n'))
        .count();
    let line = line + raw[..skipped].iter().filter(|&&b| b == b'\n').count() as u64;
    let next = raw[skipped..]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(raw.len(), |at| skipped + at + 1);
    (line, next)
}

/// Whether a record's bytes are quoted as RFC 4180 says: a quote opens a value only at its
/// start, `""` inside stands for one quote, and the quote that closes it comes before a comma,
/// a line's end or the file's. A stray quote the csv crate would read on (lines further, even
/// to the end) fails it.
pub fn well_quoted(raw: &[u8]) -> bool {
    let (mut quoted, mut at_start) = (false, true);
    let mut i = 0;
    while i < raw.len() {
        match (quoted, raw[i]) {
            (true, b'"') if raw.get(i + 1) == Some(&b'"') => i += 1,
            (true, b'"') => {
                quoted = false;
                if !matches!(raw.get(i + 1), None | Some(b',' | b'\r' | b'\n')) {
                    return false;
                }
            }
            (false, b'"') if at_start => quoted = true,
            (false, b',' | b'\r' | b'\n') => {
                at_start = true;
                i += 1;
                continue;
            }
            _ => {}
        }
        at_start = false;
        i += 1;
    }
    !quoted
}

/// The line (from 1) on which `record`, the record `reader` has just read, starts.
pub fn start_line<R: Read>(reader: &csv::Reader<Tracked<R>>, record: &csv::ByteRecord) -> u64 {
    let end = reader.position();
    let inside = record.as_slice().iter().filter(|&&b| b == b'\n').count() as u64;
    let ended_by_lf = end
        .byte()
        .checked_sub(1)
        .and_then(|last| reader.get_ref().byte_at(last))
        == Some(b'\n');
    end.line()
        .saturating_sub(inside + u64::from(ended_by_lf))
        .max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The start line of every record of `text`, the header included, read with a tiny buffer so
    /// that records straddle chunks. (Not 3 bytes with a byte-order mark: the csv crate would
    /// take the mark alone for the end of the input.)
    fn lines(text: &str, capacity: usize) -> Vec<u64> {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .buffer_capacity(capacity)
            .from_reader(Tracked::new(text.as_bytes()));
        let mut record = csv::ByteRecord::new();
        let mut out = Vec::new();
        while reader.read_byte_record(&mut record).unwrap() {
            out.push(start_line(&reader, &record));
        }
        out
    }

    #[test]
    fn lf_crlf_and_mixed_files_number_lines_alike() {
        for capacity in [1, 2, 4, 5, 8 * 1024] {
            for text in [
                "email\na@x\nb@x\nc@x\n",
                "email\r\na@x\r\nb@x\r\nc@x\r\n",
                "email\r\na@x\nb@x\r\nc@x",
                "\u{feff}email\r\na@x\r\nb@x\r\nc@x",
            ] {
                assert_eq!(
                    lines(text, capacity),
                    [1, 2, 3, 4],
                    "{text:?} by {capacity}"
                );
            }
        }
    }

    #[test]
    fn blank_lines_and_quoted_line_breaks_count() {
        for capacity in [1, 4, 8 * 1024] {
            assert_eq!(
                lines(
                    "email,note\r\na@x,\"two\r\nlines\"\r\n\r\nb@x,\"\n\n\"\r\nc@x,z",
                    capacity
                ),
                [1, 2, 5, 8],
                "by {capacity}"
            );
            assert_eq!(
                lines("email\n\n\na@x\n\"b@x\nc\"\nd@x\n", capacity),
                [1, 4, 5, 7],
                "by {capacity}"
            );
        }
    }
}
