//! Where `missive bounces` finds messages: files of one message, mbox files, Maildir folders
//! (`new/` and `cur/`), and standard input (`-`, what Postfix's `pipe` hands over).
//!
//! It only ever reads: a message is never moved, deleted, renamed or flagged (a Maildir's flags
//! are its mail reader's), so what missive cannot understand stays where a person can look.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

/// Calls `each(source, bytes)` for every message under `paths`, in the order given: a Maildir's
/// `new/` then `cur/`, each by name; an mbox's messages in file order (`file#1`, `file#2`…).
pub(super) fn each_message(
    paths: &[PathBuf],
    each: &mut dyn FnMut(String, &[u8]),
) -> anyhow::Result<()> {
    for path in paths {
        if path.as_os_str() == "-" {
            let mut raw = Vec::new();
            std::io::stdin()
                .lock()
                .read_to_end(&mut raw)
                .context("cannot read standard input")?;
            split("-", &raw, each);
        } else if path.is_dir() {
            maildir(path, each)?;
        } else {
            let raw = std::fs::read(path).with_context(|| {
                format!(
                    "{}: cannot read it (give files, Maildir folders, mbox files, or - for \
                     standard input)",
                    path.display()
                )
            })?;
            split(&path.display().to_string(), &raw, each);
        }
    }
    Ok(())
}

/// One message, or the messages of an mbox (which starts with a `From ` line).
fn split(source: &str, raw: &[u8], each: &mut dyn FnMut(String, &[u8])) {
    // Nothing (an empty pipe, a file being written): no message, not an unknown one to record.
    if raw.iter().all(u8::is_ascii_whitespace) {
        return;
    }
    if !raw.starts_with(b"From ") {
        each(source.to_owned(), raw);
        return;
    }
    // mail-parser splits at `From ` lines and unquotes `>From ` (mboxrd, and mboxo alike).
    let messages = mail_parser::mailbox::mbox::MessageIterator::new(raw);
    for (n, message) in messages.enumerate() {
        // Reading from memory cannot fail.
        if let Ok(message) = message {
            each(format!("{source}#{}", n + 1), message.contents());
        }
    }
}

fn maildir(dir: &Path, each: &mut dyn FnMut(String, &[u8])) -> anyhow::Result<()> {
    let folders: Vec<PathBuf> = ["new", "cur"]
        .iter()
        .map(|name| dir.join(name))
        .filter(|folder| folder.is_dir())
        .collect();
    if folders.is_empty() {
        bail!(
            "{}: a folder without new/ or cur/, so not a Maildir; give the Maildir itself (or one \
             of its subfolders such as .Bounces), or the files",
            dir.display()
        );
    }
    for folder in folders {
        let entries = std::fs::read_dir(&folder)
            .with_context(|| format!("{}: cannot list the folder", folder.display()))?;
        let mut files = Vec::new();
        for entry in entries {
            let entry = entry.with_context(|| format!("{}: cannot list it", folder.display()))?;
            let hidden = entry.file_name().to_string_lossy().starts_with('.');
            if !hidden && entry.file_type().is_ok_and(|t| t.is_file()) {
                files.push(entry.path());
            }
        }
        files.sort();
        for file in files {
            match std::fs::read(&file) {
                Ok(raw) => each(file.display().to_string(), &raw),
                // A mail reader moved it from new/ to cur/ meanwhile: the next run reads it there.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(e).with_context(|| format!("{}: cannot read it", file.display()));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sources(raw: &[u8]) -> Vec<String> {
        let mut found = Vec::new();
        split("-", raw, &mut |source, _| found.push(source));
        found
    }

    #[test]
    fn empty_input_is_no_message() {
        assert!(sources(b"").is_empty());
        assert!(sources(b"\n \r\n").is_empty());
        assert_eq!(sources(b"Subject: x\n\nhello\n"), ["-"]);
    }
}
