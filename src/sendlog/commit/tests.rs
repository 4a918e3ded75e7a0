//! The group-commit writer driven through logs of the tests' own: what it batches, answers,
//! refuses, and how it fails.

use super::*;
use crate::sendlog::Event;
use std::sync::Mutex;

/// Counts how many batches (syncs) it was asked for.
struct Counting(Arc<Mutex<Vec<usize>>>);

impl SendLog for Counting {
    fn append(&mut self, records: &[Record]) -> Result<Vec<usize>, SendLogError> {
        std::thread::sleep(std::time::Duration::from_millis(5));
        self.0.lock().unwrap().push(records.len());
        Ok(Vec::new())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_share_syncs_and_all_are_acknowledged() {
    let batches = Arc::new(Mutex::new(Vec::new()));
    let (writer, thread) = LogWriter::spawn(Box::new(Counting(Arc::clone(&batches))));
    let mut tasks = Vec::new();
    for i in 0..200 {
        let writer = writer.clone();
        tasks.push(tokio::spawn(async move {
            let rcpt = format!("p{i}@example.com");
            writer
                .write(Record::new(Event::attempt("L"), &rcpt, "<i>"))
                .await
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    drop(writer);
    thread.join().unwrap();
    let batches = batches.lock().unwrap();
    assert_eq!(batches.iter().sum::<usize>(), 200);
    assert!(
        batches.len() < 100,
        "{} syncs for 200 records",
        batches.len()
    );
}

/// Answers its first batch at once and the next one after `hang`.
struct Hanging(Duration, usize);

impl SendLog for Hanging {
    fn append(&mut self, _: &[Record]) -> Result<Vec<usize>, SendLogError> {
        self.1 += 1;
        if self.1 > 1 {
            std::thread::sleep(self.0);
        }
        Ok(Vec::new())
    }
}

#[tokio::test]
async fn a_write_unanswered_past_the_stall_limit_shows_until_it_is_answered() {
    let hang = STALL * 3;
    let (writer, _thread) = LogWriter::spawn(Box::new(Hanging(hang, 0)));
    let record = || Record::new(Event::attempt("L"), "a@example.com", "<i>");
    writer.write(record()).await.unwrap();
    assert!(!writer.stalled(), "idle is not stalled");
    let durable = writer.submit(record()).await.unwrap();
    writer.hurry();
    tokio::time::sleep(STALL / 2).await;
    assert!(!writer.stalled(), "a write in progress for less than STALL");
    tokio::time::sleep(STALL).await;
    assert!(writer.stalled(), "a write unanswered for 1.5 × STALL");
    durable.wait().await.unwrap();
    assert!(!writer.stalled(), "answered");
}

/// Notes when each write began; asks for its writes `.1` apart.
struct Spaced(Arc<Mutex<Vec<Instant>>>, Duration);

impl SendLog for Spaced {
    fn append(&mut self, _: &[Record]) -> Result<Vec<usize>, SendLogError> {
        self.0.lock().unwrap().push(Instant::now());
        Ok(Vec::new())
    }

    fn spacing(&self) -> Duration {
        self.1
    }
}

#[tokio::test]
async fn a_log_that_asks_for_its_writes_spaced_gets_them_so_even_hurried() {
    let (began, spacing) = (Arc::new(Mutex::new(Vec::new())), Duration::from_millis(100));
    let (writer, thread) = LogWriter::spawn(Box::new(Spaced(Arc::clone(&began), spacing)));
    let record = || Record::new(Event::attempt("L"), "a@example.com", "<i>");
    let first = Instant::now();
    for _ in 0..3 {
        // Each write hurries the writer.
        writer.write(record()).await.unwrap();
    }
    drop(writer);
    thread.join().unwrap();
    let began = began.lock().unwrap();
    assert!(
        began[0] - first < spacing,
        "the first write waits for nothing"
    );
    for (at, pair) in began.windows(2).enumerate() {
        assert!(
            pair[1] - pair[0] >= spacing,
            "write {at}: {:?}",
            pair[1] - pair[0]
        );
    }
}

/// Counts the records of each write; asks an idle writer to wait `.1` for company.
struct Patient(Arc<Mutex<Vec<usize>>>, Duration);

impl SendLog for Patient {
    fn append(&mut self, records: &[Record]) -> Result<Vec<usize>, SendLogError> {
        self.0.lock().unwrap().push(records.len());
        Ok(Vec::new())
    }

    fn idle_wait(&self) -> Duration {
        self.1
    }
}

#[tokio::test]
async fn an_idle_writer_that_is_asked_to_wait_writes_records_coming_apart_together_unless_hurried()
{
    let (writes, wait) = (Arc::new(Mutex::new(Vec::new())), Duration::from_millis(200));
    let (writer, thread) = LogWriter::spawn(Box::new(Patient(Arc::clone(&writes), wait)));
    let record = |rcpt: &str| Record::new(Event::attempt("L"), rcpt, "<i>");
    // Three outcomes of a slow relay's pool, a few milliseconds apart: one write.
    let mut durable = Vec::new();
    for rcpt in ["a@example.com", "b@example.com", "c@example.com"] {
        durable.push(writer.submit(record(rcpt)).await.unwrap());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for record in durable {
        record.wait().await.unwrap();
    }
    // Idle again: a caller waiting on its record is not kept waiting.
    tokio::time::sleep(GATHER * 2).await;
    let hurried = Instant::now();
    writer.write(record("d@example.com")).await.unwrap();
    assert!(hurried.elapsed() < wait / 2, "{:?}", hurried.elapsed());
    drop(writer);
    thread.join().unwrap();
    assert_eq!(*writes.lock().unwrap(), [3, 1]);
}

/// Refuses every attempt for people whose address starts with `taken`.
struct Sharing;

impl SendLog for Sharing {
    fn append(&mut self, records: &[Record]) -> Result<Vec<usize>, SendLogError> {
        let taken = |record: &Record| {
            matches!(record.event, Event::Attempt { .. }) && record.rcpt.starts_with("taken")
        };
        Ok((0..records.len())
            .filter(|&at| taken(&records[at]))
            .collect())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_caller_hears_whether_its_own_attempt_was_refused() {
    let (writer, thread) = LogWriter::spawn(Box::new(Sharing));
    let mut waiting = Vec::new();
    for i in 0..300 {
        let rcpt = if i % 3 == 0 { "taken" } else { "mine" };
        let rcpt = format!("{rcpt}{i}@example.com");
        let record = Record::new(Event::attempt("L"), &rcpt, "<i>");
        waiting.push((rcpt, writer.submit(record).await.unwrap()));
    }
    for (rcpt, durable) in waiting {
        let expected = if rcpt.starts_with("taken") {
            Written::Refused
        } else {
            Written::Durable
        };
        assert_eq!(durable.wait().await.unwrap(), expected, "{rcpt}");
    }
    assert!(writer.live(), "a log without a lease is always live");
    drop(writer);
    thread.join().unwrap();
}

struct Broken;

impl SendLog for Broken {
    fn append(&mut self, _: &[Record]) -> Result<Vec<usize>, SendLogError> {
        Err(SendLogError::Io {
            path: "x".into(),
            source: std::io::Error::other("disk full"),
        })
    }
}

#[tokio::test]
async fn a_failed_write_is_reported_and_nothing_after_it_succeeds() {
    let (writer, _thread) = LogWriter::spawn(Box::new(Broken));
    let record = || Record::new(Event::attempt("L"), "a@example.com", "<i>");
    assert!(writer.failure().is_none());
    assert!(writer.write(record()).await.is_err());
    assert!(writer.failure().is_some());
    assert!(writer.write(record()).await.is_err());
}
