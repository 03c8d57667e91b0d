//! The time Duet stamps on what it stores, the [`Clock`] port services read it from (so a
//! test can hold time still or move it on), and the one way a time is written.

use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};
use serde::Serializer;

/// Now, truncated to microseconds: PostgreSQL keeps no finer, and a time returned in a 201
/// must equal the same time read back later, on every backend.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// Where a service reads the current time.
pub trait Clock: Send + Sync {
    /// The current time, in whole microseconds (see [`now`]).
    fn now(&self) -> DateTime<Utc>;
}

/// The machine's clock: what every service uses unless given another.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        now()
    }
}

/// RFC 3339 in UTC with exactly six fractional digits and a `Z`
/// (`2026-01-02T03:04:05.120000Z`): every channel (HTTP bodies, WebSocket frames) writes
/// every time this way, so the same instant is the same bytes wherever a client sees it.
/// Finer digits (a presence time taken from the system clock) are cut, not rounded.
pub fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// `#[serde(serialize_with = "...")]` for a time, written by [`rfc3339`]. Reading needs no
/// counterpart: chrono reads any RFC 3339 time, including those stored before this format.
///
/// # Errors
/// Only the serializer's own.
pub fn serialize_rfc3339<S: Serializer>(at: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&rfc3339(*at))
}

/// [`serialize_rfc3339`] for an optional time (`null` when absent).
///
/// # Errors
/// Only the serializer's own.
pub fn serialize_rfc3339_option<S: Serializer>(
    at: &Option<DateTime<Utc>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match at {
        Some(at) => serialize_rfc3339(at, s),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn stored_times_have_whole_microseconds() {
        assert_eq!(super::now().timestamp_subsec_nanos() % 1_000, 0);
    }

    #[test]
    fn times_are_written_with_six_digits_whatever_their_value() {
        let whole = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        assert_eq!(rfc3339(whole), "2026-01-02T03:04:05.000000Z");
        let millis = whole + chrono::Duration::milliseconds(120);
        assert_eq!(rfc3339(millis), "2026-01-02T03:04:05.120000Z");
        let nanos = whole + chrono::Duration::nanoseconds(123_456_789);
        assert_eq!(rfc3339(nanos), "2026-01-02T03:04:05.123456Z");
    }

    #[test]
    fn serde_writes_what_rfc3339_writes_and_reads_older_forms() {
        #[derive(serde::Serialize, serde::Deserialize)]
        struct At {
            #[serde(serialize_with = "serialize_rfc3339")]
            at: DateTime<Utc>,
            #[serde(serialize_with = "serialize_rfc3339_option")]
            seen: Option<DateTime<Utc>>,
        }
        let at = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        let text = serde_json::to_string(&At { at, seen: None }).unwrap();
        assert_eq!(text, r#"{"at":"2026-01-02T03:04:05.000000Z","seen":null}"#);
        let old: At = serde_json::from_str(r#"{"at":"2026-01-02T03:04:05Z","seen":null}"#).unwrap();
        assert_eq!(old.at, at);
    }
}
