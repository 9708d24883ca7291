//! The `[[jobs]]` tables: name, API, method, path, body, schedule, paging
//! limits, tenant concurrency and backoffs, and the files the jobs write
//! (no two jobs the same). A job's tenants are checked in [`super::tenants`],
//! its outputs in [`super::outputs`].
//!
//! Pure but for what those two preflight. Invariants: the fields of a job
//! are checked in a fixed order (name, api, method, path, body, schedule,
//! output, tenants, tenants_file, {tenant}, status_file, backoffs, counts,
//! written files), which is the order of its problems; a job without a
//! valid schedule is left out of the result; a backoff with a problem is
//! not compared with the other backoff again.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use toml::Spanned;

use super::raw::{RawApi, RawJob};
use super::{ApiConfig, Checker, Inputs, JobConfig, OutputConfig, join, outputs, tenants};
use crate::schedule::Schedule;
use apptoken::parse_duration;

/// Checks `[[jobs]]`; `raw_apis` are the APIs named in the file, `apis`
/// those that checked clean (a path is joined with its base URL).
pub(super) fn check(
    ck: &mut Checker<'_>,
    raw: &[Spanned<RawJob>],
    raw_apis: &BTreeMap<String, Spanned<RawApi>>,
    apis: &BTreeMap<String, ApiConfig>,
    inputs: &Inputs<'_>,
) -> Vec<JobConfig> {
    let mut jobs = Vec::new();
    let mut seen = BTreeMap::new();
    // The files the jobs write (outputs, status files): by whom.
    let mut written_by: BTreeMap<PathBuf, String> = BTreeMap::new();
    for (i, job) in raw.iter().enumerate() {
        let f = |k: &str| format!("jobs[{i}].{k}");
        let j = job.get_ref();
        let name = j.name.get_ref().trim().to_string();
        if name.is_empty() || name.chars().any(|c| c.is_control()) {
            ck.at(Some(j.name.span()), f("name"), "must be a non-empty name");
        }
        if seen.insert(name.clone(), i).is_some() {
            ck.at(
                Some(j.name.span()),
                f("name"),
                format!("another job is already named '{name}'"),
            );
        }
        if !raw_apis.contains_key(j.api.get_ref()) {
            let known: Vec<&str> = raw_apis.keys().map(String::as_str).collect();
            ck.at(
                Some(j.api.span()),
                f("api"),
                format!(
                    "no API named '{}' in [apis] (known: {})",
                    j.api.get_ref(),
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ),
            );
        }
        let method = j
            .method
            .as_ref()
            .map_or("GET".to_string(), |m| m.get_ref().to_ascii_uppercase());
        if reqwest::Method::from_bytes(method.as_bytes()).is_err() {
            ck.at(
                j.method.as_ref().map(|m| m.span()),
                f("method"),
                format!("'{method}' is not an HTTP method"),
            );
        }
        let p = j.path.get_ref();
        if p.contains("://") || p.starts_with("//") {
            ck.at(
                Some(j.path.span()),
                f("path"),
                "must be relative to the API's base_url (no scheme or host)",
            );
        } else if let Some(api) = apis.get(j.api.get_ref())
            && join(&api.base_url, p).is_err()
        {
            ck.at(
                Some(j.path.span()),
                f("path"),
                "does not form a URL with the API's base_url",
            );
        }
        let body = match &j.body {
            None => None,
            Some(b) => match b.get_ref() {
                toml::Value::String(s) => match serde_json::from_str(s) {
                    Ok(v) => Some(v),
                    Err(e) => {
                        ck.at(Some(b.span()), f("body"), format!("not valid JSON: {e}"));
                        None
                    }
                },
                other => serde_json::to_value(other).ok(),
            },
        };
        let schedule = match (&j.every, &j.cron) {
            (Some(_), Some(c)) => {
                ck.at(
                    Some(c.span()),
                    f("cron"),
                    "give either every or cron, not both",
                );
                None
            }
            (None, None) => {
                ck.at(
                    Some(job.span()),
                    f("every"),
                    "no schedule: set every = \"15m\" or cron = \"0 */5 * * * *\"",
                );
                None
            }
            (Some(e), None) => match parse_duration(e.get_ref()) {
                Ok(d) if d >= Duration::from_secs(1) => Some(Schedule::Every(d)),
                Ok(_) => {
                    ck.at(Some(e.span()), f("every"), "must be at least 1s");
                    None
                }
                Err(m) => {
                    ck.at(Some(e.span()), f("every"), m);
                    None
                }
            },
            (None, Some(c)) => match Schedule::cron(c.get_ref()) {
                Ok(s) => Some(s),
                Err(m) => {
                    ck.at(Some(c.span()), f("cron"), m);
                    None
                }
            },
        };
        let output = outputs::output(ck, i, j, inputs);
        let (tenants, tenants_file) = tenants::check(ck, i, j, inputs);
        // `tenants = []` is the identity's tenant alone, like no list: no
        // tenant to name a `{tenant}` file after, no status file.
        let has_tenants =
            j.tenants.as_ref().is_some_and(|t| !t.is_empty()) || j.tenants_file.is_some();
        let output = outputs::per_tenant(ck, i, j, output, has_tenants);
        let status_file = outputs::status_file(ck, i, j, &name, &output, has_tenants, inputs);
        // None: the value has a problem (reported).
        let backoff = |ck: &mut Checker<'_>, v: &Option<Spanned<String>>, k: &str, default| {
            let Some(v) = v else { return Some(default) };
            match parse_duration(v.get_ref()) {
                Ok(d) if d >= Duration::from_secs(1) => Some(d),
                Ok(_) => {
                    ck.at(Some(v.span()), f(k), "must be at least 1s");
                    None
                }
                Err(m) => {
                    ck.at(Some(v.span()), f(k), m);
                    None
                }
            }
        };
        let tenant_backoff = backoff(
            ck,
            &j.tenant_backoff,
            "tenant_backoff",
            Duration::from_secs(300),
        );
        let tenant_backoff_max = backoff(
            ck,
            &j.tenant_backoff_max,
            "tenant_backoff_max",
            Duration::from_secs(6 * 3600),
        );
        if let (Some(initial), Some(max)) = (tenant_backoff, tenant_backoff_max)
            && max < initial
        {
            // Without tenant_backoff_max (6h), the value at fault is
            // tenant_backoff's.
            ck.at(
                j.tenant_backoff_max
                    .as_ref()
                    .or(j.tenant_backoff.as_ref())
                    .map(Spanned::span),
                f("tenant_backoff_max"),
                if j.tenant_backoff_max.is_some() {
                    "must be at least tenant_backoff"
                } else {
                    "must be at least tenant_backoff (6h when not given): set tenant_backoff_max"
                },
            );
        }
        let tenant_backoff = tenant_backoff.unwrap_or(Duration::from_secs(300));
        let tenant_backoff_max = tenant_backoff_max.unwrap_or(Duration::from_secs(6 * 3600));
        let positive =
            |ck: &mut Checker<'_>, v: &Option<Spanned<usize>>, k: &str, default: usize| match v {
                Some(v) if *v.get_ref() == 0 => {
                    ck.at(Some(v.span()), f(k), "must be at least 1");
                    default
                }
                Some(v) => *v.get_ref(),
                None => default,
            };
        let tenant_concurrency = positive(ck, &j.tenant_concurrency, "tenant_concurrency", 4);
        let max_pages = positive(ck, &j.max_pages, "max_pages", 1000);
        let max_items = j
            .max_items
            .as_ref()
            .map(|_| positive(ck, &j.max_items, "max_items", 1));
        let output_span = j
            .output
            .as_ref()
            .and_then(|o| o.get_ref().path.as_ref())
            .map(Spanned::span);
        let written = [
            match &output {
                OutputConfig::File(p) | OutputConfig::PerTenant(p) => {
                    Some((p, "output.path", output_span.clone()))
                }
                OutputConfig::Stdout => None,
            },
            // A default status file has no value of its own: the output
            // path's (it sits beside it).
            status_file.as_ref().map(|p| {
                let span = j.status_file.as_ref().map(Spanned::span);
                (p, "status_file", span.or(output_span.clone()))
            }),
        ];
        for (p, k, span) in written.into_iter().flatten() {
            if p.as_os_str().is_empty() {
                continue; // its problem is reported
            }
            match written_by.get(p) {
                Some(other) => ck.at(
                    span,
                    f(k),
                    format!("job '{other}' writes the same file ('{}')", p.display()),
                ),
                None => {
                    written_by.insert(p.clone(), name.clone());
                }
            }
        }
        if let Some(schedule) = schedule {
            jobs.push(JobConfig {
                name,
                api: j.api.get_ref().clone(),
                method,
                path: p.clone(),
                body,
                schedule,
                run_at_start: j.run_at_start,
                paging: j.paging.unwrap_or(true),
                max_items,
                max_pages,
                output,
                tenants,
                tenants_file,
                tenant_concurrency,
                status_file,
                tenant_backoff,
                tenant_backoff_max,
            });
        }
    }
    jobs
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::super::*;

    #[test]
    fn two_jobs_may_not_write_the_same_file() {
        let dir = workspace("a.example\n");
        let second = |lines: &str| {
            format!(
                "\n[[jobs]]\nname = \"groups\"\napi = \"sample\"\npath = \"groups\"\nevery = \"1h\"\n{lines}"
            )
        };
        // The same explicit status file.
        let text = with_job(&format!(
            "status_file = \"data/s.json\"{}",
            second("status_file = \"data/s.json\"")
        ));
        only_problem(
            &check_in(dir.path(), &text).unwrap_err(),
            "jobs[1].status_file",
            place_last(&text, "\"data/s.json\""),
            "job 'users' writes the same file",
        );
        // A status file that is another job's output.
        let text = with_job(&format!(
            "output = {{ type = \"file\", path = \"data/u.jsonl\" }}{}",
            second("status_file = \"${DATA}/u.jsonl\"")
        ));
        only_problem(
            &check_in(dir.path(), &text).unwrap_err(),
            "jobs[1].status_file",
            place(&text, "\"${DATA}/u.jsonl\""),
            "job 'users' writes the same file",
        );
        // A default status file that is another job's output.
        let text = with_job(&format!(
            "tenants = [\"a.example\"]\noutput = {{ type = \"file\", path = \"data/u.jsonl\" }}{}",
            second("output = { type = \"file\", path = \"data/users.status.json\" }")
        ));
        only_problem(
            &check_in(dir.path(), &text).unwrap_err(),
            "jobs[1].output.path",
            place(&text, "\"data/users.status.json\""),
            "job 'users' writes the same file",
        );
        // Two default status files of names made alike.
        let text = with_job(&format!(
            "tenants = [\"a.example\"]\noutput = {{ type = \"file\", path = \"data/u.jsonl\" }}{}",
            second(
                "tenants = [\"a.example\"]\noutput = { type = \"file\", path = \"data/g.jsonl\" }"
            )
        ))
        .replace("name = \"groups\"", "name = \"users?\"")
        .replace("name = \"users\"", "name = \"users!\"");
        let p = check_in(dir.path(), &text).unwrap_err();
        assert_eq!(p.len(), 1, "{p:#?}");
        assert_eq!(p[0].field, "jobs[1].status_file");
        assert!(
            p[0].message.contains("job 'users!' writes the same file"),
            "{p:#?}"
        );
        // Its place: the output path it sits beside.
        assert_eq!(p[0].location, Some(place(&text, "\"data/g.jsonl\"")));
    }

    #[test]
    fn tenant_backoffs_have_defaults_and_bounds() {
        let dir = workspace("");
        let c = check_in(dir.path(), &with_job("tenants = [\"a.example\"]")).unwrap();
        assert_eq!(c.jobs[0].tenant_backoff, Duration::from_secs(300));
        assert_eq!(c.jobs[0].tenant_backoff_max, Duration::from_secs(6 * 3600));
        let c = check_in(
            dir.path(),
            &with_job("tenant_backoff = \"30s\"\ntenant_backoff_max = \"1h30m\""),
        )
        .unwrap();
        assert_eq!(c.jobs[0].tenant_backoff, Duration::from_secs(30));
        assert_eq!(c.jobs[0].tenant_backoff_max, Duration::from_secs(5400));
        let c = check_in(
            dir.path(),
            &with_job("tenant_backoff = \"1s\"\ntenant_backoff_max = \"1s\""),
        )
        .unwrap();
        assert_eq!(c.jobs[0].tenant_backoff, Duration::from_secs(1));
        assert_eq!(c.jobs[0].tenant_backoff_max, Duration::from_secs(1));

        for key in ["tenant_backoff", "tenant_backoff_max"] {
            let text = with_job(&format!("{key} = \"999ms\""));
            only_problem(
                &check_in(dir.path(), &text).unwrap_err(),
                &format!("jobs[0].{key}"),
                place(&text, "\"999ms\""),
                "must be at least 1s",
            );
            let text = with_job(&format!("{key} = \"soon\""));
            only_problem(
                &check_in(dir.path(), &text).unwrap_err(),
                &format!("jobs[0].{key}"),
                place(&text, "\"soon\""),
                "is not a duration",
            );
        }

        let text = with_job("tenant_backoff = \"10m\"\ntenant_backoff_max = \"9m59s\"");
        only_problem(
            &check_in(dir.path(), &text).unwrap_err(),
            "jobs[0].tenant_backoff_max",
            place(&text, "\"9m59s\""),
            "must be at least tenant_backoff",
        );
        let text = with_job("tenant_backoff_max = \"4m\"");
        only_problem(
            &check_in(dir.path(), &text).unwrap_err(),
            "jobs[0].tenant_backoff_max",
            place(&text, "\"4m\""),
            "must be at least tenant_backoff",
        );
        // A value with a problem is not compared again (one problem each).
        let text = with_job("tenant_backoff = \"7h\"\ntenant_backoff_max = \"soon\"");
        only_problem(
            &check_in(dir.path(), &text).unwrap_err(),
            "jobs[0].tenant_backoff_max",
            place(&text, "\"soon\""),
            "is not a duration",
        );
        let text = with_job("tenant_backoff = \"0s\"\ntenant_backoff_max = \"1m\"");
        only_problem(
            &check_in(dir.path(), &text).unwrap_err(),
            "jobs[0].tenant_backoff",
            place(&text, "\"0s\""),
            "must be at least 1s",
        );
        // Above the default maximum, the place is tenant_backoff's value.
        let text = with_job("tenant_backoff = \"7h\"");
        only_problem(
            &check_in(dir.path(), &text).unwrap_err(),
            "jobs[0].tenant_backoff_max",
            place(&text, "\"7h\""),
            "must be at least tenant_backoff",
        );
    }
}
