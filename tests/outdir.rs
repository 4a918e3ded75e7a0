//! The folders missive writes into: `preview --out DIR` never writes through a link it finds
//! there, and every dry run gets an outbox folder of its own, even two started in one second.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::support::harness::{Fixture, people};
use mail_parser::MessageParser;

#[cfg(unix)]
#[test]
fn preview_replaces_links_in_its_folder_and_never_writes_through_them() {
    let fixture = Fixture::new(&people(2), "");
    let out = fixture.path("apercu");
    std::fs::create_dir_all(&out).unwrap();
    // What a hostile neighbour plants in a shared folder: links, under the names preview is
    // about to write, to files of the user's outside it.
    let mut outside = Vec::new();
    for (i, name) in [
        "00002-person01@example.com.html",
        "00002-person01@example.com.txt",
        "00002-person01@example.com.eml",
        "screenshot.html",
    ]
    .into_iter()
    .enumerate()
    {
        let target = fixture.path(&format!("precious-{i}.txt"));
        std::fs::write(&target, format!("precious {i}\n")).unwrap();
        std::os::unix::fs::symlink(&target, out.join(name)).unwrap();
        outside.push(target);
    }
    // A hard link, too: writing into it would change the file it shares with.
    let shared = fixture.path("precious-hard.txt");
    std::fs::write(&shared, "precious hard\n").unwrap();
    std::fs::hard_link(&shared, out.join("00003-person02@example.com.txt")).unwrap();

    let run = fixture.command("preview", &["--out", out.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}", run.all());

    for (i, target) in outside.iter().enumerate() {
        let after = std::fs::read(target).unwrap();
        assert!(
            after == format!("precious {i}\n").into_bytes(),
            "{} was written through a link: it now starts {:?}",
            target.display(),
            String::from_utf8_lossy(&after[..after.len().min(60)])
        );
    }
    assert_eq!(std::fs::read(&shared).unwrap(), b"precious hard\n");
    // The preview itself is there, in plain files.
    for name in [
        "00002-person01@example.com.html",
        "00002-person01@example.com.eml",
        "00003-person02@example.com.txt",
        "screenshot.html",
    ] {
        let path = out.join(name);
        assert!(
            std::fs::symlink_metadata(&path).unwrap().is_file(),
            "{name} is a plain file"
        );
    }
    let text = std::fs::read_to_string(out.join("00002-person01@example.com.txt")).unwrap();
    assert!(text.starts_with("Bonjour Prénom1,"), "{text}");
    let leftovers: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Starts `missive send CAMPAIGN --dry-run` without waiting for it.
fn start_dry_run(fixture: &Fixture) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_missive"))
        .args(["send", fixture.campaign().to_str().unwrap(), "--dry-run"])
        .current_dir(std::env::temp_dir())
        .env_remove("MISSIVE_SMTP_PASSWORD")
        .env_remove("MISSIVE_UNSUBSCRIBE_SECRET")
        .env_remove("MISSIVE_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start missive")
}

/// The `To` address and the Message-ID of each `.eml` file in `folder`.
fn captured(folder: &Path) -> Vec<(String, String)> {
    let mut messages = Vec::new();
    for entry in std::fs::read_dir(folder).unwrap().flatten() {
        assert!(
            entry.file_name().to_string_lossy().ends_with(".eml"),
            "{:?}",
            entry.path()
        );
        let bytes = std::fs::read(entry.path()).unwrap();
        let parsed = MessageParser::default().parse(&bytes).unwrap();
        let to = parsed.to().unwrap().first().unwrap().address().unwrap();
        let id = parsed.message_id().unwrap();
        messages.push((to.to_lowercase(), id.to_owned()));
    }
    messages
}

#[test]
fn two_dry_runs_started_in_the_same_second_each_keep_every_message() {
    const PEOPLE: usize = 12;
    let extra = format!(
        "[dry_run]\nsmtp = \"smtp://127.0.0.1:{}\"\noutbox = \"boite\"\n",
        closed_port()
    );
    let fixture = Fixture::new(&people(PEOPLE), &extra);
    // Start both just past the turn of a second, so that both name their folder in that second.
    let into_second = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_millis();
    std::thread::sleep(Duration::from_millis(u64::from(1050 - into_second)));
    let runs = [start_dry_run(&fixture), start_dry_run(&fixture)];
    let outputs: Vec<_> = runs
        .into_iter()
        .map(|child| child.wait_with_output().unwrap())
        .collect();
    let mut announced = BTreeSet::new();
    for output in &outputs {
        let stdout = String::from_utf8_lossy(&output.stdout);
        let all = format!("{stdout}{}", String::from_utf8_lossy(&output.stderr));
        assert_eq!(output.status.code(), Some(0), "{all}");
        assert!(
            stdout.contains(&format!("{PEOPLE} message(s) captured")),
            "{all}"
        );
        let folder = stdout
            .lines()
            .find_map(|line| line.split(" .eml files in ").nth(1))
            .unwrap_or_else(|| panic!("names its folder: {all}"));
        announced.insert(PathBuf::from(folder));
    }
    assert_eq!(announced.len(), 2, "each run its own folder: {announced:?}");

    let folders: BTreeSet<PathBuf> = std::fs::read_dir(fixture.path("boite"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(folders, announced);
    let expected: BTreeSet<String> = (1..=PEOPLE)
        .map(|i| format!("person{i:02}@example.com"))
        .collect();
    let mut ids_of_runs = Vec::new();
    for folder in &folders {
        let messages = captured(folder);
        assert_eq!(messages.len(), PEOPLE, "{}", folder.display());
        let to: BTreeSet<String> = messages.iter().map(|(to, _)| to.clone()).collect();
        assert_eq!(to, expected, "{}", folder.display());
        let ids: BTreeSet<String> = messages.iter().map(|(_, id)| id.clone()).collect();
        assert_eq!(ids.len(), PEOPLE, "{}", folder.display());
        ids_of_runs.push(ids);
    }
    // The same people, so the same Message-IDs: each folder holds one whole run.
    assert_eq!(ids_of_runs[0], ids_of_runs[1]);
}
