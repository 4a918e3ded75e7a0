//! `attachments` in the campaign file: each path resolved against the campaign's folder, and
//! refused when it leaves it.

use std::path::PathBuf;

pub use crate::message::inside;

/// A file to attach, and the line of the campaign file that names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachmentPath {
    pub path: PathBuf,
    pub line: usize,
}

/// `attachment_column`: the recipient column naming each person's file, and its line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachmentColumn {
    pub name: String,
    pub line: usize,
}
