//! Render + build throughput, with the send log on and off: the CPU side of `missive send`
//! without a network. Run by `bench/run.sh` (pinned to one core); not a test.
//!
//! Each message goes the way the engine (`src/send/`) takes it: a row streamed from the CSV
//! and validated, rendered (HTML and text), composed into a lettre `Message` and serialized as
//! it goes after DATA (`Message::formatted`), then handed to one of `pool` deliveries at once
//! (the engine's workers, one a connection), which stand in for SMTP. With the log on, `attempt` and `sent` records go through the same
//! group-commit `LogWriter` over a `FileLog` that `send` uses, in the engine's pattern (see
//! `one_pass`), so the difference between the two passes is what the log costs a real run.
//!
//! Usage: `bench_render CAMPAIGN RECIPIENTS LOG_DIR POOL ROUNDS`. Prints one line per pass:
//! `pass=N log=on|off messages=M seconds=S bytes=B`.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use anyhow::{Context, bail};
use missive::campaign::Campaign;
use missive::letter::Letter;
use missive::message::Composer;
use missive::recipients::{RecipientReader, Row};
use missive::render::{Frame, Template};
use missive::sendlog::{Durable, Event, FileLog, LogWriter, Record};
use tokio::task::JoinSet;

/// What one pass measured.
struct Pass {
    messages: u64,
    bytes: u64,
    seconds: f64,
}

/// The campaign as `missive send` loads it.
struct Loaded {
    campaign: Campaign,
    template: Template,
    composer: Composer,
    recipients: PathBuf,
    /// Stands for the letter fingerprint the engine puts in each attempt record (same length).
    fingerprint: String,
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [campaign, recipients, log_dir, pool, rounds] = args.as_slice() else {
        bail!("usage: bench_render CAMPAIGN RECIPIENTS LOG_DIR POOL ROUNDS");
    };
    let pool: usize = pool.parse().context("POOL")?;
    let rounds: usize = rounds.parse().context("ROUNDS")?;
    let campaign = Campaign::load(Path::new(campaign))?;
    let letter = Letter::load(&campaign.letter_path, &campaign.language)?;
    // As `missive send` makes them (src/app.rs): the letter prepared once, and its fixed parts
    // encoded once.
    let template = Template::new(&letter, &frame(&campaign));
    let composer = Composer::new(
        &campaign.id,
        campaign.from.clone(),
        campaign.reply_to.clone(),
        &campaign.subject,
    )
    .with_fixed_parts(&template.fixed_parts());
    let fingerprint = letter.source_sha256[..16].to_owned();
    let loaded = Arc::new(Loaded {
        campaign,
        template,
        composer,
        recipients: PathBuf::from(recipients),
        fingerprint,
    });
    // The runtime `missive send` starts (one worker per core it may use).
    let runtime = tokio::runtime::Runtime::new()?;
    for round in 0..rounds {
        for log_on in [false, true] {
            let log =
                log_on.then(|| Path::new(log_dir).join(format!("pass-{round}.sendlog.jsonl")));
            let pass = runtime.block_on(one_pass(Arc::clone(&loaded), log, pool))?;
            println!(
                "pass={round} log={} messages={} seconds={:.6} bytes={}",
                if log_on { "on" } else { "off" },
                pass.messages,
                pass.seconds,
                pass.bytes
            );
        }
    }
    Ok(())
}

/// The frame of the messages: the bench sends without unsubscribe links.
fn frame(campaign: &Campaign) -> Frame<'_> {
    Frame {
        subject: &campaign.subject,
        preheader: &campaign.preheader,
        language: &campaign.language,
        unsubscribe: None,
    }
}

/// Renders and builds a message for every row; with `log`, records attempt and sent for each,
/// the way the engine does: the attempt is written when the message is queued (up to
/// `ahead(pool)` of them), a delivery waits for it to be durable before "DATA", writes `sent`
/// without waiting, and counts the message once that record is durable.
async fn one_pass(loaded: Arc<Loaded>, log: Option<PathBuf>, pool: usize) -> anyhow::Result<Pass> {
    let started = Instant::now();
    let (writer, writer_thread) = match &log {
        Some(path) => {
            let (file_log, _replay) = FileLog::open(path, &loaded.campaign.id)?;
            let (writer, thread) = LogWriter::spawn(Box::new(file_log));
            (Some(writer), Some(thread))
        }
        None => (None, None),
    };
    let mut reader = RecipientReader::open(&loaded.recipients, &loaded.campaign.name_columns)?;
    // The engine's queue: `ahead` messages wait their turn, their attempts already written.
    let ahead = (pool * 8).clamp(128, 256);
    let (queue, jobs) = tokio::sync::mpsc::channel::<Job>(ahead);
    let jobs = Arc::new(tokio::sync::Mutex::new(jobs));
    let mut deliveries: JoinSet<anyhow::Result<(u64, u64)>> = JoinSet::new();
    for _ in 0..pool.max(1) {
        let (jobs, writer) = (Arc::clone(&jobs), writer.clone());
        deliveries.spawn(async move {
            let (mut messages, mut bytes) = (0u64, 0u64);
            let mut unconfirmed: VecDeque<Durable> = VecDeque::new();
            loop {
                let Some(job) = jobs.lock().await.recv().await else {
                    break;
                };
                if let Some(attempt) = job.attempt {
                    attempt.wait().await?;
                }
                bytes += job.data.len() as u64;
                if let Some(writer) = &writer {
                    let reply = "250 2.0.0 Ok: queued as 4F2A0C1D2E".to_owned();
                    let sent = Record::new(Event::Sent { reply, via: None }, &job.rcpt, &job.id);
                    unconfirmed.push_back(writer.submit(sent).await?);
                }
                while let Some(front) = unconfirmed.front_mut() {
                    match front.ready() {
                        Some(result) => result?,
                        None => break,
                    }
                    unconfirmed.pop_front();
                }
                messages += 1;
            }
            for durable in unconfirmed {
                durable.wait().await?;
            }
            Ok((messages, bytes))
        });
    }
    drop(jobs);
    while let Some(row) = reader.next_row()? {
        let Row::Valid(recipient) = row else {
            continue;
        };
        let rcpt = recipient.email.to_string();
        let id = loaded.composer.message_id(&recipient);
        let rendered = loaded.template.render(&recipient);
        let message = loaded
            .composer
            .compose(&recipient, rendered, SystemTime::now())?;
        let attempt = match &writer {
            Some(writer) => {
                let record = Record::new(Event::attempt(&loaded.fingerprint), &rcpt, &id);
                Some(writer.submit(record).await?)
            }
            None => None,
        };
        queue
            .send(Job {
                rcpt,
                id,
                data: message.formatted(),
                attempt,
            })
            .await
            .map_err(|_| anyhow::anyhow!("the deliveries stopped"))?;
    }
    drop(queue);
    let (mut messages, mut bytes) = (0u64, 0u64);
    while let Some(done) = deliveries.join_next().await {
        let (m, b) = done??;
        messages += m;
        bytes += b;
    }
    drop(writer);
    if let Some(thread) = writer_thread {
        thread
            .join()
            .map_err(|_| anyhow::anyhow!("the send log writer crashed"))?;
    }
    Ok(Pass {
        messages,
        bytes,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// A message on the queue.
struct Job {
    rcpt: String,
    id: String,
    data: Vec<u8>,
    attempt: Option<Durable>,
}
