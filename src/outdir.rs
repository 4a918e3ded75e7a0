//! Writing into folders missive does not own: the folder `preview --out` names (often a shared
//! `/tmp`), and the dry run's outbox, which several runs share.
//!
//! Someone else may have put entries there first, so nothing here opens an existing name for
//! writing: a file is written under a fresh name and renamed into place (the rename replaces a
//! link planted under that name, never what it points to, and leaves a hard-linked file alone),
//! and a folder is created, never reused.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// How many names [`create_folder`] and [`replace_file`] try before giving up: enough for every
/// run one second could start, and a bound against a folder filled on purpose.
const ATTEMPTS: u32 = 1000;

/// Writes `bytes` as `dir/name`, replacing whatever entry has that name (a file of an earlier
/// preview, or a link someone planted) without writing through it. Fails if `dir` does not
/// exist or another process keeps taking the temporary names.
pub fn replace_file(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<PathBuf> {
    let path = dir.join(name);
    // By hand rather than with `tempfile`: its files are 0600, and a preview should get the
    // permissions any file the user writes gets (0666 less the umask), as it did before.
    for attempt in 0..ATTEMPTS {
        let temporary = dir.join(format!(".{name}.{}-{attempt}.tmp", std::process::id()));
        let mut file = match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temporary)
        {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        };
        let written = file
            .write_all(bytes)
            .and_then(|()| std::fs::rename(&temporary, &path));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&temporary);
            return Err(e);
        }
        return Ok(path);
    }
    Err(taken(dir, name))
}

/// Creates a new folder `parent/name` (and `parent` if missing), or `name-2`, `name-3`… when
/// that exists: a folder no one else is writing into, never one an earlier or concurrent run
/// made. Returns its path.
pub fn create_folder(parent: &Path, name: &str) -> io::Result<PathBuf> {
    std::fs::create_dir_all(parent)?;
    for attempt in 1..=ATTEMPTS {
        let path = match attempt {
            1 => parent.join(name),
            n => parent.join(format!("{name}-{n}")),
        };
        match std::fs::create_dir(&path) {
            Ok(()) => return Ok(path),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(taken(parent, name))
}

fn taken(dir: &Path, name: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::AlreadyExists,
        format!(
            "{ATTEMPTS} names like {name} are taken in {}; empty that folder",
            dir.display()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_are_never_shared() {
        let dir = tempfile::tempdir().unwrap();
        let parent = dir.path().join("outbox");
        let first = create_folder(&parent, "run").unwrap();
        let second = create_folder(&parent, "run").unwrap();
        std::fs::write(parent.join("run-3"), "a file, not a folder").unwrap();
        let third = create_folder(&parent, "run").unwrap();
        assert_eq!(first, parent.join("run"));
        assert_eq!(second, parent.join("run-2"));
        assert_eq!(third, parent.join("run-4"));
    }

    #[test]
    fn a_file_replaces_the_old_one_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        replace_file(dir.path(), "a.txt", b"old").unwrap();
        let path = replace_file(dir.path(), "a.txt", b"new").unwrap();
        assert_eq!(std::fs::read(path).unwrap(), b"new");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[cfg(unix)]
    #[test]
    fn a_link_is_replaced_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside.txt");
        std::fs::write(&outside, "mine").unwrap();
        let out = dir.path().join("out");
        std::fs::create_dir(&out).unwrap();
        std::os::unix::fs::symlink(&outside, out.join("a.txt")).unwrap();
        replace_file(&out, "a.txt", b"preview").unwrap();
        assert_eq!(std::fs::read(&outside).unwrap(), b"mine");
        assert!(
            std::fs::symlink_metadata(out.join("a.txt"))
                .unwrap()
                .is_file()
        );
        assert_eq!(std::fs::read(out.join("a.txt")).unwrap(), b"preview");
    }
}
