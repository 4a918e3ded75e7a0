//! TEMPORARY stand-in for the shared `Appender` (main will bring the real one: flock, catching
//! up on other processes' lines). Same interface, so the endpoint builds and tests meanwhile.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::{Reason, SuppressionError};
use crate::address::RecipientKey;

pub struct Appender {
    path: PathBuf,
    reason: Reason,
    file: File,
    known: HashSet<RecipientKey>,
}

impl Appender {
    pub fn open(path: &Path, reason: Reason) -> Result<Appender, SuppressionError> {
        let error = |source| SuppressionError::Read {
            path: path.to_owned(),
            reason,
            source,
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(error)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(path)
            .map_err(error)?;
        let text = std::fs::read_to_string(path).map_err(error)?;
        let known = text.lines().map(|l| RecipientKey::of(l.trim())).collect();
        Ok(Appender {
            path: path.to_owned(),
            reason,
            file,
            known,
        })
    }

    pub fn add(&mut self, addresses: &[&str]) -> Result<Vec<bool>, SuppressionError> {
        let mut out = String::new();
        let mut added = Vec::new();
        for address in addresses {
            let new = self.known.insert(RecipientKey::of(address));
            if new {
                out.push_str(address);
                out.push('\n');
            }
            added.push(new);
        }
        let error = |source| SuppressionError::Read {
            path: self.path.clone(),
            reason: self.reason,
            source,
        };
        self.file.write_all(out.as_bytes()).map_err(error)?;
        self.file.sync_data().map_err(error)?;
        Ok(added)
    }
}
