//! The `preview` command: each message as `.eml`, `.html` and `.txt` files, and a page a person
//! (or a headless browser taking screenshots) can look at.

use std::path::Path;
use std::time::SystemTime;

use anyhow::{Context, bail};

use crate::address::RecipientKey;
use crate::capture::file_safe;
use crate::outdir;
use crate::recipients::Row;

use super::{Exit, Loaded};
use page::{Envelope, screenshot_page};

mod page;

/// The page `preview` writes for a person (or a headless browser) to look at.
pub const SCREENSHOT_PAGE: &str = "screenshot.html";

pub(super) fn preview(loaded: &Loaded, out: &Path, only: Option<&str>) -> anyhow::Result<Exit> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let only_key = only.map(RecipientKey::of);
    let mut reader = loaded.recipients()?;
    let mut written = 0;
    while let Some(row) = reader.next_row()? {
        let recipient = match row {
            Row::Valid(recipient) => recipient,
            Row::Rejected(error) => {
                eprintln!("skipped: {}", error.at(&loaded.recipients_path));
                continue;
            }
            Row::Suppressed(recipient, reason) => {
                eprintln!(
                    "skipped: {}:{}: {} is suppressed ({reason}): never mailed",
                    loaded.recipients_path.display(),
                    recipient.line,
                    recipient.email
                );
                continue;
            }
        };
        if only_key.is_some_and(|key| recipient.key != key) {
            continue;
        }
        let rendered = loaded.template.render(&recipient);
        let stem = format!(
            "{:05}-{}",
            recipient.line,
            file_safe(recipient.email.as_ref())
        );
        let write = |extension: &str, bytes: &[u8]| {
            // Not `with_extension`: it would eat the address's `.com`.
            let name = format!("{stem}.{extension}");
            outdir::replace_file(out, &name, bytes)
                .with_context(|| format!("cannot write {}", out.join(&name).display()))
        };
        write("html", rendered.html.as_bytes())?;
        write("txt", rendered.text.as_bytes())?;
        if written == 0 {
            // The first message also as a page to look at (or screenshot) in a browser.
            let to = recipient.email.to_string();
            let from = loaded.campaign.from.to_string();
            // The person's own letter's words.
            let letter = &loaded.campaign.letters[rendered.letter];
            let page = screenshot_page(
                &rendered.html,
                &Envelope {
                    from: &from,
                    to: &to,
                    subject: &letter.subject,
                    preheader: &letter.preheader,
                },
            );
            outdir::replace_file(out, SCREENSHOT_PAGE, page.as_bytes())
                .with_context(|| format!("cannot write {}", out.join(SCREENSHOT_PAGE).display()))?;
        }
        let message = loaded
            .composer
            .compose(&recipient, rendered, SystemTime::now())?;
        write("eml", &message.formatted())?;
        written += 1;
    }
    if let Some(only) = only
        && written == 0
    {
        bail!(
            "no valid recipient {only} in {}",
            loaded.recipients_path.display()
        );
    }
    println!(
        "wrote {written} message(s) to {}; the first one as a page to look at: {}",
        out.display(),
        out.join(SCREENSHOT_PAGE).display()
    );
    Ok(Exit::Done)
}
