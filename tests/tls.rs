//! Sending as to a real relay: STARTTLS or SMTPS, the server's certificate checked against an
//! authority made for the test (`[smtp] ca_file`), a login with the password from the
//! environment; and what a run does when the certificate cannot be trusted or the password is
//! wrong. The test SMTP server speaks TLS with rustls (`tests/support/tls.rs`).

use std::path::Path;
use std::time::Duration;

use crate::support::harness::{Fixture, Run, people};
use crate::support::smtp_server::{Behavior, SmtpServer};
use crate::support::tls::TestCa;

const USER: &str = "campagnes@example.org";
const PASSWORD: &str = "pw-Zq8-never-printed";

/// `[smtp]` with the login, trusting the authority at `ca`, giving up after two failed
/// connections in a row.
fn smtp_section(ca: Option<&Path>) -> String {
    let ca = ca.map_or(String::new(), |ca| format!("ca_file = {:?}\n", ca));
    format!("[smtp]\nusername = \"{USER}\"\nmax_connect_failures = 2\n{ca}")
}

/// A relay with its own authority, speaking STARTTLS (or, `implicit`, TLS from the first byte)
/// and requiring the login, behaving as `behavior` says otherwise. The directory holds the
/// certificates: keep it as long as the server.
fn tls_relay(implicit: bool, behavior: Behavior) -> (tempfile::TempDir, TestCa, SmtpServer) {
    let certs = tempfile::tempdir().unwrap();
    let authority = TestCa::generate(certs.path(), "relay");
    let server = SmtpServer::start_in_background(
        behavior
            .with_tls(authority.acceptor(), implicit)
            .requiring_login(USER, PASSWORD),
    );
    (certs, authority, server)
}

fn send(fixture: &Fixture, url: &str, password: &str) -> Run {
    let campaign = fixture.campaign();
    fixture.run(
        &["send", campaign.to_str().unwrap(), "--smtp", url],
        &[("MISSIVE_SMTP_PASSWORD", password)],
    )
}

/// Neither what the run printed nor the send log holds the password, as such or as the AUTH
/// PLAIN exchange carries it.
fn assert_secret_kept(fixture: &Fixture, run: &Run) {
    use base64::Engine;
    let plain = base64::engine::general_purpose::STANDARD.encode(format!("\0{USER}\0{PASSWORD}"));
    let log = std::fs::read_to_string(fixture.log_path()).unwrap_or_default();
    for secret in [PASSWORD, plain.as_str()] {
        assert!(!run.all().contains(secret), "{}", run.all());
        assert!(!log.contains(secret), "{log}");
    }
}

#[test]
fn starttls_and_a_login_carry_every_message_and_the_password_is_never_printed() {
    let (_certs, relay, server) = tls_relay(false, Behavior::accept_all());
    let fixture = Fixture::new(&people(6), &smtp_section(Some(&relay.ca)));

    let url = format!("smtp+starttls://127.0.0.1:{}", server.port());
    let run = send(&fixture, &url, PASSWORD);

    assert_eq!(run.code, 0, "{}", run.all());
    let received = server.wait_for(6, Duration::from_secs(10));
    assert_eq!(received.len(), 6, "{}", run.all());
    for message in &received {
        assert!(message.secure, "{} came in the clear", message.rcpt_to[0]);
        assert_eq!(message.login.as_deref(), Some(USER));
    }
    let journal = server.journal();
    assert!(journal.tls_sessions >= 1 && journal.failed_logins == 0);
    // The second EHLO (for PIPELINING) comes after STARTTLS and before AUTH, and pipelining
    // goes on inside TLS.
    assert!(journal.pipelined > 0, "{journal:?}");
    assert_secret_kept(&fixture, &run);
}

#[test]
fn smtps_speaks_tls_from_the_first_byte() {
    let (_certs, relay, server) = tls_relay(true, Behavior::accept_all());
    let fixture = Fixture::new(&people(3), &smtp_section(Some(&relay.ca)));

    let run = send(
        &fixture,
        &format!("smtps://127.0.0.1:{}", server.port()),
        PASSWORD,
    );

    assert_eq!(run.code, 0, "{}", run.all());
    let received = server.wait_for(3, Duration::from_secs(10));
    assert_eq!(received.len(), 3);
    assert!(received.iter().all(|m| m.secure && m.login.is_some()));
    assert_secret_kept(&fixture, &run);
}

#[test]
fn a_certificate_that_cannot_be_trusted_stops_the_run_at_once_with_65_and_nothing_goes_out() {
    let certs = tempfile::tempdir().unwrap();
    let trusted = TestCa::generate(certs.path(), "trusted");
    let other = TestCa::generate(certs.path(), "other");
    // A certificate that cannot be trusted does not mend itself: tried again and again with
    // 75, cron would run the campaign again later, every time, for days. So it stops the run
    // at once with 65, which tells cron that a person must act, and says what to do.
    //
    // The server's certificate was signed by another authority than the one the campaign
    // trusts; then by one it does not name at all (the public roots alone); then by the
    // authority it trusts, but for 127.0.0.1 where the relay is named `localhost`.
    let cases = [
        (&other, Some(trusted.ca.as_path()), "127.0.0.1", "ca_file"),
        (&other, None, "127.0.0.1", "ca_file"),
        (
            &trusted,
            Some(trusted.ca.as_path()),
            "localhost",
            "a name its certificate",
        ),
    ];
    for (signer, ca, host, hint) in cases {
        let server = SmtpServer::start_in_background(
            Behavior::accept_all()
                .with_tls(signer.acceptor(), false)
                .requiring_login(USER, PASSWORD),
        );
        let fixture = Fixture::new(&people(3), &smtp_section(ca));

        let url = format!("smtp+starttls://{host}:{}", server.port());
        let run = send(&fixture, &url, PASSWORD);

        assert_eq!(run.code, 65, "{}", run.all());
        assert!(
            run.stdout.contains("invalid peer certificate") && run.stdout.contains(hint),
            "the error says why, and what to do ({hint}): {}",
            run.all()
        );
        let journal = server.journal();
        assert_eq!(journal.connections, 1, "tried once: {journal:?}");
        assert!(journal.received.is_empty() && journal.logins.is_empty());
        assert_eq!(journal.failed_logins, 0, "no password went to that server");
        let status = fixture.status();
        assert_eq!(status["pending"], 3, "{status}");
        assert_eq!(status["in_doubt"], 0, "{status}");
        assert_secret_kept(&fixture, &run);
    }
}

#[test]
fn a_primary_relay_that_cannot_be_trusted_is_set_aside_for_the_fallback_and_named_in_an_error() {
    let certs = tempfile::tempdir().unwrap();
    let trusted = TestCa::generate(certs.path(), "trusted");
    let other = TestCa::generate(certs.path(), "other");
    let primary = SmtpServer::start_in_background(
        Behavior::accept_all()
            .with_tls(other.acceptor(), false)
            .requiring_login(USER, PASSWORD),
    );
    let fallback = SmtpServer::start_in_background(Behavior::accept_all());
    let extra = format!(
        "{}url = \"smtp+starttls://127.0.0.1:{}\"\n[fallback]\nurl = \"{}\"\n",
        smtp_section(Some(&trusted.ca)),
        primary.port(),
        fallback.url()
    );
    let fixture = Fixture::new(&people(6), &extra);
    let campaign = fixture.campaign();
    let run = fixture.run(
        &["send", campaign.to_str().unwrap()],
        &[("MISSIVE_SMTP_PASSWORD", PASSWORD)],
    );

    // The fallback can carry the campaign: the run goes on through it, and ends done. But the
    // primary will not mend itself, so it is not tried again this run, and the run says so as
    // an error, not a warning.
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.stdout.contains("6 through the fallback relay"),
        "{}",
        run.all()
    );
    assert_eq!(fallback.wait_for(6, Duration::from_secs(10)).len(), 6);
    let error = run
        .stderr
        .lines()
        .find(|line| line.contains("ERROR") && line.contains("certificate"))
        .unwrap_or_else(|| panic!("an error names the certificate: {}", run.all()));
    assert!(
        error.contains("primary") && error.contains("ca_file"),
        "{error}"
    );
    // The run's report says it too: under cron, stdout is what a person reads.
    let report = run
        .stdout
        .lines()
        .find(|line| line.contains("set aside"))
        .unwrap_or_else(|| panic!("the report names the relay set aside: {}", run.all()));
    assert!(
        report.contains("primary")
            && report.contains("certificate not trusted")
            && report.contains("the fallback relay carried 6 message(s)")
            && !report.contains("  "),
        "{report}"
    );
    assert!(
        error.contains("connections go to the fallback relay instead"),
        "{error}"
    );
    let journal = primary.journal();
    assert_eq!(journal.connections, 1, "tried once: {journal:?}");
    assert!(journal.logins.is_empty() && journal.failed_logins == 0);
    assert_secret_kept(&fixture, &run);
}

#[test]
fn a_relay_set_aside_while_the_other_is_down_is_not_said_to_have_been_replaced() {
    let certs = tempfile::tempdir().unwrap();
    let trusted = TestCa::generate(certs.path(), "trusted");
    let other = TestCa::generate(certs.path(), "other");
    let primary =
        SmtpServer::start_in_background(Behavior::accept_all().with_tls(other.acceptor(), false));
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    let extra = format!(
        "{}url = \"smtp+starttls://127.0.0.1:{}\"\n[fallback]\nurl = \
         \"smtp://127.0.0.1:{closed_port}\"\n",
        smtp_section(Some(&trusted.ca)),
        primary.port(),
    );
    let fixture = Fixture::new(&people(2), &extra);
    let campaign = fixture.campaign();
    let run = fixture.run(
        &["send", campaign.to_str().unwrap()],
        &[("MISSIVE_SMTP_PASSWORD", PASSWORD)],
    );
    // Nothing carried the run: it stops on the certificate, and says only that.
    assert_ne!(run.code, 0, "{}", run.all());
    assert!(
        run.stdout.contains("certificate cannot be trusted"),
        "{}",
        run.all()
    );
    assert!(
        !run.stdout.contains("carried"),
        "the fallback carried nothing: {}",
        run.all()
    );
    // Nor does stderr say the fallback carries it: it says where connections go, and then
    // that the fallback does not answer either.
    assert!(
        !run.stderr.contains("carries"),
        "the fallback carried nothing: {}",
        run.all()
    );
    let said = |words: &str| run.stderr.lines().any(|line| line.contains(words));
    assert!(
        said("set aside for this run; connections go to the fallback relay instead")
            && said(
                "the fallback relay, tried instead of the primary one set aside, does not answer either"
            ),
        "{}",
        run.all()
    );
}

#[test]
fn with_both_relays_untrusted_the_report_names_each_and_neither_carried_the_run() {
    let certs = tempfile::tempdir().unwrap();
    let trusted = TestCa::generate(certs.path(), "trusted");
    let other = TestCa::generate(certs.path(), "other");
    let untrusted = || {
        SmtpServer::start_in_background(Behavior::accept_all().with_tls(other.acceptor(), false))
    };
    let (primary, fallback) = (untrusted(), untrusted());
    let extra = format!(
        "{}url = \"smtp+starttls://127.0.0.1:{}\"\n[fallback]\nurl = \
         \"smtp+starttls://127.0.0.1:{}\"\nca_file = {:?}\n",
        smtp_section(Some(&trusted.ca)),
        primary.port(),
        fallback.port(),
        trusted.ca,
    );
    let fixture = Fixture::new(&people(2), &extra);
    let campaign = fixture.campaign();
    let run = fixture.run(
        &["send", campaign.to_str().unwrap()],
        &[("MISSIVE_SMTP_PASSWORD", PASSWORD)],
    );
    assert_eq!(run.code, 65, "{}", run.all());
    assert!(
        run.stdout
            .contains("stopped: the fallback relay's certificate cannot be trusted"),
        "{}",
        run.all()
    );
    let aside = run
        .stdout
        .lines()
        .find(|line| line.contains("set aside"))
        .unwrap_or_else(|| panic!("the primary is named too: {}", run.all()));
    assert!(
        aside.contains("the primary relay") && !aside.contains("carried the run"),
        "{aside}"
    );
}

#[test]
fn a_refused_login_stops_the_run_at_once_with_65_and_the_password_is_never_printed() {
    let (_certs, relay, server) = tls_relay(false, Behavior::accept_all());
    // Four connections (the default pool): until a login succeeds they log in one at a time.
    let fixture = Fixture::new(&people(8), &smtp_section(Some(&relay.ca)));

    let url = format!("smtp+starttls://127.0.0.1:{}", server.port());
    let wrong = "pw-wrong-also-secret";
    let run = send(&fixture, &url, wrong);

    // A wrong password stays wrong: tried once (more could lock the account), and an exit that
    // tells cron a person must act.
    assert_eq!(run.code, 65, "{}", run.all());
    for expected in ["refused the login", "535", "MISSIVE_SMTP_PASSWORD"] {
        assert!(run.stdout.contains(expected), "{expected}: {}", run.all());
    }
    assert!(!run.all().contains(wrong), "{}", run.all());
    let journal = server.journal();
    assert!(journal.received.is_empty(), "{journal:?}");
    assert_eq!(journal.failed_logins, 1, "tried once for the run");
    let status = fixture.status();
    assert_eq!(status["pending"], 8, "{status}");
    assert_eq!(status["in_doubt"], 0, "{status}");

    // With a budget the producer reaches first, the refusal still decides the exit.
    let campaign = fixture.campaign();
    let run = fixture.run(
        &[
            "send",
            campaign.to_str().unwrap(),
            "--smtp",
            &url,
            "--max-messages",
            "1",
        ],
        &[("MISSIVE_SMTP_PASSWORD", wrong)],
    );
    assert_eq!(run.code, 65, "{}", run.all());
    assert!(run.stdout.contains("refused the login"), "{}", run.all());
    assert_eq!(
        server.journal().failed_logins,
        2,
        "once more for the second run"
    );
}

#[test]
fn a_ca_file_that_is_not_a_certificate_is_named_by_check_and_send() {
    let fixture = Fixture::new(&people(1), &smtp_section(Some(Path::new("nowhere.pem"))));
    fixture.write("not-a-cert.pem", "hello\n");
    let check = fixture.command("check", &[]);
    assert_eq!(check.code, 65, "{}", check.all());
    assert!(check.stdout.contains("smtp.ca_file"), "{}", check.all());
    assert!(check.stdout.contains("nowhere.pem"), "{}", check.all());

    let fixture = Fixture::new(&people(1), &smtp_section(Some(Path::new("not-a-cert.pem"))));
    fixture.write("not-a-cert.pem", "hello\n");
    let run = send(&fixture, "smtp+starttls://127.0.0.1:9", PASSWORD);
    assert_eq!(run.code, 65, "{}", run.all());
    assert!(
        run.stderr.contains("smtp.ca_file") && run.stderr.contains("no PEM certificate"),
        "{}",
        run.all()
    );

    // The right header around a damaged body: check and send both name the file.
    let damaged = "-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n";
    fixture.write("not-a-cert.pem", damaged);
    let check = fixture.command("check", &[]);
    assert_eq!(check.code, 65, "{}", check.all());
    assert!(check.stdout.contains("not-a-cert.pem"), "{}", check.all());
    let run = send(&fixture, "smtp+starttls://127.0.0.1:9", PASSWORD);
    assert_eq!(run.code, 65, "{}", run.all());
    assert!(
        run.stderr.contains("smtp.ca_file") && run.stderr.contains("not a usable certificate"),
        "{}",
        run.all()
    );
}

#[test]
fn a_relay_that_does_not_offer_starttls_gets_neither_the_password_nor_a_message() {
    let server =
        SmtpServer::start_in_background(Behavior::accept_all().requiring_login(USER, PASSWORD));
    let fixture = Fixture::new(&people(2), &smtp_section(None));

    let url = format!("smtp+starttls://127.0.0.1:{}", server.port());
    let run = send(&fixture, &url, PASSWORD);

    // STARTTLS is required, not opportunistic: no falling back to the clear.
    assert_eq!(run.code, 75, "{}", run.all());
    let journal = server.journal();
    assert!(journal.received.is_empty(), "{journal:?}");
    assert!(
        journal.logins.is_empty() && journal.failed_logins == 0,
        "no AUTH in the clear: {journal:?}"
    );
    assert_eq!(journal.tls_sessions, 0);
    assert_secret_kept(&fixture, &run);
}

#[test]
fn a_username_for_a_relay_that_offers_no_login_stops_the_run_with_65() {
    // A relay that takes no login: retrying would never help, and cron must hear of it.
    let server = SmtpServer::start_in_background(Behavior::accept_all());
    let fixture = Fixture::new(&people(2), &smtp_section(None));

    let run = send(&fixture, &server.url(), PASSWORD);

    assert_eq!(run.code, 65, "{}", run.all());
    assert!(run.stdout.contains("offers no login"), "{}", run.all());
    assert!(server.journal().received.is_empty());
    assert_eq!(fixture.status()["pending"], 2);
    assert_secret_kept(&fixture, &run);
}

#[test]
fn a_temporary_refusal_of_the_login_is_tried_again() {
    // 454: "temporary authentication failure". Unlike a 535 it is worth another try.
    let (_certs, relay, server) = tls_relay(
        false,
        Behavior::accept_all().on_auth(|earlier| {
            (earlier == 0).then(|| {
                crate::support::smtp_server::Fault::reply(
                    454,
                    "4.7.0 Temporary authentication failure",
                )
            })
        }),
    );
    // One connection, so that the journal counts exactly its logins.
    let section = format!("{}pool_size = 1\n", smtp_section(Some(&relay.ca)));
    let fixture = Fixture::new(&people(3), &section);

    let url = format!("smtp+starttls://127.0.0.1:{}", server.port());
    let run = send(&fixture, &url, PASSWORD);

    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(server.wait_for(3, Duration::from_secs(10)).len(), 3);
    let journal = server.journal();
    assert_eq!(journal.auth_commands, 2, "refused once, then accepted");
    assert_eq!(journal.logins, [USER]);
    assert_secret_kept(&fixture, &run);
}

#[test]
fn the_fallback_relay_has_its_own_authority_and_password() {
    let certs = tempfile::tempdir().unwrap();
    let authority = TestCa::generate(certs.path(), "fallback");
    const FALLBACK_PASSWORD: &str = "pw-fallback-never-printed";
    let fallback = SmtpServer::start_in_background(
        Behavior::accept_all()
            .with_tls(authority.acceptor(), false)
            .requiring_login("secours@example.org", FALLBACK_PASSWORD),
    );
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    // The primary is down; the fallback speaks STARTTLS with a certificate only its own
    // authority vouches for, and takes its own login.
    let extra = format!(
        "[smtp]\nurl = \"smtp://127.0.0.1:{closed_port}\"\npool_size = 2\n\
         [fallback]\nurl = \"smtp+starttls://127.0.0.1:{}\"\nusername = \"secours@example.org\"\n\
         ca_file = {:?}\n",
        fallback.port(),
        authority.ca
    );
    let fixture = Fixture::new(&people(4), &extra);
    let campaign = fixture.campaign();
    let run = fixture.run(
        &["send", campaign.to_str().unwrap()],
        &[("MISSIVE_FALLBACK_SMTP_PASSWORD", FALLBACK_PASSWORD)],
    );

    assert_eq!(run.code, 0, "{}", run.all());
    let received = fallback.wait_for(4, Duration::from_secs(10));
    assert_eq!(received.len(), 4);
    assert!(
        received
            .iter()
            .all(|m| m.secure && m.login.as_deref() == Some("secours@example.org"))
    );
    assert!(!run.all().contains(FALLBACK_PASSWORD), "{}", run.all());
}
