//! The folders missive writes into: `preview --out DIR` never writes through a link it finds
//! there, and every dry run gets an outbox folder of its own, even two started in one second.

mod support;

use support::harness::{Fixture, people};

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
