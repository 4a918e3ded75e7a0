//! Drives the real `missive` binary: writes a campaign into a temporary directory, runs a
//! command, and returns what it printed. Each test gets its own directory and its own servers.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

/// A small letter using every kind of section and every field syntax.
pub const LETTER: &str = "::: greeting
Bonjour[[ {{first_name}}]],

::: introduction
Voici une lettre d’essai, avec une *italique* et un [lien](https://www.example.org/a).

::: story
## Erreur n°1 : un titre

Le texte de l’histoire.

::: problem
**Ce qui a coincé :** quelque chose.

::: lesson
**Ce que nous avons appris :** autre chose.

::: ask
Un don de {{amount|25}} $ ?

[Je fais un don](https://dons.example.org/essai)

::: signature
Ashley Boyd\\
Mozilla
";

/// A campaign in a temporary directory.
pub struct Fixture {
    pub dir: tempfile::TempDir,
}

/// What one run of the binary did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(output: Output) -> Run {
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Both streams, for assertion messages.
    pub fn all(&self) -> String {
        format!(
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

impl Fixture {
    /// A campaign with [`LETTER`], the given recipient CSV, and `extra` appended to the TOML.
    pub fn new(csv: &str, extra: &str) -> Fixture {
        Self::with_letter(LETTER, csv, extra)
    }

    pub fn with_letter(letter: &str, csv: &str, extra: &str) -> Fixture {
        let dir = tempfile::tempdir().expect("temp dir");
        let fixture = Fixture { dir };
        fixture.write("templates/letter.md", letter);
        fixture.write("recipients/list.csv", csv);
        fixture.write(
            "campaign.toml",
            &format!(
                r#"id = "essai-2026"
language = "fr"
subject = "Nos ratés de l’année"
preheader = "Une lettre d’essai"
from = "Mozilla <dons@example.org>"
reply_to = "Réponses <reponses@example.org>"
letter = "templates/letter.md"
recipients = "recipients/list.csv"
{extra}"#
            ),
        );
        fixture
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    pub fn write(&self, relative: &str, text: &str) {
        let path = self.path(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    pub fn campaign(&self) -> PathBuf {
        self.path("campaign.toml")
    }

    /// Runs `missive <args…>` from a directory that is not the campaign's (as cron would), with
    /// no secret in the environment unless `env` gives one.
    pub fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut command = Command::new(env!("CARGO_BIN_EXE_missive"));
        command
            .args(args)
            .current_dir(std::env::temp_dir())
            .env_remove("MISSIVE_SMTP_PASSWORD")
            .env_remove("MISSIVE_UNSUBSCRIBE_SECRET")
            .env_remove("MISSIVE_LOG");
        for (key, value) in env {
            command.env(key, value);
        }
        Run::from(command.output().expect("run missive"))
    }

    /// `missive send <campaign> --smtp <url> [more…]`.
    pub fn send(&self, smtp_url: &str, more: &[&str]) -> Run {
        let campaign = self.campaign();
        let mut args = vec!["send", campaign.to_str().unwrap(), "--smtp", smtp_url];
        args.extend_from_slice(more);
        self.run(&args, &[])
    }

    pub fn command(&self, name: &str, more: &[&str]) -> Run {
        let campaign = self.campaign();
        let mut args = vec![name, campaign.to_str().unwrap()];
        args.extend_from_slice(more);
        self.run(&args, &[])
    }

    /// The campaign's send log.
    pub fn log_path(&self) -> PathBuf {
        self.path("essai-2026.sendlog.jsonl")
    }

    /// The send log's records about people, parsed (not its header, which names the campaign).
    pub fn log_records(&self) -> Vec<serde_json::Value> {
        let path = self.log_path();
        // A line without its newline is a write a kill interrupted: missive drops it too.
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .split_inclusive('\n')
            .filter(|l| l.ends_with('\n'))
            .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("log line is JSON"))
            .filter(|record| record["event"] != "campaign")
            .collect()
    }
}

/// A CSV of `n` valid people, `personNN@example.com`.
pub fn people(n: usize) -> String {
    let mut csv = String::from("email,first_name,last_name,amount\n");
    for i in 1..=n {
        csv.push_str(&format!(
            "person{i:02}@example.com,Prénom{i},Nom{i},{}\n",
            10 * i
        ));
    }
    csv
}

/// The recipient list with `eol` line ends: bad rows on lines 3 and 6, a quoted note over
/// lines 4 and 5.
pub fn list_with_line_ends(eol: &str) -> String {
    [
        "email,first_name,last_name,amount,note",
        "ok@example.com,Ok,,,",
        "pas-une-adresse,Bad,,,",
        "multi@example.com,Multi,,,\"deux",
        "lignes\"",
        ",Vide,,,",
        "last@example.com,Last,,,",
        "",
    ]
    .join(eol)
}

/// The repository root (for the shipped campaign).
pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A `missive send` running as a child process, its output going to files.
pub struct Running {
    child: std::process::Child,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Running {
    /// The process's id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// True while the process has not exited.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    /// SIGKILL (what `Child::kill` sends on Unix), then reaps the process.
    pub fn kill(mut self) -> Run {
        let _ = self.child.kill();
        let status = self.child.wait().expect("wait for missive");
        self.run(status)
    }

    /// Waits for the process to exit by itself, at most `limit`; kills it past that and returns
    /// `Err` with what it printed.
    pub fn wait(mut self, limit: Duration) -> Result<Run, Run> {
        match super::wait_or_kill(&mut self.child, limit) {
            Ok(status) => Ok(self.run(status)),
            Err(status) => Err(self.run(status)),
        }
    }

    fn run(&self, status: std::process::ExitStatus) -> Run {
        let read = |path: &Path| {
            String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).into_owned()
        };
        Run {
            code: status.code().unwrap_or(-1),
            stdout: read(&self.stdout),
            stderr: read(&self.stderr),
        }
    }
}

impl Fixture {
    /// Starts `missive send <campaign> --smtp <url> [more…]` without waiting for it.
    pub fn start_send(&self, smtp_url: &str, more: &[&str]) -> Running {
        self.start_send_with(smtp_url, more, &[])
    }

    /// [`Fixture::start_send`] with `env` added to the environment (a database's password).
    pub fn start_send_with(&self, smtp_url: &str, more: &[&str], env: &[(&str, &str)]) -> Running {
        static RUNS: AtomicUsize = AtomicUsize::new(0);
        let n = RUNS.fetch_add(1, Ordering::SeqCst);
        let stdout = self.path(&format!("run-{n}.stdout"));
        let stderr = self.path(&format!("run-{n}.stderr"));
        let campaign = self.campaign();
        let child = Command::new(env!("CARGO_BIN_EXE_missive"))
            .args(["send", campaign.to_str().unwrap(), "--smtp", smtp_url])
            .args(more)
            .current_dir(std::env::temp_dir())
            .env_remove("MISSIVE_SMTP_PASSWORD")
            .env_remove("MISSIVE_UNSUBSCRIBE_SECRET")
            .env_remove("MISSIVE_LOG")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("start missive");
        Running {
            child,
            stdout,
            stderr,
        }
    }

    /// `missive status --json`, parsed.
    pub fn status(&self) -> serde_json::Value {
        let run = self.command("status", &["--json"]);
        assert_eq!(run.code, 0, "{}", run.all());
        serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.all()))
    }

    /// When the earliest deferred message falls due, according to the log.
    pub fn next_retry(&self) -> Option<SystemTime> {
        let mut latest = std::collections::HashMap::new();
        for record in self.log_records() {
            latest.insert(record["rcpt"].as_str().unwrap_or("").to_owned(), record);
        }
        latest
            .values()
            .filter(|r| r["event"] == "deferred")
            .filter_map(|r| humantime::parse_rfc3339(r["retry_at"].as_str()?).ok())
            .min()
    }

    /// Runs `send` against `smtp_url` until it exits 0, at most `max_runs` times; between runs
    /// that leave deferred messages, waits until the earliest is due. Checks `between` after
    /// each run. Returns every run; panics with their output when the campaign never finishes.
    pub fn send_until_done(
        &self,
        smtp_url: &str,
        max_runs: usize,
        mut between: impl FnMut(&Run),
    ) -> Vec<Run> {
        let mut runs = Vec::new();
        for _ in 0..max_runs {
            let run = self
                .start_send(smtp_url, &[])
                .wait(RUN_LIMIT)
                .unwrap_or_else(|run| panic!("a run took over {RUN_LIMIT:?}: {}", run.all()));
            assert!([0, 75].contains(&run.code), "{}", run.all());
            between(&run);
            let done = run.code == 0;
            runs.push(run);
            if done {
                return runs;
            }
            if let Some(due) = self.next_retry()
                && let Ok(wait) = due.duration_since(SystemTime::now())
            {
                std::thread::sleep(wait);
            }
        }
        let outputs: Vec<String> = runs.iter().map(Run::all).collect();
        panic!("not done after {max_runs} runs:\n{}", outputs.join("\n"));
    }
}

/// No run of a test campaign should take longer.
pub const RUN_LIMIT: Duration = Duration::from_secs(20);
