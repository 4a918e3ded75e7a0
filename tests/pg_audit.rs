//! What an operator of the PostgreSQL send log meets outside the happy path, found by an audit
//! of it: a file imported again once senders have taken the campaign further in the database,
//! a database whose TLS certificate missive refuses, which must say what to do, and senders
//! started together with different letters (one host's campaign left behind). The real binary,
//! a real database and the test SMTP server.

use crate::pg_move::log;
use crate::pg_send::{ENV, records};
use crate::support::harness::{Fixture, LETTER, RUN_LIMIT, Run, people};
use crate::support::postgres::PgServer;
use crate::support::smtp_server::{Behavior, SmtpServer};
use crate::support::tls::TestCa;

#[test]
#[cfg_attr(
    not(feature = "db-tests"),
    ignore = "needs a PostgreSQL server: left to CI; run `cargo test --features db-tests --test tests pg_audit::` (bash .ci/run does)"
)]
fn the_same_file_imported_again_after_senders_went_on_writes_nothing_and_succeeds() {
    let server = PgServer::start();
    let smtp = SmtpServer::start_in_background(Behavior::accept_all());
    let fixture = Fixture::new(&people(30), "[smtp]\npool_size = 2\n");
    let url = server.url();
    let run = fixture.send(&smtp.url(), &["--max-messages", "10"]);
    assert_eq!(run.code, 75, "{}", run.all());
    let file = fixture.log_path();
    let file_arg = file.to_str().unwrap();
    let run = log(&fixture, &["import", "--to", &url]);
    assert_eq!(run.code, 0, "{}", run.all());
    // The database goes on without the file.
    let run = fixture
        .start_send_with(&smtp.url(), &["--max-messages", "5"], &ENV)
        .wait(RUN_LIMIT)
        .unwrap_or_else(|run| panic!("{}", run.all()));
    assert_eq!(run.code, 75, "{}", run.all());
    let there = records(&server);
    assert_eq!(there.len(), 2 * 15, "{there:?}");

    // A deployment script imports the file again (the README: "writes nothing").
    let run = log(&fixture, &["import", "--from", file_arg, "--to", &url]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(run.stdout.contains("already"), "{}", run.all());
    assert!(!run.stderr.contains("bug"), "{}", run.all());
    assert_eq!(records(&server), there, "nothing written");
    assert_eq!(smtp.journal().accepted().count(), 15);
}

#[test]
#[cfg_attr(
    not(feature = "db-tests"),
    ignore = "needs a PostgreSQL server: left to CI; run `cargo test --features db-tests --test tests pg_audit::` (bash .ci/run does)"
)]
fn a_refused_database_certificate_says_which_authority_and_what_to_do() {
    let server = PgServer::start();
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::generate(dir.path(), "pg");
    let other = TestCa::generate(dir.path(), "other");
    let fixture = Fixture::new(&people(3), "");
    let campaign = fixture.campaign();
    let status = |authority: &std::path::Path| {
        let url = format!(
            "{}?sslmode=verify-full&sslrootcert={}",
            server.url(),
            authority.display()
        );
        let args = ["status", campaign.to_str().unwrap(), "--log", &url];
        fixture.run(&args, &ENV)
    };

    // A self-signed authority's certificate served as the database's own, as PostgreSQL's
    // documentation makes one (`openssl req -x509`), and given as sslrootcert.
    server.enable_tls(&ca.ca, &dir.path().join("pg-ca-key.pem"));
    let run = status(&ca.ca);
    assert_eq!(run.code, 65, "{}", run.all());
    assert!(run.stderr.contains("CA:FALSE"), "{}", run.all());
    assert!(!run.stderr.contains("web's"), "{}", run.all());

    // A certificate signed by another authority than sslrootcert's.
    let (cert, key) = ca.server_files();
    server.enable_tls(cert, key);
    let run = status(&other.ca);
    assert_eq!(run.code, 65, "{}", run.all());
    assert!(
        run.stderr.contains("the authority sslrootcert"),
        "{}",
        run.all()
    );
    assert!(!run.stderr.contains("web's"), "{}", run.all());

    // The authority that signed it: verified, and read.
    let run = status(&ca.ca);
    assert_eq!(run.code, 0, "{}", run.all());
}

/// The letters the database's people were sent (or attempted) with.
fn letters(server: &PgServer) -> Vec<String> {
    server
        .sql("SELECT DISTINCT letter FROM missive.people WHERE letter IS NOT NULL ORDER BY 1")
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
#[cfg_attr(
    not(feature = "db-tests"),
    ignore = "needs a PostgreSQL server: left to CI; run `cargo test --features db-tests --test tests pg_audit::` (bash .ci/run does)"
)]
fn senders_started_together_with_different_letters_never_mail_both() {
    const PEOPLE: usize = 200;
    let server = PgServer::start();
    let behavior = Behavior::accept_all().reply_delay(std::time::Duration::from_millis(10));
    let smtp = SmtpServer::start_in_background(behavior);
    let extra = format!("send_log = \"{}\"\n[smtp]\npool_size = 4\n", server.url());
    // Two hosts of one campaign, one of them left with last week's letter.
    let current = Fixture::new(&people(PEOPLE), &extra);
    let stale = Fixture::with_letter(&LETTER.replace("Bonjour", "Salut"), &people(PEOPLE), &extra);

    let send = |fixture: &Fixture, more: &[&str]| {
        fixture
            .start_send_with(&smtp.url(), more, &ENV)
            .wait(RUN_LIMIT)
            .unwrap_or_else(|run| panic!("{}", run.all()))
    };

    // A sender of another letter holds a live lease and has written nothing yet.
    let run = send(&current, &["--max-messages", "0"]);
    assert_eq!(run.code, 75, "{}", run.all());
    server.sql(
        "INSERT INTO missive.senders (campaign, host, pid, lease_until, letter) \
         SELECT id, 'host-a', 1, now() + interval '1 hour', 'feedfacefeedface' \
         FROM missive.campaigns",
    );
    let run = send(&current, &[]);
    assert_eq!(run.code, 65, "{}", run.all());
    assert!(
        run.stderr.contains("feedfacefeedface") && run.stderr.contains("missive.senders"),
        "{}",
        run.all()
    );
    assert_eq!(smtp.journal().accepted().count(), 0, "nobody mailed");
    assert!(letters(&server).is_empty());
    // Told that the letter changed on purpose, it sends.
    let run = send(&current, &["--max-messages", "3", "--allow-changed-letter"]);
    assert_eq!(run.code, 75, "{}", run.all());
    assert_eq!(smtp.journal().accepted().count(), 3);
    server.sql(
        "DELETE FROM missive.people; DELETE FROM missive.records; DELETE FROM missive.senders",
    );

    // Cron starts both hosts at the same minute, on a campaign nobody has mailed yet.
    let senders = [
        current.start_send_with(&smtp.url(), &[], &ENV),
        stale.start_send_with(&smtp.url(), &[], &ENV),
    ];
    let runs: Vec<Run> = senders
        .into_iter()
        .map(|sender| {
            sender
                .wait(RUN_LIMIT)
                .unwrap_or_else(|run| panic!("{}", run.all()))
        })
        .collect();
    let said: String = runs.iter().map(Run::all).collect();
    assert!(
        letters(&server).len() <= 1,
        "{:?}\n{said}",
        letters(&server)
    );
    assert!(runs.iter().any(|run| run.code == 65), "{said}");
}
