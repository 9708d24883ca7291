//! One run of one job: every tenant (bounded concurrency), every page, into
//! one output committed when the whole run succeeded.

use std::sync::Arc;
use std::time::Instant;

use apptoken::{Clock, ConfidentialClient};
use futures::future::join_all;
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tracing::{error, info, warn};

use crate::config::{JobConfig, join};
use crate::daemon::Progress;
use crate::fleet::{Claim, Fleet, Lease};
use crate::http::{Api, CallError};
use crate::output::Output;

/// What one run did.
#[derive(Debug, Default)]
pub(crate) struct RunStats {
    pub(crate) pages: usize,
    pub(crate) items: usize,
    pub(crate) output: Option<std::path::PathBuf>,
    /// The tick ran on another instance of the fleet.
    pub(crate) elsewhere: bool,
}

pub(crate) struct JobContext<'a> {
    pub(crate) job: &'a JobConfig,
    pub(crate) api: &'a Api,
    pub(crate) client: ConfidentialClient,
    pub(crate) clock: &'a dyn Clock,
    pub(crate) progress: Option<&'a Arc<dyn Progress>>,
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

/// One unit (the job, or one tenant of it) of a run.
struct Unit {
    /// Run here (with a lease, or without one when the store is down).
    ran: bool,
    lease: Option<Lease>,
    lost: bool,
    result: Result<(usize, usize), String>,
}

const LOST: &str = "lost its fleet lease (another instance runs this tick); nothing committed";

pub(crate) async fn run(ctx: &JobContext<'_>) -> Result<RunStats, String> {
    let job = ctx.job;
    let started = Instant::now();
    let output = Output::open(&job.output).map_err(|e| format!("cannot open the output: {e}"))?;
    let tenants: Vec<Option<&str>> = if job.tenants.is_empty() {
        vec![None]
    } else {
        job.tenants.iter().map(|t| Some(t.as_str())).collect()
    };
    let sem = Semaphore::new(job.tenant_concurrency);
    let units = join_all(tenants.iter().map(|t| {
        let sem = &sem;
        let output = &output;
        async move {
            let lease = match &ctx.fleet {
                None => None,
                Some(ft) => {
                    let name = ft.fleet.lease_name(&job.name, ft.tick, *t);
                    match ft.fleet.claim(name, ft.deadline).await {
                        Claim::Held(l) => {
                            info!(job = %job.name, tenant = *t, tick = %rfc3339(ft.tick), "this instance runs the tick (it holds the fleet lease)");
                            Some(l)
                        }
                        Claim::Unavailable => None,
                        Claim::Elsewhere => {
                            return Unit {
                                ran: false,
                                lease: None,
                                lost: false,
                                result: Ok((0, 0)),
                            };
                        }
                    }
                }
            };
            let work = async {
                let _permit = sem.acquire().await.map_err(|_| "stopping".to_string())?;
                let r = run_tenant(ctx, *t, output).await;
                if let Some(p) = ctx.progress {
                    p.finished(&job.name, *t, r.is_ok());
                }
                r
            };
            let (result, lost) = match &lease {
                None => (work.await, false),
                Some(l) => tokio::select! {
                    r = work => (r, false),
                    _ = l.lost() => (Err(LOST.to_string()), true),
                },
            };
            Unit {
                ran: true,
                lease,
                lost,
                result: result.map_err(|e| match t {
                    Some(t) => format!("tenant {t}: {e}"),
                    None => e,
                }),
            }
        }
    }))
    .await;
    let mut stats = RunStats::default();
    let mut errors = Vec::new();
    let mut leases = Vec::new();
    let mut lost = false;
    let mut ran = false;
    for u in units {
        ran |= u.ran;
        lost |= u.lost;
        leases.extend(u.lease);
        match u.result {
            Ok((pages, items)) => {
                stats.pages += pages;
                stats.items += items;
            }
            Err(e) => errors.push(e),
        }
    }
    if !ran {
        // Every unit ran on another instance: nothing to write here.
        drop(output);
        metrics::counter!("apptoken_daemon_job_runs_total", "job" => job.name.clone(), "outcome" => "elsewhere").increment(1);
        info!(job = %job.name, "this tick ran on another instance of the fleet");
        stats.elsewhere = true;
        return Ok(stats);
    }
    if !lost {
        // Fencing: a lease lost since the last renewal stops the commit.
        for l in &leases {
            if !l.still_held().await {
                lost = true;
            }
        }
    }
    if lost {
        drop(output);
        for l in leases {
            l.abandon().await;
        }
        metrics::counter!("apptoken_daemon_job_runs_total", "job" => job.name.clone(), "outcome" => "lost").increment(1);
        warn!(job = %job.name, "{LOST}");
        return Err(LOST.to_string());
    }
    let finish = |leases: Vec<Lease>| async move {
        for l in leases {
            l.finish().await;
        }
    };
    let elapsed = started.elapsed();
    metrics::histogram!("apptoken_daemon_job_duration_seconds", "job" => job.name.clone())
        .record(elapsed.as_secs_f64());
    if !errors.is_empty() {
        metrics::counter!("apptoken_daemon_job_runs_total", "job" => job.name.clone(), "outcome" => "failure").increment(1);
        // Dropping the output removes its temporary file: the previous output stays.
        drop(output);
        finish(leases).await;
        return Err(errors.join("; "));
    }
    let committed = output
        .commit()
        .map_err(|e| format!("cannot write the output: {e}"));
    finish(leases).await;
    stats.output = committed?;
    metrics::counter!("apptoken_daemon_job_runs_total", "job" => job.name.clone(), "outcome" => "success").increment(1);
    metrics::counter!("apptoken_daemon_job_items_total", "job" => job.name.clone())
        .increment(stats.items as u64);
    info!(job = %job.name, api = %job.api, pages = stats.pages, items = stats.items, duration_ms = elapsed.as_millis() as u64, "job run completed");
    Ok(stats)
}

async fn run_tenant(
    ctx: &JobContext<'_>,
    tenant: Option<&str>,
    output: &Output,
) -> Result<(usize, usize), String> {
    let job = ctx.job;
    let base = &ctx.api.config.base_url;
    let first = join(base, &job.path)?;
    let method = reqwest::Method::from_bytes(job.method.as_bytes())
        .map_err(|_| format!("'{}' is not an HTTP method", job.method))?;
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
            .map_err(|e| match e {
                CallError::Token(e) => token_failure(&job.name, tenant, &e),
                other => other.to_string(),
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
            .map_err(|e| format!("cannot write the output: {e}"))?;
        if let Some(p) = ctx.progress {
            p.page(&job.name, tenant, pages, items);
        }
        if !job.paging || job.max_items.is_some_and(|m| items >= m) {
            break;
        }
        let Some(next) = next else { break };
        let next_url = url
            .join(&next)
            .map_err(|_| format!("the next-page link '{next}' is not a URL"))?;
        if next_url.origin() != first.origin() {
            warn!(job = %job.name, tenant, "the next-page link points at another origin; the token is not sent there");
            return Err(format!(
                "the next-page link points at another origin ({}); stopping",
                next_url.origin().ascii_serialization()
            ));
        }
        if next_url == url {
            return Err("the next-page link points at the same page again".into());
        }
        if pages >= job.max_pages {
            return Err(format!(
                "stopped after {} pages (max_pages); more pages follow",
                job.max_pages
            ));
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
        e => format!("no token: {e}"),
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
            &apptoken::Error::Internal("the token task panicked".into()),
        );
        assert!(
            m.contains("internal error") && m.contains("panicked"),
            "{m}"
        );
        assert!(m.contains("not the configuration"), "{m}");
        let m = token_failure(
            "users",
            Some("t.example"),
            &apptoken::Error::Configuration("no client id".into()),
        );
        assert!(
            m.starts_with("no token: ") && !m.contains("internal"),
            "{m}"
        );
    }
}
