//! The progress bar `send` draws on a terminal: rows done out of the list's, the rate, an ETA
//! and the counts so far, read from the engine's [`Progress`] a few times a second. Under cron
//! (no terminal) there is none: the log lines and the final report say it all.

use std::io::{BufRead, IsTerminal};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::send::Progress;

/// On a terminal, a bar on standard error with the rate and an ETA, fed from `progress`;
/// under cron (no terminal), nothing: the log lines and the final report say it all.
pub(super) fn progress_bar(
    recipients: &Path,
    progress: &Arc<Progress>,
) -> Option<(indicatif::ProgressBar, tokio::task::JoinHandle<()>)> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let rows = std::fs::File::open(recipients)
        .map(|file| {
            std::io::BufReader::new(file)
                .split(b'\n')
                .count()
                .saturating_sub(1)
        })
        .unwrap_or(0);
    let bar = indicatif::ProgressBar::new(rows as u64);
    bar.set_style(bar_style());
    let progress = Arc::clone(progress);
    let ticking = bar.clone();
    let ticker = tokio::spawn(async move {
        let bar = ticking;
        loop {
            let counts = progress.counts();
            bar.set_position(counts.done());
            // In doubt, like deferred, waits for a later run.
            bar.set_message(format!(
                "sent {} · failed {} · deferred {}",
                counts.sent,
                counts.failed,
                counts.deferred + counts.unanswered
            ));
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    Some((bar, ticker))
}

/// The bar's look: position, rate, ETA and the counts so far.
///
/// The rate is our own key: indicatif's `{per_sec}` prints four decimals (`17.9335/s`), and
/// `{per_sec:.0}` does not round it, since indicatif reads what follows the dot as a colour.
fn bar_style() -> indicatif::ProgressStyle {
    indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} rows  {rate}  ETA {eta}  {msg}")
        .expect("a valid template")
        .with_key(
            "rate",
            |state: &indicatif::ProgressState, out: &mut dyn std::fmt::Write| {
                let _ = out.write_str(&rate(state.per_sec()));
            },
        )
}

/// Messages a second as the bar shows them: whole ones, or one decimal below ten (a paced
/// campaign may send one every few seconds, which `0/s` would hide).
fn rate(per_sec: f64) -> String {
    if !per_sec.is_finite() {
        "–/s".to_owned()
    } else if per_sec < 9.95 {
        format!("{per_sec:.1}/s")
    } else {
        format!("{per_sec:.0}/s")
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A terminal that keeps the last line drawn.
    #[derive(Debug, Clone, Default)]
    struct Screen(Arc<Mutex<String>>);

    impl indicatif::TermLike for Screen {
        fn width(&self) -> u16 {
            200
        }
        fn move_cursor_up(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_down(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn write_line(&self, line: &str) -> std::io::Result<()> {
            self.write_str(line)
        }
        fn write_str(&self, text: &str) -> std::io::Result<()> {
            if !text.trim().is_empty() {
                *self.0.lock().unwrap() = text.to_owned();
            }
            Ok(())
        }
        fn clear_line(&self) -> std::io::Result<()> {
            Ok(())
        }
        fn flush(&self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn rates_are_rounded() {
        assert_eq!(rate(17.9335), "18/s");
        assert_eq!(rate(10_412.49), "10412/s");
        assert_eq!(rate(9.96), "10/s");
        assert_eq!(rate(2.44), "2.4/s");
        assert_eq!(rate(0.2), "0.2/s");
        assert_eq!(rate(0.0), "0.0/s");
        assert_eq!(rate(f64::NAN), "–/s");
    }

    #[test]
    fn the_bar_shows_a_rounded_rate() {
        let screen = Screen::default();
        let bar = indicatif::ProgressBar::with_draw_target(
            Some(1000),
            indicatif::ProgressDrawTarget::term_like(Box::new(screen.clone())),
        );
        bar.set_style(bar_style());
        bar.set_position(537);
        std::thread::sleep(Duration::from_millis(30));
        // Finished, the rate is the position over the time taken: some hundreds a second.
        bar.finish();
        let line = screen.0.lock().unwrap().clone();
        let rate = line
            .split_whitespace()
            .find(|word| word.ends_with("/s"))
            .unwrap_or_else(|| panic!("no rate in {line:?}"));
        let number = rate.trim_end_matches("/s");
        assert!(
            !number.is_empty() && number.chars().all(|c| c.is_ascii_digit()),
            "{line:?}"
        );
    }
}
