//! `missive send` against SMTP servers that fail on purpose: refusals (4xx and 5xx, at RCPT and
//! at the end of DATA), `421` at the greeting and in the middle of a session, a hang-up before
//! the RCPT reply, a connection cut after DATA, a server that vanishes mid-run, a stall longer
//! than the timeout.
//!
//! Each test runs missive again and again (a bounded number of times) until it says the campaign
//! is done, then checks the invariants of [`Audit`]: every recipient in exactly one state, `sent`
//! exactly the people the server accepted, permanent failures never tried again, nobody accepted
//! twice. The checks are about outcomes, not about how the engine gets there, so they hold
//! whether it retries within a run or leaves the retry to the next one.

use std::collections::BTreeSet;

use crate::support::audit::Audit;
use crate::support::harness::{Fixture, RUN_LIMIT, Run, people};
use crate::support::smtp_server::{Behavior, Fate, Fault, SmtpServer};

/// A short timeout and short retry delays, so every test ends in seconds.
const CAMPAIGN: &str = r#"
[smtp]
timeout_secs = 2
pool_size = 4

[retry]
first_delay = "1s"
max_delay = "1s"
"#;

/// Runs of `send` a test allows before the campaign must be done.
const MAX_RUNS: usize = 10;

/// Long enough for anything the server still has in hand to finish.
const WAIT: std::time::Duration = std::time::Duration::from_secs(10);

fn person(i: usize) -> String {
    format!("person{i:02}@example.com")
}

/// The `i` of `person<i>@example.com`.
fn number(address: &str) -> usize {
    address
        .trim_start_matches("person")
        .split('@')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn everyone(n: usize) -> BTreeSet<String> {
    (1..=n).map(person).collect()
}

fn some(numbers: &[usize]) -> BTreeSet<String> {
    numbers.iter().copied().map(person).collect()
}

/// Sends until done, checking after every run that the log, `status` and the server agree.
fn send_until_done(fixture: &Fixture, server: &SmtpServer) -> Vec<Run> {
    fixture.send_until_done(&server.url(), MAX_RUNS, |run| {
        let audit = Audit::take(fixture, &[server.journal()]);
        audit.assert_consistent();
        // Without a kill, a client hears every 250 the server sends.
        assert_eq!(
            audit.accepted(),
            audit.with_state(crate::support::audit::State::Sent),
            "after a run, sent is exactly who the server accepted\n{}",
            run.all()
        );
    })
}

fn assert_played(server: &SmtpServer, what: &str) {
    let faults = server.journal().faults;
    assert!(
        faults.iter().any(|f| f.contains(what)),
        "the server never played {what}: {faults:?}"
    );
}

#[test]
fn refusals_at_rcpt_and_at_the_end_of_data_end_in_sent_or_failed_for_good() {
    refusals(Behavior::accept_all(), true);
}

/// The same refusals, one command and one reply at a time.
#[test]
fn refusals_end_the_same_with_a_server_that_does_not_pipeline() {
    refusals(Behavior::accept_all().without_pipelining(), false);
}

/// `pipelining`: whether the server offers it (and the client must use it).
fn refusals(base: Behavior, pipelining: bool) {
    const DEFERRED_AT_RCPT: [usize; 3] = [2, 9, 17]; // 451 the first time
    const DEFERRED_TWICE: usize = 15; // 451 the first two times
    const REFUSED_AT_RCPT: [usize; 2] = [4, 13]; // 550, always
    const DEFERRED_AT_DATA: [usize; 2] = [6, 20]; // 452 at the end of DATA, the first time
    const REFUSED_AT_DATA: [usize; 2] = [11, 23]; // 554 at the end of DATA, always
    let server = SmtpServer::start_in_background(
        base.on_rcpt(|address, earlier| {
            let i = number(address);
            if REFUSED_AT_RCPT.contains(&i) {
                Some(Fault::reply(550, "5.1.1 No such user"))
            } else if (DEFERRED_AT_RCPT.contains(&i) && earlier == 0)
                || (i == DEFERRED_TWICE && earlier < 2)
            {
                Some(Fault::reply(451, "4.3.0 Try again later"))
            } else {
                None
            }
        })
        .on_data_end(|address, earlier| {
            let i = number(address);
            if REFUSED_AT_DATA.contains(&i) {
                Some(Fault::reply(554, "5.7.1 Message refused"))
            } else if DEFERRED_AT_DATA.contains(&i) && earlier == 0 {
                Some(Fault::reply(452, "4.3.1 Insufficient system storage"))
            } else {
                None
            }
        }),
    );
    let csv = format!("{}pas-une-adresse,Bad,Row,1\n", people(24));
    let fixture = Fixture::new(&csv, CAMPAIGN);

    send_until_done(&fixture, &server);

    let (pipelined, chained) = (server.journal().pipelined, server.journal().chained());
    if pipelining {
        // MAIL, RCPT and DATA in one write: two of the three arrive with more behind them; and
        // most messages with the next one's commands behind them.
        assert!(pipelined >= 2 * 24, "{pipelined} commands came pipelined");
        assert!(
            chained >= 4,
            "{chained} messages came with the next one's commands"
        );
    } else {
        assert_eq!(pipelined + chained, 0, "the client waited for each reply");
    }
    let audit = Audit::take(&fixture, &[server.journal()]);
    let failed: BTreeSet<String> = some(&REFUSED_AT_RCPT)
        .union(&some(&REFUSED_AT_DATA))
        .cloned()
        .collect();
    audit.assert_settled(&everyone(24), &failed, 1);
    audit.assert_accepted_at_most_once();
    for (rcpt, code) in REFUSED_AT_RCPT
        .map(|i| (person(i), "550"))
        .into_iter()
        .chain(REFUSED_AT_DATA.map(|i| (person(i), "554")))
    {
        let entries = &audit.log[&rcpt];
        assert_eq!(
            audit.attempts(&rcpt),
            1,
            "a 5xx is never retried: {entries:?}"
        );
        assert_eq!(
            audit.rcpt_commands[&rcpt], 1,
            "{rcpt} named once to the server"
        );
        assert!(
            entries.last().unwrap().reply.contains(code),
            "the failure keeps the server's reply: {entries:?}"
        );
    }
    for i in REFUSED_AT_DATA {
        let fates: Vec<Fate> = audit.copies[&person(i)].iter().map(|c| c.fate).collect();
        assert_eq!(fates, [Fate::Refused(554)]);
    }
    for (numbers, code, times) in [
        (&DEFERRED_AT_RCPT[..], "451", 1),
        (&[DEFERRED_TWICE][..], "451", 2),
        (&DEFERRED_AT_DATA[..], "452", 1),
    ] {
        for rcpt in some(numbers) {
            let entries = &audit.log[&rcpt];
            let deferred: Vec<_> = entries.iter().filter(|e| e.event == "deferred").collect();
            assert_eq!(deferred.len(), times, "{entries:?}");
            assert!(
                deferred
                    .iter()
                    .all(|e| e.reply.contains(code) && e.retry_at.is_some()),
                "a deferral keeps the reply and says when to retry: {entries:?}"
            );
            assert_eq!(audit.attempts(&rcpt), times + 1, "{entries:?}");
        }
    }
}

#[test]
fn a_421_at_the_greeting_or_in_the_middle_of_a_session_loses_nobody_and_doubles_nobody() {
    busy_server(Behavior::accept_all());
}

/// The same 421s, one command and one reply at a time.
#[test]
fn a_421_without_pipelining_loses_nobody_and_doubles_nobody() {
    busy_server(Behavior::accept_all().without_pipelining());
}

fn busy_server(base: Behavior) {
    // The first two connections are turned away; every later one closes with 421 after three
    // messages, at the next MAIL FROM; and one message gets 421 instead of 250 at the end of
    // its DATA (the server shuts down without taking it).
    const SHUT_AFTER_DATA: usize = 10;
    let server = SmtpServer::start_in_background(
        base.greeting_421_for_first(2)
            .close_with_421_after(3)
            .on_data_end(|address, earlier| {
                (number(address) == SHUT_AFTER_DATA && earlier == 0).then(|| {
                    Fault::ReplyAndClose(421, "4.3.2 Shutting down, message not taken".into())
                })
            }),
    );
    let fixture = Fixture::new(&people(24), CAMPAIGN);

    send_until_done(&fixture, &server);

    assert_played(&server, "421");
    assert_played(&server, "at greeting");
    assert_played(&server, "at MAIL FROM");
    assert_played(&server, "at end of DATA");
    let audit = Audit::take(&fixture, &[server.journal()]);
    audit.assert_settled(&everyone(24), &BTreeSet::new(), 0);
    // A 421 means the server did not take the message: nobody gets two.
    audit.assert_accepted_at_most_once();
    for (rcpt, copies) in &audit.copies {
        let fates: Vec<Fate> = copies.iter().map(|c| c.fate).collect();
        if *rcpt == person(SHUT_AFTER_DATA) {
            assert_eq!(fates, [Fate::Refused(421), Fate::Accepted]);
        } else {
            assert_eq!(fates, [Fate::Accepted], "{rcpt} went over the wire once");
        }
    }
}

#[test]
fn a_hang_up_before_the_rcpt_reply_is_retried_and_sent_once() {
    hang_up_at_rcpt(Behavior::accept_all());
}

/// The same hang-ups, one command and one reply at a time.
#[test]
fn a_hang_up_before_the_rcpt_reply_without_pipelining_is_retried_and_sent_once() {
    hang_up_at_rcpt(Behavior::accept_all().without_pipelining());
}

fn hang_up_at_rcpt(base: Behavior) {
    const HUNG_UP: [usize; 3] = [3, 11, 18];
    let server = SmtpServer::start_in_background(base.on_rcpt(|address, earlier| {
        (HUNG_UP.contains(&number(address)) && earlier == 0).then_some(Fault::HangUp)
    }));
    let fixture = Fixture::new(&people(20), CAMPAIGN);

    send_until_done(&fixture, &server);

    assert_played(&server, "HangUp at RCPT TO");
    let audit = Audit::take(&fixture, &[server.journal()]);
    audit.assert_settled(&everyone(20), &BTreeSet::new(), 0);
    audit.assert_accepted_at_most_once();
    for rcpt in some(&HUNG_UP) {
        assert!(audit.rcpt_commands[&rcpt] >= 2, "{rcpt} was tried again");
        assert!(audit.attempts(&rcpt) >= 2, "{:?}", audit.log[&rcpt]);
        assert_eq!(audit.copies[&rcpt].len(), 1, "no DATA before the hang-up");
    }
}

#[test]
fn a_connection_cut_after_data_is_in_doubt_and_resent_with_the_same_message_id() {
    const CUT: [usize; 2] = [5, 12];
    let server =
        SmtpServer::start_in_background(Behavior::accept_all().on_data_end(|address, earlier| {
            (CUT.contains(&number(address)) && earlier == 0).then_some(Fault::HangUp)
        }));
    let fixture = Fixture::new(&people(20), CAMPAIGN);

    send_until_done(&fixture, &server);

    assert_played(&server, "HangUp at end of DATA");
    // The next message's commands had gone out behind a cut one: it must still arrive once.
    let journal = server.journal();
    assert!(
        journal
            .received
            .iter()
            .any(|m| m.fate == Fate::HungUp && m.chained),
        "no cut message had the next one behind it"
    );
    let audit = Audit::take(&fixture, &[journal]);
    audit.assert_settled(&everyone(20), &BTreeSet::new(), 0);
    audit.assert_accepted_at_most_once();
    for rcpt in some(&CUT) {
        // The server had the whole message but never said so: the same message (same
        // Message-ID, checked by the audit) comes again, and that one is accepted.
        let fates: Vec<Fate> = audit.copies[&rcpt].iter().map(|c| c.fate).collect();
        assert_eq!(fates, [Fate::HungUp, Fate::Accepted], "{rcpt}");
        assert!(
            audit.in_doubt_attempts(&rcpt) >= 1,
            "{:?}",
            audit.log[&rcpt]
        );
    }
}

#[test]
fn a_server_that_vanishes_mid_run_and_comes_back_on_the_same_port_gets_everyone_once() {
    let server = SmtpServer::start_in_background(Behavior::accept_all().vanish_after(8));
    let fixture = Fixture::new(&people(30), CAMPAIGN);

    let first = fixture
        .start_send(&server.url(), &[])
        .wait(RUN_LIMIT)
        .unwrap_or_else(|run| {
            panic!(
                "the run did not give up on a vanished server: {}",
                run.all()
            )
        });
    assert_played(&server, "vanished");
    assert!(!server.journal().listening);
    let audit = Audit::take(&fixture, &[server.journal()]);
    audit.assert_consistent();
    assert_eq!(
        audit.accepted(),
        audit.with_state(crate::support::audit::State::Sent)
    );
    let c = &audit.counts;
    assert!(c.sent >= 8 && c.sent < 30, "{c:?}");
    assert!(c.pending + c.in_doubt + c.deferred > 0, "{c:?}");
    assert_eq!(first.code, 75, "work left: {}", first.all());

    server.restart();
    send_until_done(&fixture, &server);

    let audit = Audit::take(&fixture, &[server.journal()]);
    audit.assert_settled(&everyone(30), &BTreeSet::new(), 0);
    audit.assert_accepted_at_most_once();
}

#[test]
fn a_server_gone_for_a_moment_while_a_run_goes_on_loses_nobody_and_doubles_nobody() {
    // A slow server, so the run is still going when it disappears.
    let server = SmtpServer::start_in_background(
        Behavior::accept_all().reply_delay(std::time::Duration::from_millis(20)),
    );
    let fixture = Fixture::new(&people(30), CAMPAIGN);

    let running = fixture.start_send(&server.url(), &[]);
    assert!(server.wait_until(WAIT, |j| j.accepted().count() >= 6));
    server.stop();
    // Gone for a moment: connections are cut and refused meanwhile.
    std::thread::sleep(std::time::Duration::from_millis(300));
    server.restart();
    let first = running
        .wait(RUN_LIMIT)
        .unwrap_or_else(|run| panic!("the run never ended: {}", run.all()));
    assert!([0, 75].contains(&first.code), "{}", first.all());
    Audit::take(&fixture, &[server.journal()]).assert_consistent();
    send_until_done(&fixture, &server);

    let audit = Audit::take(&fixture, &[server.journal()]);
    audit.assert_settled(&everyone(30), &BTreeSet::new(), 0);
    audit.assert_accepted_at_most_once();
}

#[test]
fn deferred_until_the_attempts_run_out_ends_failed_and_never_accepted() {
    let server = SmtpServer::start_in_background(Behavior::accept_all().on_rcpt(|address, _| {
        (number(address) == 2).then(|| Fault::reply(451, "4.2.2 Mailbox full"))
    }));
    let fixture = Fixture::new(&people(10), &format!("{CAMPAIGN}max_attempts = 2\n"));

    send_until_done(&fixture, &server);

    let audit = Audit::take(&fixture, &[server.journal()]);
    let rcpt = person(2);
    audit.assert_settled(&everyone(10), &some(&[2]), 0);
    audit.assert_accepted_at_most_once();
    let entries = &audit.log[&rcpt];
    assert_eq!(audit.attempts(&rcpt), 2, "{entries:?}");
    assert_eq!(audit.rcpt_commands[&rcpt], 2);
    assert!(
        entries.last().unwrap().reply.contains("gave up"),
        "{entries:?}"
    );
}

#[test]
fn a_stall_longer_than_the_timeout_is_given_up_and_the_message_resent_with_the_same_message_id() {
    // The first connection is never greeted; two messages arrive whole and are never answered.
    const STALLED: [usize; 2] = [7, 14];
    let server = SmtpServer::start_in_background(
        Behavior::accept_all()
            .on_greeting(|n| (n == 0).then_some(Fault::Stall))
            .on_data_end(|address, earlier| {
                (STALLED.contains(&number(address)) && earlier == 0).then_some(Fault::Stall)
            }),
    );
    let fixture = Fixture::new(&people(20), CAMPAIGN);

    // With timeout_secs = 2, a run must not wait on a silent server for long.
    let limit = std::time::Duration::from_secs(10);
    fixture
        .start_send(&server.url(), &[])
        .wait(limit)
        .unwrap_or_else(|run| {
            panic!(
                "still waiting on a stalled server after {limit:?} with timeout_secs = 2: {}",
                run.all()
            )
        });
    assert_played(&server, "Stall at greeting");
    assert_played(&server, "Stall at end of DATA");
    send_until_done(&fixture, &server);

    let audit = Audit::take(&fixture, &[server.journal()]);
    audit.assert_settled(&everyone(20), &BTreeSet::new(), 0);
    audit.assert_accepted_at_most_once();
    for rcpt in some(&STALLED) {
        let fates: Vec<Fate> = audit.copies[&rcpt].iter().map(|c| c.fate).collect();
        assert_eq!(fates, [Fate::Stalled, Fate::Accepted], "{rcpt}");
        assert!(
            audit.in_doubt_attempts(&rcpt) >= 1,
            "{:?}",
            audit.log[&rcpt]
        );
    }
}

#[test]
fn a_reply_later_than_the_timeout_leaves_the_message_in_doubt_and_its_copy_has_the_same_message_id()
{
    // The server takes the message and says 250, but only after the client's timeout: it has
    // the message, missive cannot know, so the next attempt makes a second copy.
    const LATE: usize = 6;
    let server =
        SmtpServer::start_in_background(Behavior::accept_all().on_data_end(|address, earlier| {
            (number(address) == LATE && earlier == 0)
                .then_some(Fault::Late(std::time::Duration::from_secs(3)))
        }));
    let fixture = Fixture::new(&people(12), CAMPAIGN);

    fixture.send_until_done(&server.url(), MAX_RUNS, |_| {
        Audit::take(&fixture, &[server.journal()]).assert_consistent()
    });

    assert_played(&server, "Late");
    assert!(server.wait_until_answered(WAIT), "the late 250 went out");
    let audit = Audit::take(&fixture, &[server.journal()]);
    audit.assert_settled(&everyone(12), &BTreeSet::new(), 0);
    let rcpt = person(LATE);
    assert_eq!(audit.accepted_count(&rcpt), 2, "{:?}", audit.copies[&rcpt]);
    assert_eq!(audit.duplicates(), 1, "only the late one has a second copy");
    assert!(
        audit.in_doubt_attempts(&rcpt) >= 1,
        "{:?}",
        audit.log[&rcpt]
    );
}

#[test]
fn an_in_doubt_message_is_sent_again_even_when_its_attempts_ran_out() {
    // Person 3: 451 at the first attempt; at the second, the server takes the message but its
    // 250 comes after the timeout (in doubt). With max_attempts = 2, the third run must not
    // call "failed" a message the server has: it sends it again, with the same Message-ID
    // (README: max_attempts bounds retries of deferred messages; in-doubt ones are sent again).
    let server = SmtpServer::start_in_background(
        Behavior::accept_all()
            .on_rcpt(|address, earlier| {
                (number(address) == 3 && earlier == 0)
                    .then(|| Fault::reply(451, "4.3.0 Try again later"))
            })
            .on_data_end(|address, earlier| {
                (number(address) == 3 && earlier == 0)
                    .then_some(Fault::Late(std::time::Duration::from_secs(3)))
            }),
    );
    let fixture = Fixture::new(&people(6), &format!("{CAMPAIGN}max_attempts = 2\n"));

    fixture.send_until_done(&server.url(), MAX_RUNS, |_| {
        Audit::take(&fixture, &[server.journal()]).assert_consistent()
    });

    assert!(server.wait_until_answered(WAIT), "the late 250 went out");
    let audit = Audit::take(&fixture, &[server.journal()]);
    assert!(audit.accepted_count(&person(3)) >= 1, "the server has it");
    audit.assert_settled(&everyone(6), &BTreeSet::new(), 0);
}

#[test]
fn a_reply_that_comes_too_late_after_a_refusal_retires_the_connection() {
    // The server refuses one recipient yet says 354 to the DATA that follows, then answers
    // the empty message that ends it only after the client's timeout. The late reply is still
    // on its way: a client that kept the connection would read it as the next command's, and
    // from then on every reply one step behind (a `sent` with someone else's queue id).
    const REFUSED: usize = 2;
    let server = SmtpServer::start_in_background(
        Behavior::accept_all()
            .rcpt_reply(|address| {
                (number(address) == REFUSED).then(|| (550, "5.1.1 No such user".to_owned()))
            })
            .data_without_recipients(std::time::Duration::from_millis(3000)),
    );
    let campaign = CAMPAIGN.replace("pool_size = 4", "pool_size = 1");
    let fixture = Fixture::new(&people(6), &campaign);

    send_until_done(&fixture, &server);

    assert_played(&server, "354 without recipients");
    let audit = Audit::take(&fixture, &[server.journal()]);
    // The audit checks each `sent` holds the queue id of that very message.
    audit.assert_settled(&everyone(6), &some(&[REFUSED]), 0);
    audit.assert_accepted_at_most_once();
}

#[test]
fn a_relay_that_never_answers_the_login_is_tried_no_more_than_max_connect_failures() {
    // The relay takes the connection, greets, and never answers AUTH: to missive, unreachable.
    // Until a login succeeds, the pool's connections log in one at a time, so when the third
    // try fails the others are still waiting their turn: they must not try after all (with
    // the default limit of 6 and 4 connections, such a relay got 9 tries).
    let server = SmtpServer::start_in_background(
        Behavior::accept_all()
            .requiring_login("campagnes@example.org", "pw-never-answered")
            .on_auth(|_| Some(Fault::Stall)),
    );
    let fixture = Fixture::new(
        &people(6),
        "[smtp]\nusername = \"campagnes@example.org\"\ntimeout_secs = 1\n\
         max_connect_failures = 3\npool_size = 4\n",
    );
    let campaign = fixture.campaign();
    let run = fixture.run(
        &["send", campaign.to_str().unwrap(), "--smtp", &server.url()],
        &[("MISSIVE_SMTP_PASSWORD", "pw-never-answered")],
    );

    assert_eq!(run.code, 75, "{}", run.all());
    assert!(
        run.stdout.contains("stopped: the server is unreachable")
            && run.stdout.contains("3 failures in a row"),
        "{}",
        run.all()
    );
    assert_played(&server, "Stall at AUTH");
    let journal = server.journal();
    assert_eq!(journal.connections, 3, "{journal:?}");
    assert_eq!(journal.auth_commands, 3, "{journal:?}");
    assert!(journal.received.is_empty(), "{journal:?}");
    let status = fixture.status();
    assert_eq!(status["pending"], 6, "{status}");
    assert_eq!(status["in_doubt"], 0, "{status}");
}

#[test]
fn a_relay_that_never_greets_is_tried_no_more_than_max_connect_failures_without_a_login() {
    // The relay takes the connection and never greets: to missive, unreachable. With no login
    // the pool's connections do not wait for each other's, so all four would try at once and
    // fail together, one past the limit (with the default limit of 6, up to limit + pool - 1).
    let server =
        SmtpServer::start_in_background(Behavior::accept_all().on_greeting(|_| Some(Fault::Stall)));
    let fixture = Fixture::new(
        &people(6),
        "[smtp]\ntimeout_secs = 1\nmax_connect_failures = 3\npool_size = 4\n",
    );
    let run = fixture.send(&server.url(), &[]);

    assert_eq!(run.code, 75, "{}", run.all());
    assert!(
        run.stdout.contains("stopped: the server is unreachable")
            && run.stdout.contains("3 failures in a row"),
        "{}",
        run.all()
    );
    assert_played(&server, "Stall at greeting");
    assert_eq!(server.journal().connections, 3, "{}", run.all());
    let status = fixture.status();
    assert_eq!(status["pending"], 6, "{status}");
    assert_eq!(status["in_doubt"], 0, "{status}");
}
