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
//! The CPU one is what the log takes from the core, which the disk does not move: `cpu_cost`
//! counts the whole process (user + system time, the log's thread included), `render_cost`
//! every thread but the log's writer (the core that renders and drives the connections).
//!
//! Where the threads run: with `BENCH_CORES=R,W` in the environment the rendering thread (and
//! any it starts) is pinned to core `R` and the log's writer thread to core `W`, as `missive
//! send` runs on a machine of two cores or more (the writer is a thread of its own, and its
//! syncs cost the kernel time on its core, not the renderer's). Without it nothing is pinned
//! here: `taskset -c 0` from outside puts everything on one core.
//!
//! Usage: `bench_render CAMPAIGN RECIPIENTS LOG_DIR POOL ROUNDS [on|off]`. Prints one line per
//! pass, `pass=N log=on|off messages=M seconds=S bytes=B cpu=S writer_cpu=S`, one line per
//! round, `round=N cost=C%`, then one line for the whole invocation, `median log=off rate=R
//! log=on rate=R cost=C% cpu_cost=D% render_cost=E% writer_share=F%` (rates in messages/s, the
//! median rates of each kind; cost = the median over the rounds of 1 − on / off; cpu_cost = 1 −
//! off / on of the process's CPU time summed over the passes; render_cost the same without the
//! writer's thread; writer_share the writer's part of the process's CPU time with the log on).
//! With `on` or `off`, only passes of that kind run, and no median line: for counting
//! instructions under `valgrind --tool=callgrind`, which the disk's latency, unlike the wall
//! clock, does not move (see bench/README.md).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
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

/// A log that tells how much CPU time the writer's thread has spent, in nanoseconds: the
/// writer calls `append` on its own thread and drops the log there when it ends, so the thread's
/// own clock, read at each call and at the drop, is the writer's whole share.
struct Timed {
    log: Box<dyn SendLog>,
    spent: Arc<AtomicU64>,
}

impl SendLog for Timed {
    fn append(&mut self, records: &[Record]) -> Result<Vec<usize>, SendLogError> {
        let refused = self.log.append(records);
        self.spent.store(thread_cpu_nanos(), Ordering::Release);
        refused
    }
}

impl Drop for Timed {
    fn drop(&mut self) {
        // The file log's close (cutting the room made ahead) runs here too.
        drop(std::mem::replace(&mut self.log, Box::new(Discard)));
        self.spent.store(thread_cpu_nanos(), Ordering::Release);
    }
}

/// CPU time of the calling thread, in nanoseconds.
fn thread_cpu_nanos() -> u64 {
    cpu_clock(libc::CLOCK_THREAD_CPUTIME_ID)
}

/// CPU time of the whole process, its ended threads included, in nanoseconds.
fn process_cpu_nanos() -> u64 {
    cpu_clock(libc::CLOCK_PROCESS_CPUTIME_ID)
}

fn cpu_clock(clock: libc::clockid_t) -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid timespec to write into, and both clocks exist on Linux.
    let done = unsafe { libc::clock_gettime(clock, &mut now) };
    assert_eq!(done, 0, "clock_gettime failed");
    now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64
}

/// Pins the calling thread (and the threads it starts afterwards, which inherit it) to `core`.
fn pin_to(core: usize) -> anyhow::Result<()> {
    // SAFETY: a zeroed cpu_set_t is the empty set; CPU_SET and sched_setaffinity only read and
    // write that set, for the calling thread (pid 0).
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(core, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            bail!(
                "cannot pin a thread to core {core}: {}",
                std::io::Error::last_os_error()
            );
        }
    }
    Ok(())
}

/// `BENCH_CORES=R,W`: the rendering core and the writer's.
fn cores() -> anyhow::Result<Option<(usize, usize)>> {
    let Ok(cores) = std::env::var("BENCH_CORES") else {
        return Ok(None);
    };
    let (render, writer) = cores
        .split_once(',')
        .context("BENCH_CORES is R,W: the rendering core and the writer's")?;
    Ok(Some((
        render.trim().parse().context("BENCH_CORES")?,
        writer.trim().parse().context("BENCH_CORES")?,
    )))
}

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
    /// CPU time of the whole process during the pass, in seconds.
    cpu: f64,
    /// Of which the log's writer thread spent, in seconds.
    writer_cpu: f64,
}

/// The campaign as `missive send` loads it.
struct Loaded {
    campaign: Campaign,
    template: Template,
    composer: Composer,
    recipients: PathBuf,
    /// The letter's fingerprint, as the engine puts it in each attempt record.
    fingerprint: String,
    /// The core the log's writer is pinned to, if any.
    writer_core: Option<usize>,
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
    let cores = cores()?;
    if let Some((render, _)) = cores {
        pin_to(render)?;
    }
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
        writer_core: cores.map(|(_, writer)| writer),
    };
    // The runtime `missive send` starts (src/app.rs): one thread renders and drives every
    // connection.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (mut off, mut on) = (Vec::new(), Vec::new());
    let (mut cpu_off, mut cpu_on) = (0.0, 0.0);
    let (mut render_off, mut render_on) = (0.0, 0.0);
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
                "pass={round} log={} messages={} seconds={:.6} bytes={} cpu={:.4} writer_cpu={:.4}",
                if log_on { "on" } else { "off" },
                pass.messages,
                pass.seconds,
                pass.bytes,
                pass.cpu,
                pass.writer_cpu
            );
            *if log_on { &mut cpu_on } else { &mut cpu_off } += pass.cpu;
            *if log_on {
                &mut render_on
            } else {
                &mut render_off
            } += pass.cpu - pass.writer_cpu;
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
        "median log=off rate={off:.0} log=on rate={on:.0} cost={:.1}% cpu_cost={:.1}% render_cost={:.1}% writer_share={:.1}%",
        100.0 * median(costs),
        100.0 * (1.0 - cpu_off / cpu_on),
        100.0 * (1.0 - render_off / render_on),
        100.0 * (cpu_on - render_on) / cpu_on
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

/// One run of the engine over every row, into a sink; with `log`, a fresh send log there.
async fn one_pass(loaded: &Loaded, log: Option<PathBuf>, pool: usize) -> anyhow::Result<Pass> {
    let started = Instant::now();
    let cpu_before = process_cpu_nanos();
    let log_inside: Box<dyn SendLog> = match &log {
        Some(path) => Box::new(FileLog::open(path, &loaded.campaign.id)?.0),
        None => Box::new(Discard),
    };
    let writer_spent = Arc::new(AtomicU64::new(0));
    let backend = Box::new(Timed {
        log: log_inside,
        spent: Arc::clone(&writer_spent),
    });
    // The writer's thread inherits the core of the thread that starts it.
    let (writer, writer_thread) = match loaded.writer_core {
        Some(core) => std::thread::spawn(move || {
            pin_to(core)?;
            anyhow::Ok(LogWriter::spawn(backend))
        })
        .join()
        .map_err(|_| anyhow::anyhow!("the thread starting the writer panicked"))??,
        None => LogWriter::spawn(backend),
    };
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
    let cpu = (process_cpu_nanos() - cpu_before) as f64 / 1e9;
    let writer_cpu = writer_spent.load(Ordering::Acquire) as f64 / 1e9;
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
        writer_cpu,
    })
}
