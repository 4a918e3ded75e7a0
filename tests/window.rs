//! `[window]`: a run started outside it connects to nobody and exits 75 saying when it opens;
//! inside it everyone is mailed; a run the window's end crosses finishes the messages in hand,
//! takes no more and stops (75), the rest left pending. Judged on what a real SMTP server
//! received, the send log and `status`.

use std::time::{Duration, SystemTime};

use jiff::{Timestamp, tz::TimeZone};
use missive::ratelimit::Limits;
use missive::recipients::RecipientReader;
use missive::send::{RunLimits, Stopped};
use missive::sendlog::{FileLog, Replay};

use crate::support::engine::{Prepared, loopback_route};
use crate::support::harness::{Fixture, people};
use crate::support::smtp_server::{Behavior, SmtpServer};

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

fn window(days: &[&str], hours: &str, zone: &str) -> String {
    let days: Vec<String> = days.iter().map(|d| format!("{d:?}")).collect();
    format!(
        "[window]\ndays = [{}]\nhours = \"{hours}\"\ntime_zone = \"{zone}\"\n",
        days.join(", ")
    )
}

#[test]
fn a_window_closed_now_connects_to_nobody_and_says_when_it_opens() {
    let server = SmtpServer::start_in_background(Behavior::accept_all());
    // Only tomorrow (in Paris), from 09:00: closed now, whatever the time.
    let paris = TimeZone::get("Europe/Paris").unwrap();
    let tomorrow = Timestamp::now().to_zoned(paris).date().tomorrow().unwrap();
    let day = DAYS[tomorrow.weekday().to_monday_zero_offset() as usize];
    let settings = format!(
        "[smtp]\nrate = 0.5\n{}",
        window(&[day], "09:00-18:00", "Europe/Paris")
    );
    let fixture = Fixture::new(&people(3), &settings);
    let run = fixture.send(&server.url(), &[]);
    assert_eq!(run.code, 75, "{}", run.all());
    let opens = tomorrow.at(9, 0, 0, 0).in_tz("Europe/Paris").unwrap();
    let utc = opens.timestamp().strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    assert!(
        run.stderr
            .contains(&format!("{} 09:00 Europe/Paris", tomorrow))
            && run.stderr.contains(&utc),
        "{}",
        run.all()
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(server.connections(), 0, "{}", run.all());
    assert!(server.messages().is_empty());
    assert!(fixture.log_records().is_empty());

    let status = fixture.status();
    assert_eq!(status["window_opens"], utc.as_str(), "{status}");
    assert_eq!(status["window_closes"], serde_json::Value::Null, "{status}");
    assert_eq!(status["pending"], 3, "{status}");
    // Three at one every two seconds, counted from tomorrow's opening, not from now.
    let eta = status["eta_secs"].as_i64().unwrap();
    let until_opens = opens.timestamp().as_second() - Timestamp::now().as_second();
    assert!(
        (until_opens + 6 - eta).abs() <= 2,
        "eta {eta} s, opens in {until_opens} s: {status}"
    );
    let text = fixture.command("status", &[]);
    let written = format!("{day} 09:00-18:00 Europe/Paris");
    assert!(
        text.stdout
            .contains(&format!("window {written}: closed, opens {utc}")),
        "{}",
        text.all()
    );
    let check = fixture.command("check", &[]);
    assert!(
        check.stdout.contains(&format!(
            "window {written}: messages go only then (closed now"
        )) && check.stdout.contains(&utc),
        "{}",
        check.all()
    );

    // A rehearsal ignores the window, as it ignores send_after.
    let dry = fixture.command("send", &["--dry-run"]);
    assert_eq!(dry.code, 0, "{}", dry.all());
}

#[test]
fn a_window_open_now_mails_everyone() {
    let server = SmtpServer::start_in_background(Behavior::accept_all());
    let fixture = Fixture::new(&people(4), &window(&DAYS, "00:00-24:00", "UTC"));
    let run = fixture.send(&server.url(), &[]);
    assert_eq!(run.code, 0, "{}", run.all());
    let mut to: Vec<_> = server
        .wait_for(4, Duration::from_secs(10))
        .iter()
        .map(|m| m.rcpt_to[0].clone())
        .collect();
    to.sort();
    assert_eq!(to.len(), 4, "{to:?}");
    let status = fixture.status();
    assert_eq!(status["sent"], 4, "{status}");
    assert_eq!(status["window_opens"], serde_json::Value::Null, "{status}");
    assert!(
        status["window_closes"]
            .as_str()
            .is_some_and(|t| t.ends_with("T00:00:00Z")),
        "{status}"
    );
}

#[test]
fn a_run_the_window_end_crosses_stops_taking_messages_and_a_later_run_finishes() {
    let server = SmtpServer::start_in_background(Behavior::accept_all());
    // Open all week: the engine is told it closes in 2 s, as `send` would be by its hours.
    let fixture = Fixture::new(&people(30), &window(&DAYS, "00:00-24:00", "UTC"));
    let prepared = Prepared::load(&fixture);
    let campaign = &prepared.campaign;
    let (log, _) = FileLog::open(&fixture.log_path(), &campaign.id).unwrap();
    let mut reader =
        RecipientReader::open(&campaign.recipients_path, &campaign.name_columns).unwrap();
    let route = loopback_route(server.port());
    // 30 people at 5 a second: 6 s of sending; the window closes after 2. (Its hours are
    // minutes: the binary cannot be made to meet a closing two seconds away, the engine can.)
    let closes = SystemTime::now() + Duration::from_secs(2);
    let pace = Limits {
        rate: Some(5.0),
        burst: 1,
        ..Limits::default()
    };
    let limits = RunLimits {
        window_closes: Some(closes),
        ..RunLimits::default()
    };
    let report = prepared
        .send_limited(
            &mut reader,
            &Replay::default(),
            route,
            Box::new(log),
            "test",
            (&pace, &limits),
        )
        .unwrap();
    let ended = SystemTime::now();
    assert_eq!(report.stopped, Some(Stopped::WindowClosed));
    assert!(
        ended.duration_since(closes).unwrap_or_default() < Duration::from_millis(500),
        "the run went on {:?} past the window",
        ended.duration_since(closes)
    );
    std::thread::sleep(Duration::from_millis(300));
    let sent = server.messages().len() as u64;
    assert!((5..=16).contains(&sent), "{sent} received");
    assert_eq!(report.counts.sent, sent);
    // Nobody expired: the rest wait for the window to open again.
    assert_eq!(report.counts.expired, 0);

    let status = fixture.status();
    assert_eq!(status["sent"], sent, "{status}");
    assert_eq!(status["pending"], 30 - sent, "{status}");

    // A later run, inside the window (the binary, on the same log; the engine above recorded
    // a made-up letter fingerprint): the rest, each once.
    let run = fixture.send(&server.url(), &["--allow-changed-letter"]);
    assert_eq!(run.code, 0, "{}", run.all());
    let received = server.wait_for(30, Duration::from_secs(20));
    let mut to: Vec<_> = received.iter().map(|m| m.rcpt_to[0].clone()).collect();
    to.sort();
    to.dedup();
    assert_eq!((received.len(), to.len()), (30, 30));
    assert_eq!(fixture.status()["sent"], 30);
}

#[test]
fn with_a_time_zone_column_each_person_is_mailed_in_their_own_window() {
    let server = SmtpServer::start_in_background(Behavior::accept_all());
    // From the current hour (UTC) for two hours, every day: open now in UTC, and in a zone
    // six hours ahead closed now (its clocks read six hours later; past 24:00 the window
    // would be over midnight, so near midnight it ends at 24:00).
    let started = Timestamp::now().to_zoned(TimeZone::UTC);
    let hour = started.hour();
    let hours = match hour {
        22 | 23 => format!("{hour:02}:00-24:00"),
        _ => format!("{hour:02}:00-{:02}:00", hour + 2),
    };
    let csv = "email,first_name,last_name,amount,fuseau\n\
               here@example.com,Ici,Nom,10,UTC\n\
               blank@example.com,Vide,Nom,10,\n\
               ahead@example.com,Devant,Nom,10,Etc/GMT-6\n\
               mars@example.com,Mars,Nom,10,Mars/Olympus\n";
    let settings = format!(
        "{}time_zone_column = \"fuseau\"\n",
        window(&DAYS, &hours, "UTC")
    );
    let fixture = Fixture::new(csv, &settings);
    let run = fixture.send(&server.url(), &[]);

    // Mailed: the one in UTC and the one with no zone (the window's); the one six hours ahead
    // waits for a later run, told when; the unknown zone is named with its line and field.
    assert_eq!(run.code, 75, "{}", run.all());
    let mut to: Vec<_> = server
        .wait_for(2, Duration::from_secs(10))
        .iter()
        .map(|m| m.rcpt_to[0].clone())
        .collect();
    to.sort();
    assert_eq!(to, ["blank@example.com", "here@example.com"]);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(server.messages().len(), 2);
    assert!(
        run.stdout
            .contains("1 person(s) wait for the sending window")
            && run.stdout.contains("column `fuseau`"),
        "{}",
        run.all()
    );
    assert!(
        run.stdout
            .contains(":5: field `fuseau`: \"Mars/Olympus\" is not a time zone"),
        "{}",
        run.all()
    );
    // status agrees: the unknown zone is an invalid row, and the window first opens for the
    // one waiting when their clocks next read this hour: 18 hours after it began here.
    let status = fixture.status();
    assert_eq!(
        (&status["sent"], &status["pending"], &status["invalid"]),
        (&2.into(), &1.into(), &1.into()),
        "{status}"
    );
    let opens: Timestamp = status["window_opens"].as_str().unwrap().parse().unwrap();
    let this_hour = started
        .with()
        .minute(0)
        .second(0)
        .subsec_nanosecond(0)
        .build()
        .unwrap();
    assert_eq!(
        opens,
        this_hour.timestamp() + jiff::SignedDuration::from_hours(18),
        "{status}"
    );
    assert_eq!(status["window_closes"], serde_json::Value::Null, "{status}");

    let check = fixture.command("check", &[]);
    assert_eq!(check.code, 65, "{}", check.all());
    assert!(
        check
            .stdout
            .contains(":5: field `fuseau`: \"Mars/Olympus\" is not a time zone")
            && check
                .stdout
                .contains("read in each person's own time zone (column `fuseau`"),
        "{}",
        check.all()
    );

    // The next run, still inside the UTC window, mails nobody twice.
    let again = fixture.send(&server.url(), &[]);
    assert_eq!(again.code, 75, "{}", again.all());
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(server.messages().len(), 2, "{}", again.all());
}

#[test]
fn check_warns_of_a_time_zone_column_the_list_does_not_have() {
    // `fuseau` in the campaign, `zone` in the list: everyone would silently be mailed in the
    // window's own zone.
    let settings = format!(
        "{}time_zone_column = \"fuseau\"\n",
        window(&DAYS, "00:00-24:00", "Europe/Paris")
    );
    let fixture = Fixture::new(
        "email,first_name,last_name,amount,zone\nzoe@example.com,Zoé,D,10,America/Montreal\n",
        &settings,
    );
    let check = fixture.command("check", &[]);
    let warning = check
        .stdout
        .lines()
        .find(|line| line.contains("no column `fuseau`"))
        .unwrap_or_else(|| panic!("no warning of the missing column: {}", check.all()));
    assert!(warning.contains("Europe/Paris"), "{warning}");
}

#[test]
fn status_counts_a_person_mailed_as_sent_whatever_their_zone_now_reads() {
    let server = SmtpServer::start_in_background(Behavior::accept_all());
    let settings = format!(
        "{}time_zone_column = \"fuseau\"\n",
        window(&DAYS, "00:00-24:00", "UTC")
    );
    let csv = "email,first_name,last_name,amount,fuseau\n\
               zoe@example.com,Zoé,D,10,UTC\n\
               noe@example.com,Noé,G,10,Europe/Paris\n";
    let fixture = Fixture::new(csv, &settings);
    let run = fixture.send(&server.url(), &[]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(server.wait_for(2, Duration::from_secs(10)).len(), 2);
    // The list is edited afterwards: a zone mistyped for someone already mailed. A send skips
    // them as done, never reading their zone; status must say the same.
    fixture.write(
        "recipients/list.csv",
        &csv.replace("Europe/Paris", "Europe/Pariss"),
    );
    let again = fixture.send(&server.url(), &[]);
    assert!(!again.stdout.contains("Europe/Pariss"), "{}", again.all());
    let status = fixture.status();
    assert_eq!(
        (&status["sent"], &status["invalid"]),
        (&2.into(), &0.into()),
        "{status}"
    );
}

#[test]
fn status_says_whose_window_is_closed_when_each_person_has_their_own() {
    // Open all day in UTC, where Zoé lives; her neighbour six hours ahead waits for a window
    // that, read in UTC, is open now.
    let started = Timestamp::now().to_zoned(TimeZone::UTC);
    let hour = started.hour();
    let hours = match hour {
        22 | 23 => format!("{hour:02}:00-24:00"),
        _ => format!("{hour:02}:00-{:02}:00", hour + 2),
    };
    let settings = format!(
        "{}time_zone_column = \"fuseau\"\n",
        window(&DAYS, &hours, "UTC")
    );
    let csv = "email,first_name,last_name,amount,fuseau\n\
               ahead@example.com,Devant,Nom,10,Etc/GMT-6\n";
    let fixture = Fixture::new(csv, &settings);
    let text = fixture.command("status", &[]);
    assert_eq!(text.code, 0, "{}", text.all());
    let line = text
        .stdout
        .lines()
        .find(|line| line.contains("window"))
        .unwrap_or_else(|| panic!("no window line: {}", text.all()));
    // Not "closed": it is open in UTC; closed for the one person still waiting.
    assert!(
        !line.contains(": closed,") && line.contains("own time zone"),
        "{line}"
    );
}
