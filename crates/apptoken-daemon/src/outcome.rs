//! What a run reports: how each tenant ended ([`TenantResult`]), how the
//! run ended as a whole ([`RunOutcome`]), and the status file written after
//! each run of a job with tenants (its JSON shape is documented in
//! docs/DAEMON.md, "Status file"; field names are stable).

use std::path::PathBuf;

use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::backoff::rfc3339;

/// How one tenant's part of a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TenantOutcome {
    /// Every page was read and its items written.
    Succeeded,
    /// It failed; its previous output stays.
    Failed,
    /// Not asked: the tenant refused before and is backing off.
    Skipped,
    /// Another instance of the fleet ran it (a shared Redis store).
    Elsewhere,
    /// This instance lost the tenant's fleet lease; nothing was written.
    Lost,
}

impl TenantOutcome {
    /// `succeeded`, `failed`, `skipped`, `elsewhere`, `lost` (metrics
    /// labels and the status file).
    pub fn as_str(self) -> &'static str {
        match self {
            TenantOutcome::Succeeded => "succeeded",
            TenantOutcome::Failed => "failed",
            TenantOutcome::Skipped => "skipped",
            TenantOutcome::Elsewhere => "elsewhere",
            TenantOutcome::Lost => "lost",
        }
    }
}

/// One tenant's result in a run (for a job without tenants, one result
/// with no tenant).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TenantResult {
    /// The tenant (none for a job without `tenants`).
    pub tenant: Option<String>,
    /// How it ended.
    pub outcome: TenantOutcome,
    /// Pages read.
    pub pages: usize,
    /// Items written.
    pub items: usize,
    /// Entra's code (`AADSTS7000229`), the OAuth error, or the API's
    /// (`HTTP 403 Authorization_RequestDenied`), when it failed or was
    /// skipped.
    pub code: Option<String>,
    /// What went wrong (never a secret or a token).
    pub error: Option<String>,
    /// A tenant-level refusal: the tenant is not asked again before this.
    pub retry_at: Option<OffsetDateTime>,
    /// Since when this failure has lasted.
    pub failing_since: Option<OffsetDateTime>,
    /// Entra's `trace_id` and `correlation_id` of the refusal.
    pub trace_id: Option<String>,
    /// See `trace_id`.
    pub correlation_id: Option<String>,
    /// The file that holds the tenant's lines, if any.
    pub output: Option<PathBuf>,
    /// The tenant's lines in the output are those of an earlier run (it
    /// failed or was skipped this time).
    pub kept: bool,
}

impl TenantResult {
    pub(crate) fn new(tenant: Option<&str>, outcome: TenantOutcome) -> TenantResult {
        TenantResult {
            tenant: tenant.map(str::to_string),
            outcome,
            pages: 0,
            items: 0,
            code: None,
            error: None,
            retry_at: None,
            failing_since: None,
            trace_id: None,
            correlation_id: None,
            output: None,
            kept: false,
        }
    }

    pub(crate) fn to_json(&self) -> Value {
        let mut o = serde_json::Map::new();
        o.insert("tenant".into(), self.tenant.clone().into());
        o.insert("outcome".into(), self.outcome.as_str().into());
        if self.outcome == TenantOutcome::Succeeded {
            o.insert("pages".into(), self.pages.into());
            o.insert("items".into(), self.items.into());
        }
        let mut put = |k: &str, x: Option<Value>| {
            if let Some(x) = x {
                o.insert(k.into(), x);
            }
        };
        put("code", self.code.clone().map(Value::from));
        put("error", self.error.clone().map(Value::from));
        put("retry_at", self.retry_at.map(|t| rfc3339(t).into()));
        put(
            "failing_since",
            self.failing_since.map(|t| rfc3339(t).into()),
        );
        put("trace_id", self.trace_id.clone().map(Value::from));
        put(
            "correlation_id",
            self.correlation_id.clone().map(Value::from),
        );
        put(
            "output",
            self.output
                .as_ref()
                .map(|p| p.to_string_lossy().into_owned().into()),
        );
        if self.kept {
            o.insert("kept".into(), true.into());
        }
        Value::Object(o)
    }
}

/// How a run ended as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RunOutcome {
    /// Every tenant succeeded.
    Success,
    /// Some tenants succeeded and were written; others failed or were
    /// skipped (their previous output stays).
    Partial,
    /// No tenant succeeded; every previous output stays.
    Failure,
    /// Another instance of the fleet ran the tick.
    Elsewhere,
    /// This instance lost its fleet leases; nothing was written.
    Lost,
}

impl RunOutcome {
    /// `success`, `partial`, `failure`, `elsewhere`, `lost` (the
    /// `outcome` label of `apptoken_daemon_job_runs_total`).
    pub fn as_str(self) -> &'static str {
        match self {
            RunOutcome::Success => "success",
            RunOutcome::Partial => "partial",
            RunOutcome::Failure => "failure",
            RunOutcome::Elsewhere => "elsewhere",
            RunOutcome::Lost => "lost",
        }
    }

    /// The run's outcome from its tenants' (those that ran elsewhere do
    /// not count).
    pub(crate) fn of(tenants: &[TenantResult]) -> RunOutcome {
        let here: Vec<TenantOutcome> = tenants
            .iter()
            .map(|t| t.outcome)
            .filter(|o| *o != TenantOutcome::Elsewhere)
            .collect();
        if here.is_empty() {
            RunOutcome::Elsewhere
        } else if here.iter().all(|o| *o == TenantOutcome::Succeeded) {
            RunOutcome::Success
        } else if here.iter().all(|o| *o == TenantOutcome::Lost) {
            RunOutcome::Lost
        } else if here.contains(&TenantOutcome::Succeeded) {
            RunOutcome::Partial
        } else {
            RunOutcome::Failure
        }
    }
}

/// Counts per outcome, for messages and the status file.
pub(crate) fn counts(tenants: &[TenantResult]) -> [(TenantOutcome, usize); 5] {
    let n = |o| tenants.iter().filter(|t| t.outcome == o).count();
    [
        TenantOutcome::Succeeded,
        TenantOutcome::Failed,
        TenantOutcome::Skipped,
        TenantOutcome::Elsewhere,
        TenantOutcome::Lost,
    ]
    .map(|o| (o, n(o)))
}

/// The status file's content.
pub(crate) fn status_json(
    job: &str,
    started: OffsetDateTime,
    finished: OffsetDateTime,
    outcome: RunOutcome,
    tenants: &[TenantResult],
) -> Value {
    let mut totals = serde_json::Map::new();
    for (o, n) in counts(tenants) {
        totals.insert(o.as_str().into(), n.into());
    }
    json!({
        "job": job,
        "started": rfc3339(started),
        "finished": rfc3339(finished),
        "outcome": outcome.as_str(),
        "counts": totals,
        "tenants": tenants.iter().map(TenantResult::to_json).collect::<Vec<_>>(),
    })
}

/// A one-line summary of the tenants that did not succeed: counts and the
/// first few with their codes.
pub(crate) fn summary(tenants: &[TenantResult]) -> String {
    let total = tenants.len();
    let ok = tenants
        .iter()
        .filter(|t| t.outcome == TenantOutcome::Succeeded)
        .count();
    let bad: Vec<String> = tenants
        .iter()
        .filter(|t| {
            matches!(
                t.outcome,
                TenantOutcome::Failed | TenantOutcome::Skipped | TenantOutcome::Lost
            )
        })
        .take(5)
        .map(|t| {
            let name = t.tenant.as_deref().unwrap_or("the identity's tenant");
            let what = t.error.as_deref().or(t.code.as_deref()).unwrap_or("failed");
            match t.outcome {
                TenantOutcome::Skipped => format!("tenant {name}: skipped (backing off: {what})"),
                _ if t.tenant.is_none() => what.to_string(),
                _ => format!("tenant {name}: {what}"),
            }
        })
        .collect();
    let not_ok = tenants
        .iter()
        .filter(|t| {
            matches!(
                t.outcome,
                TenantOutcome::Failed | TenantOutcome::Skipped | TenantOutcome::Lost
            )
        })
        .count();
    let more = not_ok.saturating_sub(bad.len());
    let mut s = if total == 1 && tenants[0].tenant.is_none() {
        bad.join("; ")
    } else {
        format!("{ok} of {total} tenants succeeded; {}", bad.join("; "))
    };
    if more > 0 {
        s.push_str(&format!("; and {more} more (see the status file)"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(o: TenantOutcome) -> TenantResult {
        TenantResult::new(Some("t"), o)
    }

    #[test]
    fn the_run_outcome_follows_its_tenants() {
        use TenantOutcome::*;
        let of = |v: &[TenantOutcome]| RunOutcome::of(&v.iter().map(|o| r(*o)).collect::<Vec<_>>());
        assert_eq!(of(&[Succeeded, Succeeded]), RunOutcome::Success);
        assert_eq!(of(&[Succeeded, Failed]), RunOutcome::Partial);
        assert_eq!(of(&[Succeeded, Skipped]), RunOutcome::Partial);
        assert_eq!(of(&[Failed, Skipped]), RunOutcome::Failure);
        assert_eq!(of(&[Elsewhere, Elsewhere]), RunOutcome::Elsewhere);
        assert_eq!(of(&[Elsewhere, Succeeded]), RunOutcome::Success);
        assert_eq!(of(&[Lost, Elsewhere]), RunOutcome::Lost);
        assert_eq!(of(&[Lost, Failed]), RunOutcome::Failure);
        assert_eq!(of(&[]), RunOutcome::Elsewhere);
    }
}
