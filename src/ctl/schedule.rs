//! Times as patronictl reads and prints them: `--scheduled` values (`now`, ISO 8601 with a zone,
//! or a naive time taken in the local time zone), the timestamp before an action's answer, and
//! the example time in the "When should ... take place" questions.
//!
//! Owns the one call into the C library (`localtime_r`) that gives the local UTC offset; every
//! other calendar computation is `crate::timestamp`'s.

use crate::timestamp::{self, TimestampError};
use crate::types::UnixMillis;

/// Seconds east of UTC of the local time zone at `at` (0 when the C library cannot tell).
fn utc_offset_secs(at_secs: i64) -> i64 {
    use nix::libc;
    let time: libc::time_t = at_secs;
    // SAFETY: an all-zero `tm` is a valid value of this plain C struct.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: localtime_r reads `time` and writes only into `tm`, both alive for the call.
    let converted = unsafe { !libc::localtime_r(&time, &mut tm).is_null() };
    if converted { tm.tm_gmtoff } else { 0 }
}

/// `at` as local wall-clock time with its offset: `2030-01-01T13:00:00+01:00`.
pub fn local_iso(at: UnixMillis) -> String {
    let offset = utc_offset_secs((at.0 / 1000) as i64);
    let shifted = UnixMillis((at.0 as i64 + offset * 1000).max(0) as u64);
    let wall = &timestamp::iso_time(shifted)[..19];
    let sign = if offset < 0 { '-' } else { '+' };
    let minutes = offset.abs() / 60;
    format!("{wall}{sign}{:02}:{:02}", minutes / 60, minutes % 60)
}

/// Local time with `digits` decimals of a second: patronictl prints `2023-09-13 14:15:23.07497`
/// before an action's answer and `2023-09-12 13:30:48` above `list -t`.
pub fn local_timestamp(at: UnixMillis, digits: usize) -> String {
    let offset = utc_offset_secs((at.0 / 1000) as i64);
    let shifted = UnixMillis((at.0 as i64 + offset * 1000).max(0) as u64);
    let iso = timestamp::iso_time(shifted).replacen('T', " ", 1);
    match digits {
        0 => iso[..19].to_owned(),
        d => iso[..20 + d.min(6)].to_owned(),
    }
}

/// The example in "When should the switchover take place (e.g. 2026-01-01T13:00 )": an hour
/// from now, local time, to the minute.
pub fn next_hour_example(now: UnixMillis) -> String {
    local_iso(UnixMillis(now.0 + 3_600_000))[..16].to_owned()
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "Unable to parse scheduled timestamp ({0}). It should be in an unambiguous format, e.g. ISO 8601"
)]
pub struct BadSchedule(pub String);

/// The `--scheduled` value given, else (unless `force`, which means now) the answer to
/// `question(example)` with `now` as its default; as the local ISO time to send, `None` for now.
pub fn scheduled_or_ask(
    terminal: &mut super::prompt::Terminal,
    given: Option<&str>,
    force: bool,
    question: impl FnOnce(&str) -> String,
) -> anyhow::Result<Option<String>> {
    let when = match (given, force) {
        (Some(text), _) => text.to_owned(),
        (None, true) => "now".to_owned(),
        (None, false) => terminal.ask(&question(&next_hour_example(UnixMillis::now())), "now")?,
    };
    Ok(parse_scheduled(&when)?.map(local_iso))
}

/// A `--scheduled` value: `None` for `now` (or nothing), else the moment. A time without a zone
/// is local time, as patronictl takes it.
pub fn parse_scheduled(text: &str) -> Result<Option<UnixMillis>, BadSchedule> {
    let text = text.trim();
    if text.is_empty() || text.eq_ignore_ascii_case("now") {
        return Ok(None);
    }
    match timestamp::parse_zoned(text, "switchover") {
        Ok(at) => Ok(Some(at)),
        Err(TimestampError::NoTimezone(_)) => {
            let as_utc = timestamp::parse_zoned(&format!("{text}Z"), "switchover")
                .map_err(|_| BadSchedule(text.to_owned()))?;
            Ok(Some(local_to_utc(as_utc.0 as i64, utc_offset_secs)))
        }
        Err(TimestampError::Unparsable) => Err(BadSchedule(text.to_owned())),
    }
}

/// A local wall-clock time (written as if it were UTC) as the moment it names, given the zone's
/// offset at a moment. The offset is looked up at the first guess again, which settles it
/// except inside a daylight-saving jump.
fn local_to_utc(wall_millis: i64, offset_at: impl Fn(i64) -> i64) -> UnixMillis {
    let wall_secs = wall_millis.div_euclid(1000);
    let guess = wall_secs - offset_at(wall_secs);
    let utc = wall_millis - offset_at(guess) * 1000;
    UnixMillis(utc.max(0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn now_and_nothing_mean_immediately() {
        assert_eq!(parse_scheduled("now"), Ok(None));
        assert_eq!(parse_scheduled(" NOW "), Ok(None));
        assert_eq!(parse_scheduled(""), Ok(None));
    }

    #[test]
    fn zoned_times_are_taken_as_written() {
        assert_eq!(
            parse_scheduled("2030-01-01T14:00+02:00"),
            Ok(Some(UnixMillis(1_893_499_200_000)))
        );
        assert_eq!(parse_scheduled("soon"), Err(BadSchedule("soon".to_owned())));
        assert!(
            BadSchedule("soon".into())
                .to_string()
                .starts_with("Unable to parse scheduled timestamp (soon)")
        );
    }

    #[test]
    fn naive_times_are_local() {
        let naive = parse_scheduled("2030-01-01T12:00").unwrap().unwrap();
        let wall = UnixMillis(1_893_499_200_000); // 2030-01-01T12:00 as if UTC
        let offset = utc_offset_secs(naive.0 as i64 / 1000);
        assert_eq!(naive.0 as i64 + offset * 1000, wall.0 as i64);
    }

    #[test]
    fn local_wall_time_to_utc_with_a_fixed_or_changing_offset() {
        let noon = 1_893_499_200_000; // 2030-01-01T12:00 as if UTC
        assert_eq!(
            local_to_utc(noon, |_| 3600),
            UnixMillis(noon as u64 - 3_600_000)
        );
        assert_eq!(
            local_to_utc(noon, |_| -18_000),
            UnixMillis(noon as u64 + 18_000_000)
        );
        // The offset changes between the wall time and the moment: the moment's offset wins.
        let at = local_to_utc(noon, |t| if t < noon / 1000 - 1800 { 7200 } else { 3600 });
        assert_eq!(at, UnixMillis(noon as u64 - 7_200_000));
    }

    #[test]
    fn printed_forms() {
        let at = UnixMillis(1_893_499_200_123);
        let iso = local_iso(at);
        assert_eq!(iso.len(), "2030-01-01T12:00:00+00:00".len(), "{iso}");
        assert_eq!(
            crate::timestamp::parse_zoned(&iso, "switchover"),
            Ok(UnixMillis(1_893_499_200_000))
        );
        assert_eq!(local_timestamp(at, 0).len(), 19);
        assert_eq!(local_timestamp(at, 5).len(), 25);
        assert!(local_timestamp(at, 5).ends_with(".12300"));
        assert_eq!(next_hour_example(at).len(), 16);
    }
}
