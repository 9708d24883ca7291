//! When a job runs: every fixed interval, or on a cron expression (UTC).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use time::OffsetDateTime;

/// A job's schedule.
#[derive(Clone)]
#[non_exhaustive]
pub enum Schedule {
    /// A fixed interval (`every = "15m"`), counted from the previous tick.
    Every(Duration),
    /// A cron expression with seconds (`cron = "0 */5 * * * *"`), in UTC.
    Cron(Box<cron::Schedule>),
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Schedule::Every(d) => write!(f, "Every({d:?})"),
            Schedule::Cron(c) => write!(f, "Cron({})", c.source()),
        }
    }
}

impl Schedule {
    /// Parses a cron expression: six fields (sec min hour day month weekday)
    /// or seven (with year); five fields (no seconds) get `0` seconds.
    pub fn cron(expr: &str) -> Result<Schedule, String> {
        let fields = expr.split_whitespace().count();
        let text = if fields == 5 {
            format!("0 {}", expr.trim())
        } else {
            expr.trim().to_string()
        };
        cron::Schedule::from_str(&text)
            .map(|s| Schedule::Cron(Box::new(s)))
            .map_err(|e| {
                let e = e.to_string();
                let e = e.lines().last().unwrap_or_default().trim();
                format!(
                    "'{expr}' is not a cron expression ({e}); write six fields: sec min hour day month weekday, e.g. \"0 */5 * * * *\""
                )
            })
    }

    /// The first tick strictly after `after`.
    pub fn next_after(&self, after: OffsetDateTime) -> Option<OffsetDateTime> {
        match self {
            Schedule::Every(d) => Some(after + *d),
            Schedule::Cron(c) => {
                let secs = after.unix_timestamp();
                let nanos = after.nanosecond();
                let start = chrono::DateTime::<chrono::Utc>::from_timestamp(secs, nanos)?;
                let next = c.after(&start).next()?;
                OffsetDateTime::from_unix_timestamp(next.timestamp()).ok()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cron_and_every() {
        let t0 = OffsetDateTime::from_unix_timestamp(1_700_000_130).unwrap(); // 22:15:30 UTC
        let s = Schedule::cron("0 */5 * * * *").unwrap();
        let n = s.next_after(t0).unwrap();
        assert_eq!(n.unix_timestamp() % 300, 0);
        assert!(n > t0 && n - t0 <= time::Duration::minutes(5));
        let five = Schedule::cron("*/10 * * * *").unwrap();
        assert_eq!(five.next_after(t0).unwrap().unix_timestamp() % 600, 0);
        assert!(Schedule::cron("every day").is_err());
        assert!(Schedule::cron("61 * * * * *").is_err());
        let e = Schedule::Every(Duration::from_secs(60));
        assert_eq!(e.next_after(t0).unwrap() - t0, time::Duration::minutes(1));
    }
}
