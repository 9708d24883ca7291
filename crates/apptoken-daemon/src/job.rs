//! One run of one job: every tenant (bounded concurrency), every page, into
//! one output committed when the whole run succeeded.

use std::sync::Arc;
use std::time::Instant;

use apptoken::{Clock, ConfidentialClient};
use futures::future::join_all;
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tracing::{info, warn};

use crate::config::{JobConfig, join};
use crate::daemon::Progress;
use crate::http::{Api, CallError};
use crate::output::Output;

/// What one run did.
#[derive(Debug, Default)]
pub(crate) struct RunStats {
    pub(crate) pages: usize,
    pub(crate) items: usize,
    pub(crate) output: Option<std::path::PathBuf>,
}

pub(crate) struct JobContext<'a> {
    pub(crate) job: &'a JobConfig,
    pub(crate) api: &'a Api,
    pub(crate) client: ConfidentialClient,
    pub(crate) clock: &'a dyn Clock,
    pub(crate) progress: Option<&'a Arc<dyn Progress>>,
}

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
    let results = join_all(tenants.iter().map(|t| {
        let sem = &sem;
        let output = &output;
        async move {
            let _permit = sem.acquire().await.map_err(|_| "stopping".to_string())?;
            let r = run_tenant(ctx, *t, output).await;
            if let Some(p) = ctx.progress {
                p.finished(&job.name, *t, r.is_ok());
            }
            r.map_err(|e| match t {
                Some(t) => format!("tenant {t}: {e}"),
                None => e,
            })
        }
    }))
    .await;
    let mut stats = RunStats::default();
    let mut errors = Vec::new();
    for r in results {
        match r {
            Ok((pages, items)) => {
                stats.pages += pages;
                stats.items += items;
            }
            Err(e) => errors.push(e),
        }
    }
    let elapsed = started.elapsed();
    metrics::histogram!("apptoken_daemon_job_duration_seconds", "job" => job.name.clone())
        .record(elapsed.as_secs_f64());
    if !errors.is_empty() {
        metrics::counter!("apptoken_daemon_job_runs_total", "job" => job.name.clone(), "outcome" => "failure").increment(1);
        // Dropping the output removes its temporary file: the previous output stays.
        drop(output);
        return Err(errors.join("; "));
    }
    stats.output = output
        .commit()
        .map_err(|e| format!("cannot write the output: {e}"))?;
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
                CallError::Token(e) => format!("no token: {e}"),
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
            .map(|item| match tenant {
                Some(t) => json!({"job": job.name, "tenant": t, "item": item}),
                None => json!({"job": job.name, "item": item}),
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
