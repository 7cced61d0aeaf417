//! Wall-clock timestamps as text: the forms Patroni prints (`/history`, `/patroni`), the form
//! the PostgreSQL adapter reads times in, and operators' `scheduled_at` / `schedule` values
//! (ISO 8601 with a mandatory time zone, as Patroni requires).
//!
//! Calendar arithmetic is Howard Hinnant's civil-from-days and days-from-civil algorithms.

use crate::types::UnixMillis;

/// `YYYY-MM-DDTHH:MM:SS.ffffff+00:00`, Patroni's form with a `T`.
pub fn iso_time(at: UnixMillis) -> String {
    let secs = (at.0 / 1000) as i64;
    let micros = (at.0 % 1000) * 1000;
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}+00:00",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Epoch seconds of a `YYYY-MM-DD HH:MM:SS[.ffffff][+00:00]` UTC timestamp (as the adapter
/// formats PostgreSQL's times).
pub fn epoch_seconds(text: &str) -> Option<f64> {
    let text = text.trim().trim_end_matches("+00:00");
    let (date, time) = text.split_once([' ', 'T'])?;
    let (days, (hh, mm, ss), fraction) = (date_days(date)?, hms(time)?, fraction(time));
    Some((days * 86_400 + hh * 3600 + mm * 60 + ss) as f64 + fraction)
}

/// Why an operator's timestamp was refused; the messages are Patroni's.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TimestampError {
    #[error("Timezone information is mandatory for the scheduled {0}")]
    NoTimezone(&'static str),
    #[error(
        "Unable to parse scheduled timestamp. It should be in an unambiguous format, e.g. ISO 8601"
    )]
    Unparsable,
}

/// An ISO 8601 timestamp with a time zone: `2030-01-01T12:00:00+02:00`, `... 12:00Z`,
/// fractions of a second allowed. `what` names the action for the missing-zone message.
pub fn parse_zoned(text: &str, what: &'static str) -> Result<UnixMillis, TimestampError> {
    let text = text.trim();
    let (date, rest) = text
        .split_once(['T', ' '])
        .ok_or(TimestampError::Unparsable)?;
    let days = date_days(date).ok_or(TimestampError::Unparsable)?;
    let (time, offset_secs) = if let Some(time) = rest.strip_suffix(['Z', 'z']) {
        (time, 0)
    } else if let Some(at) = rest.rfind(['+', '-']) {
        let (time, zone) = rest.split_at(at);
        (time, zone_offset(zone).ok_or(TimestampError::Unparsable)?)
    } else {
        return if hms(rest).is_some() {
            Err(TimestampError::NoTimezone(what))
        } else {
            Err(TimestampError::Unparsable)
        };
    };
    let (hh, mm, ss) = hms(time).ok_or(TimestampError::Unparsable)?;
    let secs = days * 86_400 + hh * 3600 + mm * 60 + ss - offset_secs;
    let millis = secs * 1000 + (fraction(time) * 1000.0).round() as i64;
    u64::try_from(millis)
        .map(UnixMillis)
        .map_err(|_| TimestampError::Unparsable)
}

/// `+HH:MM`, `+HHMM` or `+HH` in seconds east of UTC.
fn zone_offset(zone: &str) -> Option<i64> {
    let sign = if zone.starts_with('-') { -1 } else { 1 };
    let digits: String = zone[1..].chars().filter(|c| *c != ':').collect();
    if !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let (h, m) = match digits.len() {
        2 => (digits.parse::<i64>().ok()?, 0),
        4 => (digits[..2].parse().ok()?, digits[2..].parse().ok()?),
        _ => return None,
    };
    (h < 24 && m < 60).then_some(sign * (h * 3600 + m * 60))
}

/// `HH:MM[:SS][.fff]`.
fn hms(time: &str) -> Option<(i64, i64, i64)> {
    let whole = time.split('.').next()?;
    let mut parts = whole.split(':').map(|p| {
        (p.len() == 2 && p.chars().all(|c| c.is_ascii_digit()))
            .then(|| p.parse::<i64>().ok())
            .flatten()
    });
    let hh = parts.next()??;
    let mm = parts.next()??;
    let ss = parts.next().unwrap_or(Some(0))?;
    if parts.next().is_some() || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    Some((hh, mm, ss))
}

fn fraction(time: &str) -> f64 {
    time.split_once('.')
        .and_then(|(_, f)| format!("0.{f}").parse().ok())
        .unwrap_or(0.0)
}

/// Days since 1970-01-01 of `YYYY-MM-DD`.
fn date_days(date: &str) -> Option<i64> {
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    if d.next().is_some() || !(1..=12).contains(&m) || !(1..=31).contains(&day) {
        return None;
    }
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_read_back_as_epoch_seconds() {
        assert_eq!(epoch_seconds("1970-01-01 00:00:00.000000+00:00"), Some(0.0));
        assert_eq!(
            epoch_seconds("2026-11-24 18:39:54.223393+00:00"),
            Some(1_795_545_594.223393)
        );
        assert_eq!(epoch_seconds("2000-02-29 12:00:00"), Some(951_825_600.0));
        assert_eq!(epoch_seconds("not a time"), None);
    }

    #[test]
    fn times_print_like_patroni_history() {
        assert_eq!(iso_time(UnixMillis(0)), "1970-01-01T00:00:00.000000+00:00");
        assert_eq!(
            iso_time(UnixMillis(1_795_545_594_223)),
            "2026-11-24T18:39:54.223000+00:00"
        );
    }

    #[test]
    fn zoned_timestamps() {
        let noon = UnixMillis(1_893_499_200_000); // 2030-01-01T12:00:00Z
        for text in [
            "2030-01-01T12:00:00+00:00",
            "2030-01-01T12:00:00Z",
            "2030-01-01 12:00Z",
            "2030-01-01T14:00:00+02:00",
            "2030-01-01T14:00:00+0200",
            "2030-01-01T07:00:00-05",
        ] {
            assert_eq!(parse_zoned(text, "switchover"), Ok(noon), "{text}");
        }
        assert_eq!(
            parse_zoned("2030-01-01T12:00:00.250Z", "switchover"),
            Ok(UnixMillis(noon.0 + 250))
        );
        assert_eq!(
            parse_zoned("2030-01-01T12:00:00", "switchover"),
            Err(TimestampError::NoTimezone("switchover"))
        );
        assert_eq!(
            TimestampError::NoTimezone("restart").to_string(),
            "Timezone information is mandatory for the scheduled restart"
        );
        for bad in [
            "tomorrow",
            "2030-13-01T12:00Z",
            "2030-01-01T25:00Z",
            "2030-01-01",
            "",
        ] {
            assert_eq!(
                parse_zoned(bad, "switchover"),
                Err(TimestampError::Unparsable),
                "{bad}"
            );
        }
    }
}
