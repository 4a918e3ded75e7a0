//! What `check` says of a campaign's letters in several languages: a letter whose fields
//! differ from the default letter's (someone would get a letter less personal than the others),
//! a recipient file without the language column, and how many people get each letter, with the
//! values of the column no letter matches (those people get the default letter: their rows are
//! not rejected for it).

use std::collections::BTreeMap;

use crate::language::{Languages, Match};
use crate::letter::Letter;
use crate::lint::Finding;
use crate::recipients::Recipient;

use super::Loaded;

/// The fields one letter uses that another does not, each a warning naming both letters.
pub(super) fn field_mismatches(loaded: &Loaded) -> Vec<Finding> {
    let letters = &loaded.letters;
    let languages = &loaded.campaign.letters;
    let mut findings = Vec::new();
    let (default, default_settings) = (&letters[0], &languages[0]);
    for (letter, settings) in letters.iter().zip(languages).skip(1) {
        for (has, has_language, lacks, lacks_language) in [
            (
                letter,
                &settings.language,
                default,
                &default_settings.language,
            ),
            (
                default,
                &default_settings.language,
                letter,
                &settings.language,
            ),
        ] {
            for (name, line) in missing_fields(has, lacks) {
                findings.push(Finding::warning(
                    format!("{}:{line}", has.path.display()),
                    format!(
                        "`{{{{{name}}}}}` is in the {has_language} letter ({}) and not in the \
                         {lacks_language} letter ({}): their readers get different letters",
                        has.path.display(),
                        lacks.path.display()
                    ),
                    format!("use the same fields in every letter: add `{{{{{name}}}}}` to the {lacks_language} one, or remove it here"),
                ));
            }
        }
    }
    findings
}

/// The fields of `has` (each once, at its first line) that `lacks` does not use.
fn missing_fields<'a>(has: &'a Letter, lacks: &Letter) -> Vec<(&'a str, usize)> {
    let others = lacks.fields();
    let mut seen = Vec::new();
    for (name, line) in has.fields() {
        if !others.iter().any(|(other, _)| *other == name) && !seen.iter().any(|(n, _)| *n == name)
        {
            seen.push((name, line));
        }
    }
    seen
}

/// How many people get each letter, and the values of the language column no letter matches.
pub(super) struct Counts<'a> {
    languages: &'a Languages,
    per_letter: Vec<u64>,
    empty: u64,
    /// Each unknown value (as written, trimmed): how many rows, and the first one's line; the
    /// first [`UNKNOWN_SHOWN`] values only.
    unknown: BTreeMap<String, (u64, u64)>,
    /// Rows with an unknown value past those: a column of free text (a name chosen as the
    /// language column by mistake) would otherwise make a warning, and hold a value, a row.
    other_unknown: u64,
}

/// How many values no letter matches `check` names, each with a warning of its own.
const UNKNOWN_SHOWN: usize = 20;

impl<'a> Counts<'a> {
    pub(super) fn new(languages: &'a Languages) -> Counts<'a> {
        Counts {
            languages,
            per_letter: vec![0; languages.tags().len()],
            empty: 0,
            unknown: BTreeMap::new(),
            other_unknown: 0,
        }
    }

    /// Counts `recipient` with the letter they get.
    pub(super) fn add(&mut self, recipient: &Recipient) {
        let value = recipient.field(self.languages.column());
        let (index, how) = self.languages.choose(value);
        self.per_letter[index] += 1;
        match how {
            Match::Empty => self.empty += 1,
            Match::Unknown => {
                let value = value.unwrap_or("").trim();
                if let Some(entry) = self.unknown.get_mut(value) {
                    entry.0 += 1;
                } else if self.unknown.len() < UNKNOWN_SHOWN {
                    self.unknown.insert(value.to_owned(), (1, recipient.line));
                } else {
                    self.other_unknown += 1;
                }
            }
            Match::Exact | Match::Fallback => {}
        }
    }

    /// A warning for each value no letter matches, at its first row.
    pub(super) fn findings(&self, recipients: &std::path::Path) -> Vec<Finding> {
        let tags = self.languages.tags();
        let default = &tags[self.languages.default()];
        self.unknown
            .iter()
            .map(|(value, (rows, line))| {
                Finding::warning(
                    format!(
                        "{}:{line}: column `{}`",
                        recipients.display(),
                        self.languages.column()
                    ),
                    format!(
                        "{value:?} names no letter ({rows} row(s), the first here): they get the \
                         {default} letter"
                    ),
                    // The value as the list holds it may be anything (a line break, a
                    // terminal's escape): a section is offered only when its name would load.
                    match is_tag(value) {
                        true => format!(
                            "write one of {}, or add a [letters.{value}] section to the campaign",
                            tags.join(", ")
                        ),
                        false => format!("write one of {}", tags.join(", ")),
                    },
                )
            })
            .chain((self.other_unknown > 0).then(|| {
                Finding::warning(
                    format!(
                        "{}: column `{}`",
                        recipients.display(),
                        self.languages.column()
                    ),
                    format!(
                        "{} more row(s) hold other values no letter matches: they get the \
                         {default} letter",
                        self.other_unknown
                    ),
                    format!(
                        "write one of {}; if the column holds no languages, set \
                         `language_column` to the one that does",
                        tags.join(", ")
                    ),
                )
            }))
            .collect()
    }

    /// One line: `letters by column `language`: fr 26, en 5 (3 with no language and 1 with an
    /// unknown one get fr)`.
    pub(super) fn summary(&self) -> String {
        let tags = self.languages.tags();
        let counts: Vec<String> = tags
            .iter()
            .zip(&self.per_letter)
            .map(|(tag, n)| format!("{tag} {n}"))
            .collect();
        let unknown: u64 = self.unknown.values().map(|(n, _)| n).sum::<u64>() + self.other_unknown;
        let default = &tags[self.languages.default()];
        format!(
            "letters by column `{}`: {} ({} with no language and {unknown} with an unknown one \
             get {default})",
            self.languages.column(),
            counts.join(", "),
            self.empty,
        )
    }
}

/// True when `value` may name a `[letters.<language>]` section, as the campaign file reads
/// one.
fn is_tag(value: &str) -> bool {
    !value.is_empty() && value.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// A warning when the recipient file has no language column: everyone gets the default letter.
pub(super) fn missing_column(loaded: &Loaded, columns: &[String]) -> Option<Finding> {
    let languages = loaded.template.languages()?;
    if columns.iter().any(|c| c == languages.column()) {
        return None;
    }
    Some(Finding::warning(
        loaded.recipients_path.display().to_string(),
        format!(
            "no column `{}`: everyone gets the {} letter (its columns are {})",
            languages.column(),
            languages.tags()[languages.default()],
            columns.join(", ")
        ),
        "add the column (fr, en, …), or set `language_column` to the column that holds it",
    ))
}
