//! Wall-clock timestamps as text: the forms Patroni prints (`/history`, `/patroni`), the form
//! the PostgreSQL adapter reads times in, and operators' `scheduled_at` / `schedule` values
//! (ISO 8601 with a mandatory time zone, as Patroni requires).
//!
//! The calendar and the ISO 8601 grammar are jiff's; this module only fixes the forms Tribune
//! prints and maps jiff's answers to Patroni's error messages. Only UTC and fixed offsets
//! occur, so no time zone database is involved.

use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use jiff::{Timestamp, fmt::strtime};

use crate::types::UnixMillis;

/// `YYYY-MM-DDTHH:MM:SS.ffffff+00:00`, Patroni's form with a `T`.
pub fn iso_time(at: UnixMillis) -> String {
    let millis = i64::try_from(at.0).unwrap_or(i64::MAX);
    let ts = Timestamp::from_millisecond(millis).unwrap_or(Timestamp::MAX);
    // A timestamp is broken down in UTC; `%.6f` pads the fraction to microseconds.
    strtime::format("%Y-%m-%dT%H:%M:%S%.6f%:z", ts).unwrap_or_default()
}

/// Epoch seconds of a `YYYY-MM-DD HH:MM:SS[.ffffff][+00:00]` timestamp (as the adapter
/// formats PostgreSQL's times); without an offset it is UTC.
pub fn epoch_seconds(text: &str) -> Option<f64> {
    let text = text.trim();
    let ts = match text.parse::<Timestamp>() {
        Ok(ts) => ts,
        Err(_) => TimeZone::UTC.to_timestamp(civil_date_time(text)?).ok()?,
    };
    Some(ts.as_nanosecond() as f64 / 1e9)
}

/// A date and a time of day without an offset; a date alone is not enough.
fn civil_date_time(text: &str) -> Option<DateTime> {
    text.contains(['T', 't', ' '])
        .then(|| text.parse::<DateTime>().ok())
        .flatten()
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
    match text.parse::<Timestamp>() {
        Ok(ts) => u64::try_from(ts.as_millisecond())
            .map(UnixMillis)
            .map_err(|_| TimestampError::Unparsable),
        Err(_) if civil_date_time(text).is_some() => Err(TimestampError::NoTimezone(what)),
        Err(_) => Err(TimestampError::Unparsable),
    }
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
            // Calendar checks are jiff's: there is no 30 February (the hand-written parser
            // before it took this for 2 March).
            "2030-02-30T12:00Z",
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
