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

/// A reader that remembers the last chunk it handed out, so that the byte ending the record
/// just read can be looked at. The csv reader buffers its input and refills only once it has
/// consumed all of it, so that byte is always in the last chunk.
pub struct Tracked<R> {
    inner: R,
    chunk: Vec<u8>,
    /// Offset in the whole input of `chunk`'s first byte.
    chunk_start: u64,
}

impl<R: Read> Tracked<R> {
    pub fn new(inner: R) -> Tracked<R> {
        Tracked {
            inner,
            chunk: Vec::new(),
            chunk_start: 0,
        }
    }

    fn byte_at(&self, offset: u64) -> Option<u8> {
        let index = usize::try_from(offset.checked_sub(self.chunk_start)?).ok()?;
        self.chunk.get(index).copied()
    }
}

impl<R: Read> Read for Tracked<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let read = self.inner.read(buf)?;
        // An empty read (the end) keeps the last chunk: the last record ends in it.
        if read > 0 {
            self.chunk_start += self.chunk.len() as u64;
            self.chunk.clear();
            self.chunk.extend_from_slice(&buf[..read]);
        }
        Ok(read)
    }
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
