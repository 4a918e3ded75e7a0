//! Render + build throughput, with the send log on and off: the CPU side of `missive send`
//! without a network. Run by `bench/run.sh` (pinned to one core); not a test.
//!
//! Each pass is a real run of the engine (`missive::send::run`, as `missive send` starts it:
//! the same runtime, `pool` workers, the same queue) delivering to a [`Sink`], which takes every
//! message at once with a `250` and no network. With the log on, the run records through the
//! group-commit `LogWriter` over a `FileLog`, as `send` does; with it off, through the same
//! writer over a log that keeps nothing ([`Discard`]; a dry run's `MemoryLog` keeps every
//! record, and its growing memory would weigh on the off side). So the difference between the
//! two is what the log on disk costs a real run, and nothing else.
//!
//! The machine is shared and its speed drifts: the passes alternate, off then on, then on then
//! off, so that a drift weighs on both alike. The wall-clock cost is the median of each
//! round's own cost (its on pass against the off pass next to it), so a slow moment of the
//! machine spoils one round's figure rather than shifting one side's median.
//!
//! Two costs come out. The wall-clock one (`cost`) is what a run with a server that answers at
//! once would lose; with such a server every message soon waits for its attempt to be durable,
//! so it moves with the disk's sync latency, which on a shared machine swings from run to run.
//! The CPU one (`cpu_cost`, user + system time of the whole process, the log's thread
//! included) is what the log takes from the core, which the disk does not move.
//!
//! Usage: `bench_render CAMPAIGN RECIPIENTS LOG_DIR POOL ROUNDS [on|off]`. Prints one line per
//! pass, `pass=N log=on|off messages=M seconds=S bytes=B cpu=S`, one line per round,
//! `round=N cost=C%`, then one line for the whole invocation, `median log=off rate=R log=on
//! rate=R cost=C% cpu_cost=D%` (rates in messages/s, the median rates of each kind; cost = the
//! median over the rounds of 1 − on / off; cpu_cost = 1 − off / on of the CPU time summed over
//! the passes, whose clock counts in hundredths of a second). With `on` or `off`, only passes
//! of that kind run, and no median line: for
//! counting instructions under `valgrind --tool=callgrind`, which the disk's latency, unlike
//! the wall clock, does not move (see bench/README.md).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use missive::campaign::Campaign;
use missive::letter::Letter;
use missive::message::Composer;
use missive::ratelimit::{Limits, Pace};
use missive::recipients::RecipientReader;
use missive::render::Template;
use missive::send::{Content, Engine, InDoubt, RunLimits, Sink};
use missive::sendlog::{FileLog, LogWriter, Record, Replay, SendLog, SendLogError};

/// The log turned off: every record is taken and dropped at once.
struct Discard;

impl SendLog for Discard {
    fn append(&mut self, _: &[Record]) -> Result<Vec<usize>, SendLogError> {
        Ok(Vec::new())
    }
}

/// What one pass measured.
struct Pass {
    messages: u64,
    bytes: u64,
    seconds: f64,
    /// CPU time of the whole process during the pass.
    cpu: f64,
}

/// The campaign as `missive send` loads it.
struct Loaded {
    campaign: Campaign,
    template: Template,
    composer: Composer,
    recipients: PathBuf,
    /// The letter's fingerprint, as the engine puts it in each attempt record.
    fingerprint: String,
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (args, only) = match args.as_slice() {
        [rest @ .., last] if last == "on" || last == "off" => (rest, Some(last == "on")),
        all => (all, None),
    };
    let [campaign, recipients, log_dir, pool, rounds] = args else {
        bail!("usage: bench_render CAMPAIGN RECIPIENTS LOG_DIR POOL ROUNDS [on|off]");
    };
    let pool: usize = pool.parse().context("POOL")?;
    let rounds: usize = rounds.parse().context("ROUNDS")?;
    let campaign = Campaign::load(Path::new(campaign))?;
    let letters = campaign
        .letters
        .iter()
        .map(|settings| Letter::load(&settings.letter_path, &settings.language))
        .collect::<Result<Vec<_>, _>>()?;
    // As `missive send` makes them: each letter prepared once, and its fixed parts encoded
    // once. The bench sends without unsubscribe links.
    let (template, composer) = missive::app::prepare(&campaign, &letters, None);
    // The files every message carries, read and encoded once, as `send` attaches them.
    let composer = composer.with_attachments(missive::app::read_attachments(&campaign)?);
    let fingerprint = letters[0].source_sha256[..16].to_owned();
    let loaded = Loaded {
        campaign,
        template,
        composer,
        recipients: PathBuf::from(recipients),
        fingerprint,
    };
    // The runtime `missive send` starts (src/app.rs): one thread renders and drives every
    // connection.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (mut off, mut on) = (Vec::new(), Vec::new());
    let (mut cpu_off, mut cpu_on) = (0.0, 0.0);
    let mut costs = Vec::new();
    for round in 0..rounds {
        // Off then on, then on then off: a drift of the machine's speed weighs on both.
        let order = if round % 2 == 0 {
            [false, true]
        } else {
            [true, false]
        };
        let mut round_rates = [None, None];
        for log_on in order {
            if only.is_some_and(|only| only != log_on) {
                continue;
            }
            let log =
                log_on.then(|| Path::new(log_dir).join(format!("pass-{round}.sendlog.jsonl")));
            let pass = runtime.block_on(one_pass(&loaded, log, pool))?;
            println!(
                "pass={round} log={} messages={} seconds={:.6} bytes={} cpu={:.2}",
                if log_on { "on" } else { "off" },
                pass.messages,
                pass.seconds,
                pass.bytes,
                pass.cpu
            );
            *if log_on { &mut cpu_on } else { &mut cpu_off } += pass.cpu;
            let rate = pass.messages as f64 / pass.seconds;
            if log_on { &mut on } else { &mut off }.push(rate);
            round_rates[usize::from(log_on)] = Some(rate);
        }
        if let [Some(off), Some(on)] = round_rates {
            let cost = 1.0 - on / off;
            println!("round={round} cost={:.1}%", 100.0 * cost);
            costs.push(cost);
        }
    }
    if only.is_some() {
        return Ok(());
    }
    let (off, on) = (median(off), median(on));
    println!(
        "median log=off rate={off:.0} log=on rate={on:.0} cost={:.1}% cpu_cost={:.1}%",
        100.0 * median(costs),
        100.0 * (1.0 - cpu_off / cpu_on)
    );
    Ok(())
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// User + system time of the whole process so far, its ended threads included, from
/// `/proc/self/stat` (in clock ticks, 100 a second on Linux: a pass is a few hundred ticks, and
/// the cost sums every pass).
fn cpu_seconds() -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").context("reading /proc/self/stat")?;
    // The fields after the command name, which is in parentheses: state is the first of them,
    // utime and stime the 12th and 13th.
    let after = stat.rsplit_once(')').map_or("", |(_, after)| after);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| -> anyhow::Result<f64> {
        Ok(fields
            .get(i)
            .context("/proc/self/stat is shorter than expected")?
            .parse::<f64>()?)
    };
    Ok((ticks(11)? + ticks(12)?) / 100.0)
}

/// One run of the engine over every row, into a sink; with `log`, a fresh send log there.
async fn one_pass(loaded: &Loaded, log: Option<PathBuf>, pool: usize) -> anyhow::Result<Pass> {
    let started = Instant::now();
    let cpu_before = cpu_seconds()?;
    let backend: Box<dyn SendLog> = match &log {
        Some(path) => Box::new(FileLog::open(path, &loaded.campaign.id)?.0),
        None => Box::new(Discard),
    };
    let (writer, writer_thread) = LogWriter::spawn(backend);
    let mut reader = RecipientReader::open(&loaded.recipients, &loaded.campaign.name_columns)?;
    let sink = Sink::default();
    let engine = Engine {
        route: sink.clone(),
        log: writer,
        connections: pool,
        retry: Default::default(),
        pace: Pace::new(&Limits::default(), &Default::default()),
        in_doubt: InDoubt::Resend,
        progress: Arc::default(),
        refusals: None,
    };
    let content = Content {
        template: &loaded.template,
        composer: &loaded.composer,
        fingerprint: &loaded.fingerprint,
    };
    let report = missive::send::run(
        &content,
        &mut reader,
        &Replay::default(),
        engine,
        &RunLimits::default(),
        std::future::pending(),
    )
    .await?;
    // The run is over when its records are on disk: the writer's thread ends with the last.
    writer_thread
        .join()
        .map_err(|_| anyhow::anyhow!("the send log writer crashed"))?;
    let seconds = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds()? - cpu_before;
    let (messages, bytes) = sink.received();
    if report.counts.sent != messages {
        bail!(
            "the sink took {messages} messages, the engine counted {} sent",
            report.counts.sent
        );
    }
    if let Some(path) = log {
        std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
    }
    Ok(Pass {
        messages,
        bytes,
        seconds,
        cpu,
    })
}
