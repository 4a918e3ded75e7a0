//! What an operator of the PostgreSQL send log meets outside the happy path, found by an audit
//! of it: a file imported again once senders have taken the campaign further in the database,
//! and a database whose TLS certificate missive refuses, which must say what to do. The real
//! binary, a real database and the test SMTP server.

use crate::pg_send::{ENV, records};
use crate::support::harness::{Fixture, RUN_LIMIT, Run, people};
use crate::support::postgres::PgServer;
use crate::support::smtp_server::{Behavior, SmtpServer};
use crate::support::tls::TestCa;

fn log(fixture: &Fixture, args: &[&str]) -> Run {
    let campaign = fixture.campaign();
    let mut all = vec!["log", args[0], campaign.to_str().unwrap()];
    all.extend_from_slice(&args[1..]);
    fixture.run(&all, &ENV)
}

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
