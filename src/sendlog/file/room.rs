//! How the file log writes: each batch of records into room made ahead at the end of the file,
//! in one write and one sync, and the room cut off again when the log is closed.
//!
//! Records are written into room made ahead at the end of the file, zeros written and synced
//! a chunk at a time ([`ROOM`]), rather than appended: a sync that also grows the file must
//! commit its new length through the filesystem's journal, which costs the core two to four
//! times a sync of data alone, and a run makes hundreds of syncs. Records never hold a NUL
//! byte (JSON escapes it), so the first NUL ends them; a log closed cleanly is cut back to its
//! records, and one a crash left open is cut back when it is next opened (see
//! [`replay_and_repair`](super::recovery::replay_and_repair)), before anything new is written.

use std::os::unix::fs::FileExt;

use super::FileLog;
use crate::sendlog::{Record, SendLog, SendLogError};

/// How much room is made at a time past the records: zeros written, and synced with the batch
/// that needed them. A run of 20,000 messages writes ~6 MB of records.
const ROOM: u64 = 1 << 20;

impl SendLog for FileLog {
    fn append(&mut self, records: &[Record]) -> Result<Vec<usize>, SendLogError> {
        let io = |source| SendLogError::Io {
            path: self.path.clone(),
            source,
        };
        if self.failed {
            return Err(io(std::io::Error::other(
                "an earlier write to the log failed; nothing more is written to it",
            )));
        }
        let lines = &mut self.lines;
        lines.clear();
        if self.missing_newline {
            lines.push(b'\n');
        }
        for record in records {
            serde_json::to_writer(&mut *lines, record).expect("a record always serializes");
            lines.push(b'\n');
        }
        let end = self.end + lines.len() as u64;
        // Out of room: the batch brings the next chunk of zeros with it, in the same write and
        // the same sync (the one that commits the new length).
        let room = if end > self.room {
            let room = end.next_multiple_of(ROOM);
            lines.resize(lines.len() + (room - end) as usize, 0);
            room
        } else {
            self.room
        };
        // One write and one sync for the whole batch: the group commit.
        let written = self
            .file
            .write_all_at(lines, self.end)
            .and_then(|()| self.file.sync_data());
        if let Err(source) = written {
            self.failed = true;
            return Err(io(source));
        }
        (self.end, self.room) = (end, room);
        self.missing_newline = false;
        Ok(Vec::new())
    }
}

impl Drop for FileLog {
    /// A log at rest is its records and nothing else: the room left is cut off (and with it
    /// whatever a failed write left there). A crash skips this; the next open does it.
    fn drop(&mut self) {
        if self.room > self.end || self.failed {
            let cut = self
                .file
                .set_len(self.end)
                .and_then(|()| self.file.sync_data());
            if let Err(error) = cut {
                tracing::warn!(log = %self.path.display(), %error, "could not cut the send log back to its records; the next run will");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::fs::OpenOptions;
    use std::io::Write;

    use super::*;
    use crate::sendlog::file::tests::{header, line, people};
    use crate::sendlog::tests::sent;
    use crate::sendlog::{Event, Status};

    #[test]
    fn a_crash_leaves_room_and_the_next_open_cuts_it_before_a_shorter_batch() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.sendlog.jsonl");
        // As a power loss can leave a log: a's record synced, then the room, where of the
        // batches being written only a later page reached the disk (an attempt for b, never
        // acknowledged; past the first chunk of room, which the next batch would bring anew),
        // then zeros.
        let (a, stale) = (
            line(&sent("a@example.com")),
            line(&Record::new(Event::attempt("L"), "b@example.com", "<b>")),
        );
        let records = format!("{}{a}", header());
        let mut bytes = records.clone().into_bytes();
        bytes.resize(ROOM as usize + 4096, 0);
        bytes.extend_from_slice(stale.as_bytes());
        bytes.resize(bytes.len() + 8192, 0);
        std::fs::write(&path, &bytes).unwrap();

        let (mut log, replay) = FileLog::open(&path, "c").unwrap();
        assert_eq!(people(&replay), [("a@example.com".into(), Status::Sent)]);
        // A batch shorter than the gap: what lies past it must not be the old attempt, which
        // a later batch ending just before it would make readable again.
        let c = sent("c@example.com");
        log.append(std::slice::from_ref(&c)).unwrap();
        let open = std::fs::read(&path).unwrap();
        let written = records.len() + line(&c).len();
        assert!(
            !String::from_utf8_lossy(&open).contains("b@example.com"),
            "the stale attempt is still in the file"
        );
        assert!(open[written..].iter().all(|&b| b == 0));
        assert_eq!(open.len() as u64, ROOM);
        assert_eq!(
            people(&FileLog::read(&path, "c").unwrap()),
            [
                ("a@example.com".into(), Status::Sent),
                ("c@example.com".into(), Status::Sent)
            ]
        );
        drop(log);
        // At rest, its records and nothing else.
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            format!("{records}{}", line(&c))
        );
    }

    #[test]
    fn room_is_made_a_chunk_at_a_time_and_cut_off_at_the_close() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.sendlog.jsonl");
        let (mut log, _) = FileLog::open(&path, "c").unwrap();
        // The header as written (its timestamp is the open's).
        let mut expected = std::fs::read_to_string(&path).unwrap();
        let batch: Vec<Record> = (0..2_000)
            .map(|i| Record::new(Event::attempt("L"), &format!("p{i}@example.com"), "<i>"))
            .collect();
        let mut lens = Vec::new();
        for _ in 0..6 {
            log.append(&batch).unwrap();
            expected.extend(batch.iter().map(line));
            lens.push(std::fs::metadata(&path).unwrap().len());
        }
        // Records of one batch outgrow a chunk of room now and then; the file grows by whole
        // chunks, never a batch at a time.
        assert!(lens.iter().all(|len| len % ROOM == 0), "{lens:?}");
        assert!(lens.windows(2).any(|w| w[0] == w[1]), "{lens:?}");
        assert!(*lens.last().unwrap() >= expected.len() as u64);
        assert_eq!(FileLog::read(&path, "c").unwrap().len(), 2_000);
        drop(log);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), expected);
        // Opened again and closed without a record: unchanged.
        drop(FileLog::open(&path, "c").unwrap());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), expected);
        // And a torn line left past the records by a crash is cut, with the room.
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(b"{\"at\":\"2026").unwrap();
        file.write_all(&[0; 512]).unwrap();
        drop(file);
        drop(FileLog::open(&path, "c").unwrap());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), expected);
    }
}
