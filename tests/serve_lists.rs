//! `missive serve` runs for months while people tend its unsubscribed file by hand: someone who
//! wrote "please keep mailing me" has their line removed, an editor or `sed -i` rewrites the
//! file under a new inode. A later one-click POST must still land in the file the campaign reads.

use crate::support::http::{Serving, campaign, one_click, runtime, target, unsubscribed};

#[test]
fn a_person_removed_from_the_list_by_hand_can_unsubscribe_again() {
    let fixture = campaign(3);
    let serving = Serving::start(&[&fixture.campaign()]);
    let marie = target("person01@example.com");
    let zoe = target("person02@example.com");
    runtime().block_on(async {
        for link in [&marie, &zoe] {
            let done = one_click(serving.addr, link).await;
            assert_eq!(done.status, 200, "{done:?}");
        }
        assert_eq!(
            unsubscribed(&fixture),
            "person01@example.com\nperson02@example.com\n"
        );
        // She wrote to say she wants the letters after all: her line goes (in place, as
        // `truncate` and a rewrite by `echo >` do).
        let path = fixture.path("suppression/unsubscribed.txt");
        std::fs::write(&path, "person02@example.com\n").unwrap();
        // Months later she clicks the link again.
        let again = one_click(serving.addr, &marie).await;
        assert_eq!(again.status, 200, "{again:?}");
        assert_eq!(
            unsubscribed(&fixture),
            "person02@example.com\nperson01@example.com\n",
            "a 200 said she is unsubscribed: her address must be in the file"
        );
    });
}

#[test]
fn a_list_replaced_under_a_new_inode_gets_the_next_unsubscribes() {
    let fixture = campaign(3);
    let serving = Serving::start(&[&fixture.campaign()]);
    runtime().block_on(async {
        let first = target("person01@example.com");
        let done = one_click(serving.addr, &first).await;
        assert_eq!(done.status, 200, "{done:?}");
        // What `sed -i`, most editors and a deploy script do: a new file renamed over the old.
        let path = fixture.path("suppression/unsubscribed.txt");
        let new = fixture.path("suppression/unsubscribed.txt.new");
        std::fs::write(&new, "# tended by hand\nperson01@example.com\n").unwrap();
        std::fs::rename(&new, &path).unwrap();
        let second = target("person02@example.com");
        let done = one_click(serving.addr, &second).await;
        assert_eq!(done.status, 200, "{done:?}");
        assert_eq!(
            unsubscribed(&fixture),
            "# tended by hand\nperson01@example.com\nperson02@example.com\n"
        );
        // The file may also vanish (moved away to archive it): the next one creates it again.
        std::fs::rename(&path, fixture.path("suppression/archived.txt")).unwrap();
        let third = target("person03@example.com");
        let done = one_click(serving.addr, &third).await;
        assert_eq!(done.status, 200, "{done:?}");
        assert_eq!(unsubscribed(&fixture), "person03@example.com\n");
    });
}
