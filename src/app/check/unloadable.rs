//! What `check` still reports when the campaign cannot be loaded whole: the load stops at its
//! first problem (a letter that does not parse, say), but a person fixing the campaign wants
//! every problem at once, not one a run. So the other letters are read, and the recipient
//! file's rejected rows listed, each by its file and line; the load's own error ends the run
//! as it would have, exit code included.

use crate::campaign::Campaign;
use crate::letter::Letter;
use crate::recipients::{RecipientReader, Row};

use super::super::Options;
use super::super::load::check_fields;

/// Prints the problems the load did not reach, then hands back `error`, the one it stopped at.
pub(in crate::app) fn report(
    options: &Options,
    error: anyhow::Error,
) -> anyhow::Result<super::Exit> {
    // The campaign file itself is the first thing loaded: if it is the problem, there is no
    // letter or list to look at.
    let Ok(campaign) = Campaign::load(&options.campaign) else {
        return Err(error);
    };
    // The load stopped at the first letter that failed, if any: that one is `error`.
    let mut first_failure = true;
    let mut letters = Vec::new();
    for settings in &campaign.letters {
        match Letter::load(&settings.letter_path, &settings.language) {
            Ok(letter) => letters.push(letter),
            Err(problem) => {
                if !std::mem::take(&mut first_failure) {
                    println!(
                        "{}: the letter of language {:?}: {problem}",
                        campaign.path.display(),
                        settings.language
                    );
                }
            }
        }
    }
    // Then it never compared the letters' fields with the list's columns.
    let fields_unchecked = !first_failure;
    let path = options
        .recipients
        .clone()
        .unwrap_or_else(|| campaign.recipients_path.clone());
    // An unreadable list is reported by the load itself, or by the next check.
    if let Ok(mut reader) = RecipientReader::open(&path, &campaign.name_columns) {
        for letter in letters.iter().filter(|_| fields_unchecked) {
            if let Err(problem) = check_fields(letter, reader.columns().names()) {
                println!("{problem}");
            }
        }
        while let Ok(Some(row)) = reader.next_row() {
            if let Row::Rejected(rejected) = row {
                println!("{}", rejected.at(&path));
            }
        }
    }
    Err(error)
}
