//! The campaign's sending window (`[window]` in campaign.toml): days of the week and hours of
//! the day, in an IANA time zone, within which messages go. [`Window::at`] says, for an instant,
//! whether the window is open and until when, or when it next opens; daylight saving time is the
//! zone's (jiff's bundled tz database), so `09:00` stays nine in the morning all year.
//!
//! A window over midnight (`22:00-06:00`) is refused: it reads as two windows on two days, and
//! which day's name covers the early hours is a guess this file should not make.
//!
//! With `time_zone_column`, the same days and hours are read in each person's own zone, named
//! in that column of the list ([`Personal`]), so that a person gets the letter in their own
//! morning; a person with none gets the window's `time_zone`.

use std::collections::HashMap;
use std::fmt;
use std::time::SystemTime;

use jiff::civil::{Date, Time, Weekday};
use jiff::tz::TimeZone;
use jiff::{Timestamp, Zoned};
use serde::Deserialize;

/// `[window]`: days, hours and the time zone they are read in.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Window {
    pub days: Days,
    pub hours: Hours,
    pub time_zone: Zone,
    /// The recipient column naming each person's own time zone, if the window is read there.
    #[serde(default)]
    pub time_zone_column: Option<String>,
}

/// `days = ["mon", "tue", …]`: at least one, each named once.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "Vec<String>")]
pub struct Days(Vec<Weekday>);

/// `hours = "09:00-18:00"`: from the first time (included) to the second (excluded), same day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Hours {
    start: Time,
    end: Time,
}

/// `time_zone = "Europe/Paris"`: an IANA name.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "String")]
pub struct Zone(TimeZone);

/// The window as seen at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Messages may go until `closes`.
    Open { closes: SystemTime },
    /// Nothing goes before `opens`.
    Closed { opens: SystemTime },
}

const NAMES: [(&str, Weekday); 7] = [
    ("mon", Weekday::Monday),
    ("tue", Weekday::Tuesday),
    ("wed", Weekday::Wednesday),
    ("thu", Weekday::Thursday),
    ("fri", Weekday::Friday),
    ("sat", Weekday::Saturday),
    ("sun", Weekday::Sunday),
];

impl TryFrom<Vec<String>> for Days {
    type Error = String;

    fn try_from(names: Vec<String>) -> Result<Self, String> {
        if names.is_empty() {
            return Err("names no day: the window would never open; write e.g. [\"mon\", \"tue\", \"wed\", \"thu\", \"fri\"]".into());
        }
        let mut days = Vec::new();
        for name in names {
            let Some((_, day)) = NAMES.iter().find(|(n, _)| name.eq_ignore_ascii_case(n)) else {
                return Err(format!(
                    "{name:?} is not a day: write mon, tue, wed, thu, fri, sat or sun"
                ));
            };
            if days.contains(day) {
                return Err(format!("{name:?} is named twice"));
            }
            days.push(*day);
        }
        Ok(Days(days))
    }
}

impl TryFrom<String> for Hours {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        let refused = || format!("{text:?} is not hours such as \"09:00-18:00\"");
        let time = |part: &str| -> Result<Time, String> {
            let (h, m) = part.trim().split_once(':').ok_or_else(refused)?;
            let digits = |s: &str| s.len() == 2 && s.bytes().all(|b| b.is_ascii_digit());
            if !digits(h) || !digits(m) {
                return Err(refused());
            }
            let (h, m): (i8, i8) = (
                h.parse().map_err(|_| refused())?,
                m.parse().map_err(|_| refused())?,
            );
            // `24:00` is the end of the day: the last minute is then in the window.
            match (h, m) {
                (24, 0) => Ok(Time::MAX),
                _ => Time::new(h, m, 0, 0).map_err(|_| refused()),
            }
        };
        let (start, end) = text.split_once('-').ok_or_else(refused)?;
        let (start, end) = (time(start)?, time(end)?);
        if start == Time::MAX {
            return Err(refused());
        }
        if start >= end {
            return Err(format!(
                "{text:?} ends before it starts: a window over midnight is not supported; \
                 write the hours of one day, such as \"09:00-18:00\" (\"00:00-24:00\" is the whole day)"
            ));
        }
        Ok(Hours { start, end })
    }
}

impl TryFrom<String> for Zone {
    type Error = String;

    fn try_from(name: String) -> Result<Self, String> {
        TimeZone::get(&name).map(Zone).map_err(|_| {
            format!("{name:?} is not a time zone: write an IANA name such as \"Europe/Paris\"")
        })
    }
}

impl Window {
    /// Whether messages may go at `now`, and until when; or when they next may.
    pub fn at(&self, now: SystemTime) -> State {
        self.at_in(&self.time_zone.0, now)
    }

    /// [`Window::at`] with the days and hours read in `zone`.
    fn at_in(&self, zone: &TimeZone, now: SystemTime) -> State {
        let now = Timestamp::try_from(now).unwrap_or(Timestamp::MAX);
        let today = now.to_zoned(zone.clone()).date();
        // A day named in `days` comes within the week; a window emptied by a DST gap (02:00-
        // 03:00 on the last Sunday of March in Paris) is passed over, and the one after sought.
        let mut day = today;
        for _ in 0..15 {
            if self.days.0.contains(&day.weekday()) {
                let (start, end) = (
                    instant(zone, day, self.hours.start),
                    instant(zone, day, self.hours.end),
                );
                if start < end && now < end {
                    return match now >= start {
                        true => State::Open { closes: end.into() },
                        false => State::Closed {
                            opens: start.into(),
                        },
                    };
                }
            }
            let Ok(next) = day.tomorrow() else { break };
            day = next;
        }
        // Only past the calendar's end (year 9999): never open again.
        State::Closed {
            opens: Timestamp::MAX.into(),
        }
    }

    /// When `count` messages are all sent, from `now`, going only while the window is open, at
    /// `per_second` (none: as fast as the relay takes them) and at most `per_day` in one
    /// opening (a window holds one stretch a day). `None` when it cannot be told: no pace at
    /// all, or a window that would not be done within ten years.
    pub fn finish(
        &self,
        now: SystemTime,
        count: u64,
        per_second: Option<f64>,
        per_day: Option<u64>,
    ) -> Option<SystemTime> {
        if per_second.is_none() && per_day.is_none() {
            return None;
        }
        if count == 0 {
            // Nothing left is done now, not when the window next opens.
            return Some(now);
        }
        let horizon = now + std::time::Duration::from_secs(10 * 366 * 86_400);
        let (mut at, mut left) = (now, count as f64);
        while at < horizon {
            match self.at(at) {
                State::Closed { opens } => at = opens,
                State::Open { closes } => {
                    let stretch = closes.duration_since(at).unwrap_or_default().as_secs_f64();
                    let fits = per_second.map_or(f64::INFINITY, |rate| stretch * rate);
                    let fits = per_day.map_or(fits, |day| fits.min(day as f64));
                    if left <= fits {
                        let secs = per_second.map_or(0.0, |rate| left / rate);
                        return Some(at + std::time::Duration::from_secs_f64(secs));
                    }
                    left -= fits;
                    at = closes;
                }
            }
        }
        None
    }

    /// `instant` as people in the window's zone and in UTC read it.
    pub fn describe(&self, instant: SystemTime) -> String {
        let Ok(at) = Timestamp::try_from(instant) else {
            return "never".into();
        };
        let local = at.to_zoned(self.time_zone.0.clone());
        format!(
            "{} {} ({})",
            local.strftime("%a %Y-%m-%d %H:%M"),
            self.time_zone,
            at.strftime("%Y-%m-%dT%H:%M:%SZ")
        )
    }
}

/// The instant of `time` on `day` in `zone`. In a DST gap (Paris, last Sunday of March,
/// 02:00-03:00) a time that does not exist is read as the clocks are, an hour on (02:30 is
/// 03:30); in the fold (last Sunday of October, 02:00-03:00 twice), the first of the two.
fn instant(zone: &TimeZone, day: Date, time: Time) -> Timestamp {
    let end_of_day = time == Time::MAX;
    let zoned: Option<Zoned> = match end_of_day {
        // `24:00`: midnight starting the next day.
        true => day
            .tomorrow()
            .ok()
            .and_then(|d| d.to_zoned(zone.clone()).ok()),
        false => day.to_datetime(time).to_zoned(zone.clone()).ok(),
    };
    zoned.map_or(Timestamp::MAX, |z| z.timestamp())
}

/// The window read in each person's own time zone (`time_zone_column`). Zones are looked up
/// once per name: a list names a few dozen zones, for any number of people.
#[derive(Debug, Clone)]
pub struct Personal {
    window: Window,
    column: String,
    zones: HashMap<String, Option<TimeZone>>,
}

impl Personal {
    /// The window of a campaign whose `[window]` names a `time_zone_column`; `None` otherwise.
    pub fn of(window: &Window) -> Option<Personal> {
        let column = window.time_zone_column.clone()?;
        Some(Personal {
            window: window.clone(),
            column,
            zones: HashMap::new(),
        })
    }

    /// The column the zones are read from.
    pub fn column(&self) -> &str {
        &self.column
    }

    /// The window at `now` for a person whose zone column holds `value` (absent or blank: the
    /// window's own zone). `Err` says why a value is no zone, for the row's error.
    pub fn at(&mut self, value: Option<&str>, now: SystemTime) -> Result<State, String> {
        let name = value.map(str::trim).unwrap_or_default();
        if name.is_empty() {
            return Ok(self.window.at(now));
        }
        let zone = self
            .zones
            .entry(name.to_owned())
            .or_insert_with(|| TimeZone::get(name).ok());
        match zone {
            Some(zone) => Ok(self.window.at_in(zone, now)),
            None => Err(format!(
                "{name:?} is not a time zone: write an IANA name such as \"Europe/Paris\", or \
                 leave it empty for the window's {}",
                self.window.time_zone
            )),
        }
    }
}

impl fmt::Display for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.iana_name().unwrap_or("UTC"))
    }
}

impl fmt::Display for Window {
    /// As written in campaign.toml: `mon tue wed thu fri 09:00-18:00 Europe/Paris`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for day in &self.days.0 {
            let name = NAMES.iter().find(|(_, d)| d == day).map_or("?", |(n, _)| n);
            write!(f, "{name} ")?;
        }
        let end = match self.hours.end {
            Time::MAX => "24:00".to_string(),
            end => end.strftime("%H:%M").to_string(),
        };
        write!(
            f,
            "{}-{end} {}",
            self.hours.start.strftime("%H:%M"),
            self.time_zone
        )
    }
}

#[cfg(test)]
#[path = "window/tests.rs"]
mod tests;
