//! The send log in PostgreSQL beside the file log: the time to append records in batches, and
//! to open the log again (replaying them), each side by side. Run by hand, not by a test nor by
//! `bench/run.sh`: a first measure of the backend alone, before it is wired into `send`.
//!
//! The same records go to both: half `attempt`, half `sent`, for `N / 2` people, appended
//! through [`SendLog::append`] in batches of `BATCH` (each batch durable before the next: a
//! commit for the database, an fsync for the file), as the group-commit writer hands them over
//! under load. The open is timed from the call to the replay in hand: for the database that is
//! connecting, checking the schema and streaming the rows. Each open runs in a process of its
//! own (this program, with `--replay`), whose peak resident memory is printed with it (Linux).
//!
//! Usage: `PGPASSWORD=… bench_pglog postgres://user@127.0.0.1:PORT/db [N] [BATCH]` (defaults
//! 100000 and 64). Each run uses a campaign of its own (`bench-<pid>`), so runs never mix. Prints
//! one line per measure: `append backend=file|postgres records=N batch=B seconds=S rate=R`,
//! `replay backend=… records=N seconds=S peak_rss_mib=M`, then the ratios (postgres / file).

use std::time::{Instant, SystemTime};

use anyhow::{Context, bail};
use missive::sendlog::{Event, FileLog, PgLog, PgTarget, Record, SendLog, timestamp};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [flag, backend, log, campaign] = args.as_slice()
        && flag == "--replay"
    {
        return replay(backend, log, campaign);
    }
    let (url, n, batch) = match args.as_slice() {
        [url] => (url, 100_000, 64),
        [url, n] => (url, n.parse().context("N")?, 64),
        [url, n, batch] => (
            url,
            n.parse().context("N")?,
            batch.parse().context("BATCH")?,
        ),
        _ => bail!("usage: bench_pglog postgres://user@host:port/db [N] [BATCH]"),
    };
    let records = records(n);
    let campaign = format!("bench-{}", std::process::id());
    let target = PgTarget::from_env(url)?;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("bench.sendlog.jsonl");

    let (file, _) = FileLog::open(&path, &campaign)?;
    let file_append = append(Box::new(file), &records, batch)?;
    let (database, _) = PgLog::open(&target, &campaign)?;
    let database_append = append(Box::new(database), &records, batch)?;
    println!("append backend=file {}", file_append.line(n, batch));
    println!("append backend=postgres {}", database_append.line(n, batch));

    drop(records);

    // Each replay in a process of its own, so its peak memory is its own.
    let (file_open, file_peak) =
        replay_in_child(&["file", &path.display().to_string(), &campaign])?;
    let (database_open, database_peak) = replay_in_child(&["postgres", url, &campaign])?;
    println!("replay backend=file records={n} seconds={file_open:.3} peak_rss_mib={file_peak}");
    println!(
        "replay backend=postgres records={n} seconds={database_open:.3} \
         peak_rss_mib={database_peak}"
    );
    println!(
        "ratio append_rate={:.2} replay_time={:.2}",
        database_append.rate(n) / file_append.rate(n),
        database_open / file_open
    );
    Ok(())
}

/// `n` records: an attempt and its `sent` for each of `n / 2` people, in the order a run
/// writes them.
fn records(n: usize) -> Vec<Record> {
    let at = timestamp(SystemTime::now());
    (0..n)
        .map(|i| {
            let rcpt = format!("person{}@example.com", i / 2);
            let event = if i % 2 == 0 {
                Event::attempt("3f2a9c1e")
            } else {
                Event::Sent {
                    reply: "250 2.0.0 Ok: queued as 4XyZ1".into(),
                    via: None,
                }
            };
            let message_id = format!("<{}.bench@missive.example.org>", i / 2);
            Record {
                at: at.clone(),
                ..Record::new(event, &rcpt, &message_id)
            }
        })
        .collect()
}

struct Timed(f64);

impl Timed {
    fn rate(&self, n: usize) -> f64 {
        n as f64 / self.0
    }

    fn line(&self, n: usize, batch: usize) -> String {
        format!(
            "records={n} batch={batch} seconds={:.3} rate={:.0}",
            self.0,
            self.rate(n)
        )
    }
}

fn append(mut log: Box<dyn SendLog>, records: &[Record], batch: usize) -> anyhow::Result<Timed> {
    let started = Instant::now();
    for chunk in records.chunks(batch) {
        log.append(chunk)?;
    }
    let seconds = started.elapsed().as_secs_f64();
    drop(log);
    Ok(Timed(seconds))
}

/// The child's side: opens one log, and prints the seconds it took and its peak memory.
fn replay(backend: &str, log: &str, campaign: &str) -> anyhow::Result<()> {
    let started = Instant::now();
    let replay = match backend {
        "file" => FileLog::open(std::path::Path::new(log), campaign)?.1,
        _ => PgLog::open(&PgTarget::from_env(log)?, campaign)?.1,
    };
    let seconds = started.elapsed().as_secs_f64();
    let peak_kib: u64 = std::fs::read_to_string("/proc/self/status")?
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    println!("{seconds} {} {}", peak_kib / 1024, replay.len());
    Ok(())
}

/// Runs this program with `--replay ARGS`: the seconds its open took and its peak RSS in MiB.
fn replay_in_child(args: &[&str]) -> anyhow::Result<(f64, u64)> {
    let output = std::process::Command::new(std::env::current_exe()?)
        .arg("--replay")
        .args(args)
        .output()?;
    if !output.status.success() {
        bail!(
            "replay {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let text = String::from_utf8(output.stdout)?;
    let mut words = text.split_whitespace();
    let seconds = words.next().context("seconds")?.parse()?;
    let peak = words.next().context("peak")?.parse()?;
    Ok((seconds, peak))
}
