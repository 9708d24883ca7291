//! One run of one job: every tenant (bounded concurrency), every page. A
//! tenant's failure is its own: the tenants that succeeded are written
//! (their own `{tenant}` files, or their lines in the one output), a failed
//! or skipped tenant's previous output stays, and tenant-level refusals
//! back off ([`crate::backoff`]). Each run reports every tenant's result
//! and writes them to the job's status file.
//!
//! Why one file (for now, about 620 lines of code): a run's phases — admit
//! (backoff), fleet lease, the page walk, the commit per sink, the report —
//! share one unit's state. The page walk (`run_tenant`) is the API-calling
//! code that issue #23's one downstream-API client replaces; it leaves this
//! file then.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use apptoken::{Clock, ConfidentialClient};
use futures::future::join_all;
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tracing::{debug, error, info, warn};

use crate::backoff::{Admit, Book, Change, Failure};
use crate::config::{JobConfig, OutputConfig, join};
use crate::daemon::Progress;
use crate::fleet::{Claim, Fleet, Lease};
use crate::http::{Api, CallError};
use crate::outcome::{RunOutcome, TenantOutcome, TenantResult};
use crate::output::{self, Output, Part, Piece};

/// What one run did.
#[derive(Debug)]
pub(crate) struct RunStats {
    /// Pages and items of the tenants that succeeded.
    pub(crate) pages: usize,
    pub(crate) items: usize,
    /// The output file written, if any (one shared file; per-tenant files
    /// are in `tenants`).
    pub(crate) output: Option<PathBuf>,
    pub(crate) outcome: RunOutcome,
    pub(crate) tenants: Vec<TenantResult>,
    /// What failed, in one line (partial and failed runs).
    pub(crate) error: Option<String>,
}

pub(crate) struct JobContext<'a> {
    pub(crate) job: &'a JobConfig,
    /// The tenants of this run (the job's list, or its tenants file as last
    /// read).
    pub(crate) tenants: &'a [String],
    pub(crate) api: &'a Api,
    pub(crate) client: ConfidentialClient,
    pub(crate) clock: &'a dyn Clock,
    pub(crate) progress: Option<&'a Arc<dyn Progress>>,
    pub(crate) book: &'a Book,
    /// A scheduled tick with a shared Redis store: run once per fleet.
    pub(crate) fleet: Option<FleetTick>,
}

/// The tick a fleet run is for.
pub(crate) struct FleetTick {
    pub(crate) fleet: Arc<Fleet>,
    pub(crate) tick: time::OffsetDateTime,
    /// Until when a unit held by another instance is waited for.
    pub(crate) deadline: time::OffsetDateTime,
}

/// Where a run's lines go.
enum Sink {
    /// One output for the whole run: a job without tenants.
    Whole(Output),
    /// A job with tenants and one file: each tenant writes a part, and the
    /// file is assembled at the end.
    Shared(PathBuf),
    /// One file per tenant, committed when the tenant succeeded.
    PerTenant,
    /// Standard output, each tenant's lines printed when it succeeded.
    Stdout,
}

/// One unit (the job, or one tenant of it) of a run.
struct Unit {
    result: TenantResult,
    lease: Option<Lease>,
    /// The tenant's lines for the shared file.
    part: Option<Part>,
    /// The tenant's failure, for the book.
    failure: Option<Failure>,
}

const LOST: &str = "lost its fleet lease (another instance runs this tick); nothing committed";

pub(crate) async fn run(ctx: &JobContext<'_>) -> Result<RunStats, String> {
    let job = ctx.job;
    let started = Instant::now();
    let started_at = ctx.clock.now();
    let tenants: Vec<Option<&str>> = if ctx.tenants.is_empty() {
        vec![None]
    } else {
        ctx.tenants.iter().map(|t| Some(t.as_str())).collect()
    };
    let multi = !ctx.tenants.is_empty();
    let sink = match (&job.output, multi) {
        (OutputConfig::PerTenant(template), true) => {
            output::remove_template_orphans(template);
            Sink::PerTenant
        }
        (OutputConfig::File(target), true) => {
            output::remove_orphans(target);
            Sink::Shared(target.clone())
        }
        (OutputConfig::Stdout, true) => Sink::Stdout,
        (config, _) => {
            Sink::Whole(Output::open(config).map_err(|e| format!("cannot open the output: {e}"))?)
        }
    };
    let sem = Semaphore::new(job.tenant_concurrency);
    let units = join_all(tenants.iter().map(|t| run_unit(ctx, *t, &sem, &sink))).await;

    // The book learns each tenant's result; logs say what changed.
    let now = ctx.clock.now();
    let mut units = units;
    for u in &mut units {
        let Some(t) = u.result.tenant.as_deref() else {
            continue;
        };
        match u.result.outcome {
            TenantOutcome::Succeeded => {
                if ctx.book.succeeded(&job.name, t) == Change::Recovered {
                    info!(job = %job.name, tenant = t, "the tenant answers again: its output is written again");
                }
            }
            TenantOutcome::Failed => {
                let Some(f) = u.failure.take() else { continue };
                let refusal = f.refusal;
                let (entry, change) = ctx.book.failed(
                    &job.name,
                    t,
                    f,
                    now,
                    job.tenant_backoff,
                    job.tenant_backoff_max,
                );
                u.result.retry_at = entry.retry_at;
                u.result.failing_since = Some(entry.since);
                let retry_at = entry.retry_at.map(crate::backoff::rfc3339);
                match (refusal, change) {
                    (true, Change::Failing) => warn!(
                        job = %job.name, tenant = t, code = %entry.failure.code,
                        retry_at = retry_at.as_deref(), error = %entry.failure.message,
                        "the tenant refused (this will not pass by retrying: consent, app or tenant); it is not asked again before retry_at, then with a growing backoff"
                    ),
                    (true, _) => debug!(
                        job = %job.name, tenant = t, code = %entry.failure.code,
                        retry_at = retry_at.as_deref(), refusals = entry.refusals,
                        "the tenant still refuses; backing off longer"
                    ),
                    (false, _) => warn!(
                        job = %job.name, tenant = t, code = %entry.failure.code,
                        error = %entry.failure.message,
                        "the tenant's run failed; its previous output stays, the next tick tries again"
                    ),
                }
            }
            TenantOutcome::Skipped => {
                debug!(job = %job.name, tenant = t, code = u.result.code.as_deref(), "skipped: the tenant is backing off");
            }
            TenantOutcome::Elsewhere | TenantOutcome::Lost => {}
        }
    }

    let results: Vec<TenantResult> = units.iter().map(|u| u.result.clone()).collect();
    let outcome = RunOutcome::of(&results);
    if outcome == RunOutcome::Elsewhere {
        // Every unit ran on another instance: nothing to write here.
        metrics::counter!("apptoken_daemon_job_runs_total", "job" => job.name.clone(), "outcome" => "elsewhere").increment(1);
        info!(job = %job.name, "this tick ran on another instance of the fleet");
        return Ok(RunStats {
            pages: 0,
            items: 0,
            output: None,
            outcome,
            tenants: results,
            error: None,
        });
    }

    // Commit: fencing first (a lease lost since its last renewal stops that
    // tenant's commit), then the output.
    let mut units = units;
    for u in &mut units {
        if u.result.outcome == TenantOutcome::Succeeded
            && let Some(l) = &u.lease
            && !l.still_held().await
        {
            u.result.outcome = TenantOutcome::Lost;
            u.result.error = Some(LOST.to_string());
            u.part = None;
        }
    }
    let mut committed = None;
    let mut commit_error = None;
    match sink {
        Sink::Whole(out) => {
            if units
                .iter()
                .all(|u| u.result.outcome == TenantOutcome::Succeeded)
            {
                match out.commit() {
                    Ok(p) => committed = p,
                    Err(e) => commit_error = Some(format!("cannot write the output: {e}")),
                }
            }
            // Otherwise dropping the output removes its temporary file:
            // the previous output stays.
        }
        Sink::Shared(target) => {
            let fresh = units.iter().any(|u| u.part.is_some());
            // Without a fresh tenant the previous file stays as it is.
            let mut kept: Option<std::collections::HashSet<String>> = None;
            if fresh {
                let pieces: Vec<Piece<'_>> = units
                    .iter()
                    .filter_map(|u| match (&u.part, u.result.outcome) {
                        (Some(p), _) => Some(Piece::Fresh(p)),
                        (None, TenantOutcome::Elsewhere) => None,
                        (None, _) => u.result.tenant.as_deref().map(Piece::Keep),
                    })
                    .collect();
                match output::assemble(&target, &pieces)
                    .and_then(|(out, k)| out.commit().map(|p| (p, k)))
                {
                    Ok((p, k)) => {
                        committed = p;
                        kept = Some(k);
                    }
                    Err(e) => commit_error = Some(format!("cannot write the output: {e}")),
                }
            }
            let exists = target.exists();
            for u in &mut units {
                if matches!(
                    u.result.outcome,
                    TenantOutcome::Failed | TenantOutcome::Skipped | TenantOutcome::Lost
                ) {
                    u.result.kept = match (&kept, u.result.tenant.as_deref()) {
                        (Some(k), Some(t)) => k.contains(t),
                        (None, _) => exists && commit_error.is_none(),
                        (Some(_), None) => false,
                    };
                }
                if u.result.outcome != TenantOutcome::Elsewhere && exists {
                    u.result.output = Some(target.clone());
                }
            }
        }
        Sink::PerTenant => {
            // A tenant that did not succeed keeps its previous file, if any.
            for u in &mut units {
                if matches!(
                    u.result.outcome,
                    TenantOutcome::Failed | TenantOutcome::Skipped | TenantOutcome::Lost
                ) && let Some(p) = job.output.path_for(u.result.tenant.as_deref())
                    && p.exists()
                {
                    u.result.kept = true;
                    u.result.output = Some(p);
                }
            }
        }
        Sink::Stdout => {}
    }
    if let Some(e) = &commit_error {
        // The shared file could not be written: no tenant's lines are new.
        for u in &mut units {
            if u.result.outcome == TenantOutcome::Succeeded {
                u.result.outcome = TenantOutcome::Failed;
                u.result.error = Some(e.clone());
            }
        }
    }
    let mut tenants_out = Vec::with_capacity(units.len());
    for u in units {
        if let Some(l) = u.lease {
            if u.result.outcome == TenantOutcome::Lost {
                l.abandon().await;
            } else {
                l.finish().await;
            }
        }
        tenants_out.push(u.result);
    }
    let tenants = tenants_out;
    let outcome = RunOutcome::of(&tenants);
    let (mut pages, mut items) = (0, 0);
    for t in tenants
        .iter()
        .filter(|t| t.outcome == TenantOutcome::Succeeded)
    {
        pages += t.pages;
        items += t.items;
    }
    let elapsed = started.elapsed();
    metrics::histogram!("apptoken_daemon_job_duration_seconds", "job" => job.name.clone())
        .record(elapsed.as_secs_f64());
    metrics::counter!("apptoken_daemon_job_runs_total", "job" => job.name.clone(), "outcome" => outcome.as_str()).increment(1);
    metrics::counter!("apptoken_daemon_job_items_total", "job" => job.name.clone())
        .increment(items as u64);
    if multi {
        for (o, n) in crate::outcome::counts(&tenants) {
            if n > 0 {
                metrics::counter!("apptoken_daemon_tenant_runs_total", "job" => job.name.clone(), "outcome" => o.as_str())
                    .increment(n as u64);
            }
        }
        metrics::gauge!("apptoken_daemon_tenants_backoff", "job" => job.name.clone())
            .set(ctx.book.backing_off(&job.name, ctx.clock.now()) as f64);
    }
    if let Some(status) = &job.status_file {
        let v =
            crate::outcome::status_json(&job.name, started_at, ctx.clock.now(), outcome, &tenants);
        if let Err(e) = output::write_json_atomically(status, &v) {
            error!(job = %job.name, file = %status.display(), error = %e, "cannot write the status file");
        }
    }
    let error = match outcome {
        RunOutcome::Success | RunOutcome::Elsewhere => None,
        RunOutcome::Lost => Some(LOST.to_string()),
        RunOutcome::Partial | RunOutcome::Failure => Some(crate::outcome::summary(&tenants)),
    };
    match outcome {
        RunOutcome::Success => {
            info!(job = %job.name, api = %job.api, pages, items, duration_ms = elapsed.as_millis() as u64, "job run completed");
        }
        RunOutcome::Partial => {
            warn!(job = %job.name, api = %job.api, pages, items, duration_ms = elapsed.as_millis() as u64, error = error.as_deref(), "job run partial: the tenants that succeeded are written, the others keep their previous output");
        }
        RunOutcome::Lost => warn!(job = %job.name, "{LOST}"),
        RunOutcome::Failure | RunOutcome::Elsewhere => {}
    }
    Ok(RunStats {
        pages,
        items,
        output: committed,
        outcome,
        tenants,
        error,
    })
}

/// One tenant (or the whole job, without tenants): backoff, fleet lease,
/// the pages, and — for its own file or standard output — its commit.
async fn run_unit(ctx: &JobContext<'_>, t: Option<&str>, sem: &Semaphore, sink: &Sink) -> Unit {
    let job = ctx.job;
    let unit = |result| Unit {
        result,
        lease: None,
        part: None,
        failure: None,
    };
    if let Some(name) = t
        && let Admit::Skip(e) = ctx.book.admit(&job.name, name, ctx.clock.now())
    {
        let mut r = TenantResult::new(t, TenantOutcome::Skipped);
        r.code = Some(e.failure.code.clone());
        r.error = Some(e.failure.message.clone());
        r.retry_at = e.retry_at;
        r.failing_since = Some(e.since);
        if let Some(p) = ctx.progress {
            p.finished(&job.name, t, false);
        }
        return unit(r);
    }
    let lease = match &ctx.fleet {
        None => None,
        Some(ft) => {
            let name = ft.fleet.lease_name(&job.name, ft.tick, t);
            match ft.fleet.claim(name, ft.deadline).await {
                Claim::Held(l) => {
                    info!(job = %job.name, tenant = t, tick = %rfc3339(ft.tick), "this instance runs the tick (it holds the fleet lease)");
                    Some(l)
                }
                Claim::Unavailable => None,
                Claim::Elsewhere => return unit(TenantResult::new(t, TenantOutcome::Elsewhere)),
            }
        }
    };
    let work = async {
        let _permit = sem
            .acquire()
            .await
            .map_err(|_| Failure::other("stopping".into()))?;
        // The tenant's own output (none: the whole job's).
        let own = match (sink, t) {
            (Sink::Whole(_), _) | (_, None) => None,
            (Sink::Stdout, Some(_)) => Some(Output::buffered()),
            (Sink::Shared(target), Some(_)) => Some(
                Output::temp_for(target)
                    .map_err(|e| Failure::other(format!("cannot open the output: {e}")))?,
            ),
            (Sink::PerTenant, Some(name)) => {
                let path = job.output.path_for(Some(name)).ok_or_else(|| {
                    Failure::other("the output has no file for this tenant".into())
                })?;
                Some(
                    Output::temp_for(&path)
                        .map_err(|e| Failure::other(format!("cannot open the output: {e}")))?,
                )
            }
        };
        let out = match (&own, sink) {
            (Some(o), _) => o,
            (None, Sink::Whole(o)) => o,
            (None, _) => return Err(Failure::other("no output for this run".into())),
        };
        let r = run_tenant(ctx, t, out).await;
        if let Some(p) = ctx.progress {
            p.finished(&job.name, t, r.is_ok());
        }
        r.map(|(pages, items)| (pages, items, own))
    };
    let result = match &lease {
        None => work.await,
        Some(l) => tokio::select! {
            r = work => r,
            _ = l.lost() => {
                let mut r = TenantResult::new(t, TenantOutcome::Lost);
                r.error = Some(LOST.to_string());
                return Unit { result: r, lease, part: None, failure: None };
            }
        },
    };
    match result {
        Ok((pages, items, own)) => {
            let mut r = TenantResult::new(t, TenantOutcome::Succeeded);
            r.pages = pages;
            r.items = items;
            let mut part = None;
            let mut failure = None;
            match (own, sink) {
                (Some(o), Sink::Shared(_)) => match o.into_part() {
                    Ok(p) => part = Some(p),
                    Err(e) => {
                        failure = Some(Failure::other(format!("cannot write the output: {e}")))
                    }
                },
                (Some(o), Sink::PerTenant | Sink::Stdout) => {
                    // Fencing: a lost lease stops this tenant's commit.
                    if let Some(l) = &lease
                        && !l.still_held().await
                    {
                        r.outcome = TenantOutcome::Lost;
                        r.error = Some(LOST.to_string());
                        return Unit {
                            result: r,
                            lease,
                            part: None,
                            failure: None,
                        };
                    }
                    match o.commit() {
                        Ok(p) => r.output = p,
                        Err(e) => {
                            failure = Some(Failure::other(format!("cannot write the output: {e}")))
                        }
                    }
                }
                _ => {}
            }
            if let Some(f) = failure {
                let mut r = TenantResult::new(t, TenantOutcome::Failed);
                r.code = Some(f.code.clone());
                r.error = Some(f.message.clone());
                return Unit {
                    result: r,
                    lease,
                    part: None,
                    failure: Some(f),
                };
            }
            Unit {
                result: r,
                lease,
                part,
                failure: None,
            }
        }
        Err(f) => {
            let mut r = TenantResult::new(t, TenantOutcome::Failed);
            r.code = Some(f.code.clone());
            r.error = Some(f.message.clone());
            r.trace_id = f.trace_id.clone();
            r.correlation_id = f.correlation_id.clone();
            Unit {
                result: r,
                lease,
                part: None,
                failure: Some(f),
            }
        }
    }
}

async fn run_tenant(
    ctx: &JobContext<'_>,
    tenant: Option<&str>,
    output: &Output,
) -> Result<(usize, usize), Failure> {
    let job = ctx.job;
    let base = &ctx.api.config.base_url;
    let first = join(base, &job.path).map_err(Failure::other)?;
    let method = reqwest::Method::from_bytes(job.method.as_bytes())
        .map_err(|_| Failure::other(format!("'{}' is not an HTTP method", job.method)))?;
    let mut url = first.clone();
    let (mut pages, mut items) = (0usize, 0usize);
    loop {
        let page = ctx
            .api
            .fetch(
                &ctx.client,
                ctx.clock,
                &job.name,
                tenant,
                &method,
                &url,
                job.body.as_ref(),
            )
            .await
            .map_err(|e| {
                let message = match &e {
                    CallError::Token(t) => token_failure(&job.name, tenant, t),
                    other => other.to_string(),
                };
                Failure::of(&e, message)
            })?;
        pages += 1;
        let next = page
            .body
            .get("@odata.nextLink")
            .and_then(Value::as_str)
            .map(str::to_string)
            .or(page.link_next);
        let values: Vec<Value> = match page.body {
            Value::Object(mut o) if o.get("value").is_some_and(Value::is_array) => {
                match o.remove("value") {
                    Some(Value::Array(v)) => v,
                    _ => Vec::new(),
                }
            }
            other => vec![other],
        };
        let room = job
            .max_items
            .map_or(usize::MAX, |m| m.saturating_sub(items));
        let lines: Vec<Value> = values
            .into_iter()
            .take(room)
            .map(|item| {
                let mut line = match tenant {
                    Some(t) => json!({"job": job.name, "tenant": t, "item": item}),
                    None => json!({"job": job.name, "item": item}),
                };
                if let (Some(ft), Value::Object(o)) = (&ctx.fleet, &mut line) {
                    o.insert("tick".into(), Value::String(rfc3339(ft.tick)));
                }
                line
            })
            .collect();
        items += lines.len();
        output
            .write_lines(&lines)
            .map_err(|e| Failure::other(format!("cannot write the output: {e}")))?;
        if let Some(p) = ctx.progress {
            p.page(&job.name, tenant, pages, items);
        }
        if !job.paging || job.max_items.is_some_and(|m| items >= m) {
            break;
        }
        let Some(next) = next else { break };
        let next_url = url
            .join(&next)
            .map_err(|_| Failure::other(format!("the next-page link '{next}' is not a URL")))?;
        if next_url.origin() != first.origin() {
            warn!(job = %job.name, tenant, "the next-page link points at another origin; the token is not sent there");
            return Err(Failure::other(format!(
                "the next-page link points at another origin ({}); stopping",
                next_url.origin().ascii_serialization()
            )));
        }
        if next_url == url {
            return Err(Failure::other(
                "the next-page link points at the same page again".into(),
            ));
        }
        if pages >= job.max_pages {
            return Err(Failure::other(format!(
                "stopped after {} pages (max_pages); more pages follow",
                job.max_pages
            )));
        }
        url = next_url;
    }
    Ok((pages, items))
}

/// Why a run got no token. `Internal` (a panicked or cancelled token task)
/// is a bug, not the configuration: the run fails, it is logged as an
/// internal error, and the next tick runs the job again as usual.
pub(crate) fn token_failure(job: &str, tenant: Option<&str>, e: &apptoken::Error) -> String {
    match e {
        apptoken::Error::Internal(m) => {
            error!(job, tenant, error = %m, "internal error while getting a token (a bug in apptoken, not the configuration); this run failed, the next tick runs the job again");
            format!(
                "no token: internal error (not the configuration; the next run tries again): {m}"
            )
        }
        e => format!("no token: {}", e.report()),
    }
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_internal_error_fails_the_run_as_internal_not_as_configuration() {
        let m = token_failure(
            "users",
            None,
            &apptoken::InternalError::new(
                apptoken::InternalErrorKind::Panicked,
                "the token task panicked",
            )
            .into(),
        );
        assert!(
            m.contains("internal error") && m.contains("panicked"),
            "{m}"
        );
        assert!(m.contains("not the configuration"), "{m}");
        let m = token_failure(
            "users",
            Some("t.example"),
            &apptoken::ConfigError::new(apptoken::ConfigErrorKind::Missing, "no client id").into(),
        );
        assert!(
            m.starts_with("no token: ") && !m.contains("internal"),
            "{m}"
        );
    }
}
