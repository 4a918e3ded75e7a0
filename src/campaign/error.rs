//! What can be wrong with a campaign file, said with its file, line and key: the TOML parser's
//! refusals turned into [`CampaignError`]s that name the field to change, with any password a
//! quoted line holds masked.

use std::path::{Path, PathBuf};

use crate::error::{Classify, ErrorKind};
use crate::smtp::{mask_credentials, mask_url};

/// Why a campaign file could not be loaded. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum CampaignError {
    #[error("cannot read campaign file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The TOML is malformed, a key is unknown or missing; `message` comes from the TOML parser
    /// and names the line, column and key.
    #[error("{path}: {message}")]
    Syntax { path: PathBuf, message: String },
    /// A value is refused (or of the wrong type): `field` is its dotted key, such as `smtp.url`.
    #[error("{path}:{line}: field `{field}`: {problem}")]
    InvalidAt {
        path: PathBuf,
        line: usize,
        field: String,
        problem: String,
    },
}

impl Classify for CampaignError {
    fn kind(&self) -> ErrorKind {
        match self {
            CampaignError::Read { .. }
            | CampaignError::Syntax { .. }
            | CampaignError::InvalidAt { .. } => ErrorKind::Invalid,
        }
    }
}

/// What the TOML parser refused, as a [`CampaignError`]: a value refused by its check (or of the
/// wrong type) is named by its key and line; anything else (a syntax error, an unknown or a
/// missing key) as the parser says it, which quotes the line.
pub(super) fn toml_error(path: &Path, text: &str, error: toml::de::Error) -> CampaignError {
    if let Some(span) = error.span()
        && let Some(field) = key_of_value_at(text, span.start)
    {
        return CampaignError::InvalidAt {
            path: path.to_owned(),
            line: line_of(text, span.start),
            field,
            // The checks never quote a password; a wrong type's message may quote the value.
            problem: mask_credentials(error.message()),
        };
    }
    CampaignError::Syntax {
        path: path.to_owned(),
        // The parser quotes the line it stopped on, which may be a URL with a password.
        message: mask_quoted_lines(error.to_string().trim_end()),
    }
}

/// The parser's message with every credential masked. A line that quotes an SMTP URL is masked
/// as one URL: its password may hold a space or a quote (the very mistake that broke the
/// syntax), where [`mask_credentials`] would cut it into words and miss it.
fn mask_quoted_lines(message: &str) -> String {
    let lines: Vec<String> = message
        .lines()
        .map(|line| {
            let whole = line
                .to_ascii_lowercase()
                .contains("smtp")
                .then(|| mask_url(line))
                .flatten();
            mask_credentials(whole.as_deref().unwrap_or(line))
        })
        .collect();
    lines.join("\n")
}

/// The dotted key (`smtp.url`) of the value that holds byte `offset` of `text`, unless `offset`
/// is outside every value (on a key, or on a table's header) or `text` is not valid TOML.
fn key_of_value_at(text: &str, offset: usize) -> Option<String> {
    fn find(table: &toml::de::DeTable<'_>, offset: usize, path: &mut Vec<String>) -> bool {
        for (key, value) in table {
            path.push(key.get_ref().to_string());
            let found = match value.get_ref() {
                // A table's span may cover its header, or nothing (`[a.b]` makes `a`): look in.
                toml::de::DeValue::Table(inner) => find(inner, offset, path),
                _ => value.span().contains(&offset),
            };
            if found {
                return true;
            }
            path.pop();
        }
        false
    }
    let document = toml::de::DeTable::parse(text).ok()?;
    let mut path = Vec::new();
    find(document.get_ref(), offset, &mut path).then(|| path.join("."))
}

/// The line (from 1) of byte `offset` of `text`.
pub(super) fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}
