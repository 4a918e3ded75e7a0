//! Render + build throughput, with the send log on and off: the CPU side of `missive send`
//! without a network. Run by `bench/run.sh` (pinned to one core); not a test.
//!
//! Each message goes the way the engine (`src/send/`) takes it: a row streamed from the CSV
//! and validated, rendered (HTML and text), composed into a lettre `Message`, then handed to
//! one of `pool` deliveries at once (the engine's workers, one a connection). Where the engine
//! would talk SMTP, the delivery serializes the message as it goes before DATA
//! (`Message::formatted`). With the
//! log on, the task first makes an `attempt` record durable and afterwards a `sent` record,
//! through the same group-commit `LogWriter` over a `FileLog` that `send` uses (one fsync per
//! batch), so the difference between the two passes is what the log costs a real run.
//!
//! Usage: `bench_render CAMPAIGN RECIPIENTS LOG_DIR POOL ROUNDS`. Prints one line per pass:
//! `pass=N log=on|off messages=M seconds=S bytes=B`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use anyhow::{Context, bail};
use missive::campaign::Campaign;
use missive::letter::Letter;
use missive::message::Composer;
use missive::recipients::{RecipientReader, Row};
use missive::render::{Frame, render};
use missive::sendlog::{Event, FileLog, LogWriter, Record};
use tokio::sync::Semaphore;
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
    letter: Letter,
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
    // As `missive send` makes it (src/app.rs), with the letter's fixed parts encoded once.
    let composer = Composer::new(
        &campaign.id,
        campaign.from.clone(),
        campaign.reply_to.clone(),
        &campaign.subject,
    )
    .with_fixed_parts(&letter.template().fixed_parts(&frame(&campaign)));
    let fingerprint = letter.source_sha256[..16].to_owned();
    let loaded = Arc::new(Loaded {
        campaign,
        letter,
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

/// Renders and builds a message for every row; with `log`, records attempt and sent for each.
async fn one_pass(loaded: Arc<Loaded>, log: Option<PathBuf>, pool: usize) -> anyhow::Result<Pass> {
    let started = Instant::now();
    let (writer, writer_thread) = match &log {
        Some(path) => {
            let (file_log, _replay) = FileLog::open(path)?;
            let (writer, thread) = LogWriter::spawn(Box::new(file_log));
            (Some(writer), Some(thread))
        }
        None => (None, None),
    };
    let mut reader = RecipientReader::open(&loaded.recipients, &loaded.campaign.name_columns)?;
    let frame = frame(&loaded.campaign);
    let slots = Arc::new(Semaphore::new(pool.max(1)));
    let mut in_flight: JoinSet<anyhow::Result<u64>> = JoinSet::new();
    let (mut messages, mut bytes) = (0u64, 0u64);
    loop {
        let slot = Arc::clone(&slots).acquire_owned().await?;
        while let Some(done) = in_flight.try_join_next() {
            bytes += done??;
            messages += 1;
        }
        let Some(row) = reader.next_row()? else {
            break;
        };
        let Row::Valid(recipient) = row else {
            continue;
        };
        let rcpt = recipient.email.to_string();
        let message_id = loaded.composer.message_id(&recipient);
        let rendered = render(&loaded.letter, &frame, &recipient);
        let message = loaded
            .composer
            .compose(&recipient, rendered, SystemTime::now())?;
        let writer = writer.clone();
        let fingerprint = loaded.fingerprint.clone();
        in_flight.spawn(async move {
            let _slot = slot;
            if let Some(writer) = &writer {
                writer
                    .write(Record::new(
                        Event::attempt(&fingerprint),
                        &rcpt,
                        &message_id,
                    ))
                    .await?;
            }
            // What lettre's transport does with the message before DATA.
            let size = message.formatted().len() as u64;
            if let Some(writer) = &writer {
                let reply = "250 2.0.0 Ok: queued as 4F2A0C1D2E".to_owned();
                writer
                    .write(Record::new(
                        Event::Sent { reply, via: None },
                        &rcpt,
                        &message_id,
                    ))
                    .await?;
            }
            Ok(size)
        });
    }
    while let Some(done) = in_flight.join_next().await {
        bytes += done??;
        messages += 1;
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
