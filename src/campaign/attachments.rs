//! `attachments` in the campaign file: each path resolved against the campaign's folder, and
//! refused when it leaves it.

use std::path::{Path, PathBuf};

/// A file to attach, and the line of the campaign file that names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachmentPath {
    pub path: PathBuf,
    pub line: usize,
}

/// `relative` resolved against `base`, refused when it leaves `base`: by `..`, by being absolute
/// elsewhere, or through a symbolic link. A campaign names files to send to every person; one
/// that leaves its folder is a mistake or a trap (`../../.ssh/id_rsa`).
pub fn inside(base: &Path, relative: &Path) -> Result<PathBuf, String> {
    use std::path::Component;
    let refuse = || {
        format!(
            "{} leaves the campaign's folder: attach only files inside it (copy the file there)",
            relative.display()
        )
    };
    let joined = base.join(relative);
    let lexical_out = relative
        .components()
        .any(|c| matches!(c, Component::ParentDir))
        || (relative.is_absolute() && !relative.starts_with(base));
    if lexical_out {
        return Err(refuse());
    }
    // Through links: where the file really is (a missing file is reported when it is read).
    if let (Ok(real), Ok(real_base)) = (joined.canonicalize(), base.canonicalize())
        && !real.starts_with(&real_base)
    {
        return Err(refuse());
    }
    Ok(joined)
}
