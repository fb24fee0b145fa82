//! `[chaos]`: the game-day schedule. Only the schedule's shape is checked here (each
//! entry's file is a `.toml` path resolved against the configuration file's
//! directory, and runs `every` period or daily `at` a time); the experiment itself is
//! read and checked by the chaos crate when the server starts, which names its line
//! and field, as the gate's suites are.

use std::path::Path;
use std::time::Duration;

use super::Checker;
use super::engine::base_dir;
use crate::path::FieldPath;
use crate::resolved::{Chaos, ClientKey, GameDayTime, ScheduledExperiment};
use crate::schema;

/// The shortest period of an `every` entry.
const MIN_EVERY: Duration = Duration::from_secs(1);

pub(super) fn chaos(
    c: &mut Checker<'_>,
    raw: &schema::Chaos,
    keys: &[ClientKey],
    source: &str,
) -> Chaos {
    let path = FieldPath::root("chaos");
    let base = base_dir(source);
    let mut schedule = Vec::with_capacity(raw.schedule.len());
    for (i, entry) in raw.schedule.iter().enumerate() {
        let at = path.key("schedule").index(i);
        let file = Path::new(&entry.experiment);
        let is_toml = file
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e.eq_ignore_ascii_case("toml"));
        if !is_toml {
            c.invalid(
                at.key("experiment"),
                "must be an experiment file ending in .toml",
            );
            continue;
        }
        let Some(when) = when(c, &at, entry) else {
            continue;
        };
        schedule.push(ScheduledExperiment {
            file: match &base {
                Some(base) if file.is_relative() => base.join(file),
                _ => file.to_path_buf(),
            },
            when,
            vars: entry.vars.clone(),
        });
    }
    let client_key = match (&raw.client_key, keys.is_empty()) {
        (Some(name), _) if !keys.iter().any(|k| &k.name == name) => {
            let known: Vec<&str> = keys.iter().map(|k| k.name.as_str()).collect();
            let message = format!(
                "names no [[client_keys]] entry (known: {})",
                known.join(", ")
            );
            c.invalid(path.key("client_key"), message);
            None
        }
        (None, false) if !raw.schedule.is_empty() => {
            let message = "the scheduled experiments need a client key to present: name one of [[client_keys]]";
            c.invalid(path.key("client_key"), message);
            None
        }
        (name, _) => name.clone(),
    };
    if raw.history.as_ref().is_some_and(|h| h.trim().is_empty()) {
        c.invalid(path.key("history"), "names no file");
    }
    let history = raw.history.as_ref().map(|file| match &base {
        Some(base) if Path::new(file).is_relative() => base.join(file),
        _ => Path::new(file).to_path_buf(),
    });
    Chaos {
        schedule,
        client_key,
        history,
    }
}

fn when(c: &mut Checker<'_>, at: &FieldPath, entry: &schema::GameDay) -> Option<GameDayTime> {
    match (entry.every, &entry.at) {
        (Some(every), None) if every.0 >= MIN_EVERY => Some(GameDayTime::Every(every.0)),
        (Some(_), None) => {
            c.invalid(at.key("every"), "must be at least \"1s\"");
            None
        }
        (None, Some(time)) => match minute_of_day(time) {
            Some(minute_of_day) => Some(GameDayTime::DailyAt { minute_of_day }),
            None => {
                let message = format!("{time:?} is not a time of day as \"HH:MM\" (UTC)");
                c.invalid(at.key("at"), message);
                None
            }
        },
        (Some(_), Some(_)) | (None, None) => {
            c.invalid(
                at.key("every"),
                "give `every` (a period) or `at` (\"HH:MM\"), one of them",
            );
            None
        }
    }
}

/// `"HH:MM"` as minutes after midnight.
fn minute_of_day(time: &str) -> Option<u32> {
    let (hours, minutes) = time.split_once(':')?;
    let two_digits = |s: &str| s.len() == 2 && s.bytes().all(|b| b.is_ascii_digit());
    if !two_digits(hours) || !two_digits(minutes) {
        return None;
    }
    let (hours, minutes): (u32, u32) = (hours.parse().ok()?, minutes.parse().ok()?);
    (hours < 24 && minutes < 60).then_some(hours * 60 + minutes)
}

#[cfg(test)]
mod tests {
    use super::minute_of_day;

    #[test]
    fn a_time_of_day_is_two_digits_colon_two_digits() {
        assert_eq!(minute_of_day("00:00"), Some(0));
        assert_eq!(minute_of_day("03:30"), Some(210));
        assert_eq!(minute_of_day("23:59"), Some(1439));
        for bad in ["24:00", "12:60", "3:30", "03:3", "0330", "aa:bb", ""] {
            assert_eq!(minute_of_day(bad), None, "{bad}");
        }
    }
}
