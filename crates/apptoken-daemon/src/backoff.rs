//! What the daemon remembers about each (job, tenant): the last failure,
//! and for tenant-level refusals — answers that will not pass by retrying,
//! such as a customer who removed the app — a growing backoff, so a refused
//! tenant is not asked again at every tick and recovers on its own at the
//! first try after the customer grants consent again.
//!
//! Invariants: an entry exists only while the tenant's last attempt failed
//! (a success removes it); `retry_at` is set only for refusals and grows
//! `initial · 2^(n-1)` up to `max` with `n` refusals in a row (saturating);
//! the memory is bounded by the configured tenants (`retain` drops the
//! tenants no longer listed). All times come from the daemon's clock.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::http::CallError;

/// Why a tenant's run failed, as far as the backoff cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    /// Tenant-level: will not pass by retrying (backs off).
    pub(crate) refusal: bool,
    /// `AADSTS7000229`, `invalid_client`, `HTTP 403 Authorization_RequestDenied`, …
    pub(crate) code: String,
    /// The OAuth `error` or the API's error code, when there is one.
    pub(crate) error: Option<String>,
    /// HTTP status, when there was an answer.
    pub(crate) status: Option<u16>,
    /// The whole message (no secret, no token).
    pub(crate) message: String,
    pub(crate) trace_id: Option<String>,
    pub(crate) correlation_id: Option<String>,
}

/// AADSTS codes that are the tenant's answer, not a passing condition:
/// service principal missing (7000229), consent not granted (65001), app not
/// found in the tenant's directory (700016: also what a customer who never
/// consented gets), tenant not found (90002), app disabled there (7000112),
/// the API's service principal missing there (500011) or disabled (500014),
/// a single-tenant app asked elsewhere (50194), blocked by the tenant's
/// conditional access (53003), a service the tenant has not subscribed to
/// (650052).
pub(crate) const REFUSAL_CODES: &[i64] = &[
    7000229, 65001, 700016, 90002, 7000112, 500011, 500014, 50194, 53003, 650052,
];

impl Failure {
    /// Classifies a failed call.
    pub(crate) fn of(e: &CallError, message: String) -> Failure {
        match e {
            CallError::Token(t) => {
                let server = t.server_error();
                let codes = t.aadsts_codes();
                let refusal = codes.iter().any(|c| REFUSAL_CODES.contains(c))
                    || server.is_some_and(|s| s.error == "invalid_tenant");
                let code = match (codes.first(), server) {
                    (Some(c), _) => format!("AADSTS{c}"),
                    (None, Some(s)) if !s.error.is_empty() => s.error.clone(),
                    (None, Some(s)) => format!("HTTP {}", s.status),
                    (None, None) => "no_token".to_string(),
                };
                Failure {
                    refusal,
                    code,
                    error: server.map(|s| s.error.clone()).filter(|e| !e.is_empty()),
                    status: t.status(),
                    message,
                    trace_id: server.and_then(|s| s.trace_id.clone()),
                    correlation_id: server.and_then(|s| s.correlation_id.clone()),
                }
            }
            CallError::Status { status, body } => {
                // Graph's `{"error": {"code": "Authorization_RequestDenied"}}`.
                let api_code = serde_json::from_str::<Value>(body).ok().and_then(|v| {
                    v.pointer("/error/code")
                        .or_else(|| v.get("error").filter(|e| e.is_string()))
                        .and_then(Value::as_str)
                        .map(|s| s.chars().take(100).collect::<String>())
                });
                Failure {
                    // The API's 403: the app holds no role it needs in this
                    // tenant (the admin granted less than the app asks for).
                    refusal: *status == 403,
                    code: match &api_code {
                        Some(c) => format!("HTTP {status} {c}"),
                        None => format!("HTTP {status}"),
                    },
                    error: api_code,
                    status: Some(*status),
                    message,
                    trace_id: None,
                    correlation_id: None,
                }
            }
            CallError::Other(_) => Failure::other(message),
        }
    }

    /// A failure that is not a call's (the output could not be written, …).
    pub(crate) fn other(message: String) -> Failure {
        Failure {
            refusal: false,
            code: "error".to_string(),
            error: None,
            status: None,
            message,
            trace_id: None,
            correlation_id: None,
        }
    }
}

/// One (job, tenant) whose last attempt failed.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) failure: Failure,
    /// When this failure (this code) was first seen.
    pub(crate) since: OffsetDateTime,
    /// Refusals in a row (0 for a transient failure).
    pub(crate) refusals: u32,
    /// Not asked again before this (refusals only).
    pub(crate) retry_at: Option<OffsetDateTime>,
}

impl Entry {
    pub(crate) fn to_json(&self, job: &str, tenant: &str) -> Value {
        json!({
            "job": job,
            "tenant": tenant,
            "code": self.failure.code,
            "error": self.failure.error,
            "status": self.failure.status,
            "refused": self.failure.refusal,
            "since": rfc3339(self.since),
            "retry_at": self.retry_at.map(rfc3339),
        })
    }
}

/// What to do with a tenant at a run.
#[derive(Debug)]
pub(crate) enum Admit {
    Go,
    /// Backing off: skipped until `retry_at`.
    Skip(Entry),
}

/// What a recorded result changed (for logging once per change).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Change {
    /// Nothing worth an info/warn line (the same refusal again, or a
    /// success with nothing before).
    None,
    /// A new failure, or another code than before.
    Failing,
    /// The tenant succeeded after failing.
    Recovered,
}

type Key = (String, String);

/// The memory of failing tenants, shared by every run of the daemon.
#[derive(Debug, Default)]
pub(crate) struct Book {
    map: Mutex<HashMap<Key, Entry>>,
}

impl Book {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Entry>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `tenant` of `job` runs now.
    pub(crate) fn admit(&self, job: &str, tenant: &str, now: OffsetDateTime) -> Admit {
        match self.lock().get(&(job.to_string(), tenant.to_string())) {
            Some(e) if e.retry_at.is_some_and(|r| now < r) => Admit::Skip(e.clone()),
            _ => Admit::Go,
        }
    }

    /// Records a failure; refusals grow the backoff.
    pub(crate) fn failed(
        &self,
        job: &str,
        tenant: &str,
        failure: Failure,
        now: OffsetDateTime,
        initial: Duration,
        max: Duration,
    ) -> (Entry, Change) {
        let mut map = self.lock();
        let key = (job.to_string(), tenant.to_string());
        let previous = map.get(&key);
        let same = previous.is_some_and(|p| p.failure.code == failure.code);
        let since = match previous {
            Some(p) if same => p.since,
            _ => now,
        };
        let refusals = if failure.refusal {
            previous
                .filter(|_| same)
                .map_or(0, |p| p.refusals)
                .saturating_add(1)
        } else {
            0
        };
        let retry_at = failure.refusal.then(|| {
            let wait = backoff(refusals, initial, max);
            let wait = time::Duration::try_from(wait).unwrap_or(time::Duration::MAX);
            now.checked_add(wait).unwrap_or(now)
        });
        let change = if same { Change::None } else { Change::Failing };
        let entry = Entry {
            failure,
            since,
            refusals,
            retry_at,
        };
        map.insert(key, entry.clone());
        (entry, change)
    }

    /// Records a success: the tenant leaves the book.
    pub(crate) fn succeeded(&self, job: &str, tenant: &str) -> Change {
        match self.lock().remove(&(job.to_string(), tenant.to_string())) {
            Some(_) => Change::Recovered,
            None => Change::None,
        }
    }

    /// Tenants of `job` backing off at `now`.
    pub(crate) fn backing_off(&self, job: &str, now: OffsetDateTime) -> usize {
        self.lock()
            .iter()
            .filter(|((j, _), e)| j == job && e.retry_at.is_some_and(|r| now < r))
            .count()
    }

    /// Keeps only the (job, tenant) pairs still configured.
    pub(crate) fn retain(&self, configured: &HashSet<Key>) {
        self.lock().retain(|k, _| configured.contains(k));
    }

    /// Every failing (job, tenant), sorted, at most `limit`, and how many
    /// there are.
    pub(crate) fn failing(&self, limit: usize) -> (Vec<Value>, usize) {
        let map = self.lock();
        let mut keys: Vec<&Key> = map.keys().collect();
        keys.sort();
        let list = keys
            .iter()
            .take(limit)
            .filter_map(|k| map.get(*k).map(|e| e.to_json(&k.0, &k.1)))
            .collect();
        (list, map.len())
    }
}

/// `initial · 2^(n-1)`, at most `max`; saturating.
pub(crate) fn backoff(refusals: u32, initial: Duration, max: Duration) -> Duration {
    let doublings = refusals.saturating_sub(1).min(63);
    let factor = 1u32.checked_shl(doublings.min(31)).unwrap_or(u32::MAX);
    let wait = if doublings > 31 {
        Duration::MAX
    } else {
        initial.saturating_mul(factor)
    };
    wait.min(max)
}

pub(crate) fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(code: i64) -> Failure {
        let mut s = apptoken::ServerError::new(401, "invalid_client");
        s.error_codes = vec![code];
        Failure::of(
            &CallError::Token(apptoken::Error::IdentityProvider(Box::new(s))),
            "refused".into(),
        )
    }

    #[test]
    fn the_backoff_grows_to_its_cap_and_never_overflows() {
        let (i, m) = (Duration::from_secs(300), Duration::from_secs(6 * 3600));
        let waits: Vec<u64> = (1..=9).map(|n| backoff(n, i, m).as_secs()).collect();
        assert_eq!(
            waits,
            [300, 600, 1200, 2400, 4800, 9600, 19200, 21600, 21600]
        );
        assert_eq!(backoff(u32::MAX, i, m), m);
        assert_eq!(backoff(0, i, m), i);
        assert_eq!(
            backoff(40, Duration::MAX, Duration::MAX),
            Duration::MAX,
            "saturates"
        );
    }

    #[test]
    fn tenant_level_refusals_back_off_transient_failures_do_not() {
        assert!(refused(7000229).refusal);
        assert!(refused(65001).refusal);
        assert!(refused(90002).refusal);
        assert!(
            !refused(7000215).refusal,
            "a wrong secret is not the tenant's"
        );
        let mut throttled = apptoken::ServerError::new(429, "");
        throttled.retry_after = Some(Duration::from_secs(5));
        let t = Failure::of(
            &CallError::Token(apptoken::Error::IdentityProvider(Box::new(throttled))),
            "429".into(),
        );
        assert!(!t.refusal);
        let f = Failure::of(
            &CallError::Status {
                status: 403,
                body: r#"{"error":{"code":"Authorization_RequestDenied","message":"Insufficient privileges"}}"#.into(),
            },
            "403".into(),
        );
        assert!(f.refusal);
        assert_eq!(f.code, "HTTP 403 Authorization_RequestDenied");
        let f = Failure::of(
            &CallError::Status {
                status: 500,
                body: "x".into(),
            },
            "500".into(),
        );
        assert!(!f.refusal);
        assert_eq!(f.code, "HTTP 500");
    }

    #[test]
    fn a_book_skips_while_backing_off_logs_changes_once_and_forgets_on_success() {
        let book = Book::default();
        let t0 = OffsetDateTime::UNIX_EPOCH + time::Duration::days(20000);
        let (i, m) = (Duration::from_secs(600), Duration::from_secs(3600));
        assert!(matches!(book.admit("j", "t", t0), Admit::Go));
        let (e, c) = book.failed("j", "t", refused(7000229), t0, i, m);
        assert_eq!(c, Change::Failing);
        assert_eq!(e.retry_at, Some(t0 + time::Duration::minutes(10)));
        assert!(matches!(
            book.admit("j", "t", t0 + time::Duration::minutes(9)),
            Admit::Skip(_)
        ));
        assert_eq!(book.backing_off("j", t0), 1);
        let t1 = t0 + time::Duration::minutes(10);
        assert!(matches!(book.admit("j", "t", t1), Admit::Go));
        let (e, c) = book.failed("j", "t", refused(7000229), t1, i, m);
        assert_eq!(c, Change::None, "the same refusal is not a change");
        assert_eq!(e.since, t0);
        assert_eq!(e.retry_at, Some(t1 + time::Duration::minutes(20)));
        let (e, c) = book.failed("j", "t", refused(65001), t1, i, m);
        assert_eq!(c, Change::Failing, "another code is");
        assert_eq!(e.refusals, 1);
        assert_eq!(book.failing(10).1, 1);
        assert_eq!(book.succeeded("j", "t"), Change::Recovered);
        assert_eq!(book.succeeded("j", "t"), Change::None);
        assert!(matches!(book.admit("j", "t", t1), Admit::Go));
        book.failed("j", "gone", refused(90002), t1, i, m);
        book.retain(&HashSet::new());
        assert_eq!(book.failing(10).1, 0);
        // The end of the calendar: no panic, the tenant is simply asked again.
        let end = time::PrimitiveDateTime::MAX.assume_utc();
        let (e, _) = book.failed("j", "t", refused(90002), end, Duration::MAX, Duration::MAX);
        assert_eq!(e.retry_at, Some(end));
    }
}
