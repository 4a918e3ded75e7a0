use super::*;

fn window(days: &[&str], hours: &str, zone: &str) -> Window {
    Window {
        days: Days::try_from(days.iter().map(|d| d.to_string()).collect::<Vec<_>>()).unwrap(),
        hours: Hours::try_from(hours.to_string()).unwrap(),
        time_zone: Zone::try_from(zone.to_string()).unwrap(),
        time_zone_column: None,
    }
}

fn at(text: &str) -> SystemTime {
    text.parse::<Timestamp>().unwrap().into()
}

/// Open until `closes`, a UTC time as [`at`] reads it.
fn open(closes: &str) -> State {
    State::Open { closes: at(closes) }
}

/// Closed until `opens`.
fn closed(opens: &str) -> State {
    State::Closed { opens: at(opens) }
}

const WEEK: [&str; 5] = ["mon", "tue", "wed", "thu", "fri"];

#[test]
fn open_inside_the_hours_of_a_named_day_until_their_end() {
    let w = window(&WEEK, "09:00-18:00", "Europe/Paris");
    // Monday 30 November 2026, 10:00 in Paris (UTC+1).
    assert_eq!(
        w.at(at("2026-11-30T09:00:00Z")),
        open("2026-11-30T17:00:00Z")
    );
    // The start is in, the end is out.
    assert_eq!(
        w.at(at("2026-11-30T08:00:00Z")),
        open("2026-11-30T17:00:00Z")
    );
    assert_eq!(
        w.at(at("2026-11-30T17:00:00Z")),
        closed("2026-12-01T08:00:00Z")
    );
}

#[test]
fn closed_before_the_hours_and_over_the_weekend() {
    let w = window(&WEEK, "09:00-18:00", "Europe/Paris");
    assert_eq!(
        w.at(at("2026-11-30T07:59:00Z")),
        closed("2026-11-30T08:00:00Z")
    );
    // Friday 4 December, 19:00 in Paris: Monday 7 at 09:00.
    assert_eq!(
        w.at(at("2026-12-04T18:00:00Z")),
        closed("2026-12-07T08:00:00Z")
    );
    // Only Sunday: a week on.
    let sunday = window(&["sun"], "10:00-11:00", "UTC");
    assert_eq!(
        sunday.at(at("2026-12-06T11:00:00Z")),
        closed("2026-12-13T10:00:00Z")
    );
}

#[test]
fn daylight_saving_time_keeps_the_hours_local() {
    let w = window(&["sat", "sun", "mon"], "09:00-18:00", "Europe/Paris");
    // Saturday 28 March 2026 is in UTC+1; Sunday 29 (last of March) in UTC+2 from 02:00.
    assert_eq!(
        w.at(at("2026-03-28T17:30:00Z")),
        closed("2026-03-29T07:00:00Z")
    );
    // Sunday 25 October 2026 (last of October): back to UTC+1 at 03:00.
    assert_eq!(
        w.at(at("2026-10-24T16:00:00Z")),
        closed("2026-10-25T08:00:00Z")
    );
    assert_eq!(
        w.at(at("2026-10-25T08:00:00Z")),
        open("2026-10-25T17:00:00Z")
    );
}

#[test]
fn hours_in_the_gap_or_the_fold_of_a_dst_change() {
    // 02:00-03:00 does not exist on 29 March 2026 in Paris: that day has no window.
    let gap = window(&["sun"], "02:00-03:00", "Europe/Paris");
    assert_eq!(
        gap.at(at("2026-03-28T12:00:00Z")),
        closed("2026-04-05T00:00:00Z")
    );
    // A time in the gap is read an hour later, as the clocks are: 02:30 is 03:30.
    let shifted = window(&["sun"], "02:30-04:00", "Europe/Paris");
    assert_eq!(
        shifted.at(at("2026-03-28T12:00:00Z")),
        closed("2026-03-29T01:30:00Z")
    );
    // 02:00-02:30 comes twice on 25 October 2026: the first time (UTC+2) counts.
    let fold = window(&["sun"], "02:00-02:30", "Europe/Paris");
    assert_eq!(
        fold.at(at("2026-10-24T12:00:00Z")),
        closed("2026-10-25T00:00:00Z")
    );
    // A window across the change is an hour longer in October.
    let night = window(&["sun"], "01:00-04:00", "Europe/Paris");
    assert_eq!(
        night.at(at("2026-10-24T23:00:00Z")),
        open("2026-10-25T03:00:00Z")
    );
}

#[test]
fn the_whole_day_ends_at_midnight() {
    let w = window(&["mon"], "00:00-24:00", "Europe/Paris");
    assert_eq!(
        w.at(at("2026-11-30T22:59:00Z")),
        open("2026-11-30T23:00:00Z")
    );
    assert_eq!(w.to_string(), "mon 00:00-24:00 Europe/Paris");
}

#[test]
fn what_is_refused_says_why() {
    let hours = |text: &str| Hours::try_from(text.to_string()).unwrap_err();
    assert!(
        hours("18:00-09:00").contains("over midnight"),
        "{}",
        hours("18:00-09:00")
    );
    assert!(hours("09:00-09:00").contains("ends before it starts"));
    for wrong in [
        "9-18",
        "09:00",
        "9:00-18:00",
        "09:60-18:00",
        "25:00-26:00",
        "24:00-24:00",
    ] {
        assert!(
            hours(wrong).contains("is not hours"),
            "{wrong}: {}",
            hours(wrong)
        );
    }
    let days = |names: &[&str]| {
        Days::try_from(names.iter().map(|d| d.to_string()).collect::<Vec<_>>()).unwrap_err()
    };
    assert!(days(&[]).contains("names no day"));
    assert!(days(&["lundi"]).contains("\"lundi\" is not a day"));
    assert!(days(&["mon", "Mon"]).contains("named twice"));
    let zone = Zone::try_from("Europe/Lutece".to_string()).unwrap_err();
    assert!(zone.contains("not a time zone"), "{zone}");
}

#[test]
fn describe_gives_the_zone_and_utc() {
    let w = window(&WEEK, "09:00-18:00", "Europe/Paris");
    assert_eq!(
        w.describe(at("2026-12-01T08:00:00Z")),
        "Tue 2026-12-01 09:00 Europe/Paris (2026-12-01T08:00:00Z)"
    );
}

#[test]
fn a_persons_own_zone_moves_the_window_and_a_blank_one_is_the_windows() {
    let mut w = window(&WEEK, "09:00-18:00", "Europe/Paris");
    assert!(Personal::of(&w).is_none(), "no column, no personal window");
    w.time_zone_column = Some("fuseau".into());
    let mut personal = Personal::of(&w).unwrap();
    assert_eq!(personal.column(), "fuseau");
    // Monday 30 November 2026, 08:30 UTC: 09:30 in Paris, 03:30 in Montreal, 17:30 in Tokyo.
    let now = at("2026-11-30T08:30:00Z");
    let paris = State::Open {
        closes: at("2026-11-30T17:00:00Z"),
    };
    assert_eq!(personal.at(None, now), Ok(paris));
    assert_eq!(personal.at(Some("  "), now), Ok(paris));
    assert_eq!(personal.at(Some("Europe/Paris"), now), Ok(paris));
    assert_eq!(
        personal.at(Some("America/Montreal"), now),
        Ok(closed("2026-11-30T14:00:00Z"))
    );
    assert_eq!(
        personal.at(Some(" Asia/Tokyo "), now),
        Ok(open("2026-11-30T09:00:00Z"))
    );
    let refused = personal.at(Some("Mars/Olympus"), now).unwrap_err();
    assert!(
        refused.contains("\"Mars/Olympus\" is not a time zone") && refused.contains("Europe/Paris"),
        "{refused}"
    );
    // Each name looked up once, refused ones too.
    assert_eq!(personal.zones.len(), 4);
}

#[test]
fn the_end_of_a_campaign_counts_only_the_hours_the_window_is_open() {
    let w = window(&WEEK, "09:00-18:00", "Europe/Paris");
    // Monday 30 November 2026, 16:00 in Paris: two hours left today.
    let now = at("2026-11-30T15:00:00Z");
    // One message a second: 7,200 today, 32,400 a day after that.
    let done = |count, per_day| w.finish(now, count, Some(1.0), per_day);
    assert_eq!(done(3_600, None), Some(at("2026-11-30T16:00:00Z")));
    assert_eq!(done(7_200, None), Some(at("2026-11-30T17:00:00Z")));
    // 100 more go on Tuesday from 09:00 (08:00 UTC).
    assert_eq!(done(7_300, None), Some(at("2026-12-01T08:01:40Z")));
    // Friday's evening to Monday's morning is closed: 2 h + 4 × 9 h = 39,600 s by Friday's end.
    assert_eq!(
        done(7_200 + 4 * 32_400 + 60, None),
        Some(at("2026-12-07T08:01:00Z"))
    );
    // At most 1,000 in one opening: 1,000 today, then 1,000 a day.
    assert_eq!(done(2_500, Some(1_000)), Some(at("2026-12-02T08:08:20Z")));
    // No pace: as fast as the relay goes, which nothing here tells.
    assert_eq!(w.finish(now, 10, None, None), None);
    // Only a daily cap: the opening where the last one goes.
    assert_eq!(
        w.finish(now, 2_500, None, Some(1_000)),
        Some(at("2026-12-02T08:00:00Z"))
    );
}

#[test]
fn nothing_left_is_done_now_even_while_the_window_is_closed() {
    let w = window(&WEEK, "09:00-18:00", "Europe/Paris");
    // Saturday 5 December 2026: closed until Monday's morning.
    let saturday = at("2026-12-05T12:00:00Z");
    assert_eq!(w.finish(saturday, 0, Some(1.0), None), Some(saturday));
    assert_eq!(w.finish(saturday, 0, None, Some(1_000)), Some(saturday));
}
