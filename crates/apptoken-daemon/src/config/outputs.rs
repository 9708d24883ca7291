//! A job's outputs: `output` (stdout, a file, one file per tenant with
//! `{tenant}` in the file name) and `status_file` (given, or by default
//! beside a file output of a job with tenants).
//!
//! Pure but for the preflight of each path (its directory exists, it is not
//! a directory), made through [`Preflight`](super::preflight::Preflight) at
//! the moment the path is checked, so the problems keep the order of the
//! fields. Invariants: paths are `${VAR}`-expanded, then resolved against
//! the file's directory; an output path with a problem is kept as the empty
//! path (so it is neither preflighted nor compared with other jobs' files);
//! `{tenant}` needs tenants and belongs in the file name only.

use std::path::PathBuf;

use toml::Spanned;

use super::raw::RawJob;
use super::{Checker, Inputs, OutputConfig, TENANT_PLACEHOLDER};

/// `output` of job `i`, before `{tenant}` is looked at ([`per_tenant`]).
pub(super) fn output(
    ck: &mut Checker<'_>,
    i: usize,
    j: &RawJob,
    inputs: &Inputs<'_>,
) -> OutputConfig {
    let f = |k: &str| format!("jobs[{i}].{k}");
    match &j.output {
        None => OutputConfig::Stdout,
        Some(o) => match (o.get_ref().kind.get_ref().as_str(), &o.get_ref().path) {
            ("stdout", None) => OutputConfig::Stdout,
            ("stdout", Some(p)) => {
                ck.at(
                    Some(p.span()),
                    f("output.path"),
                    "only a file output has a path",
                );
                OutputConfig::Stdout
            }
            ("file", Some(p)) => {
                let path = match inputs.expand(p.get_ref()) {
                    Ok(s) => inputs.resolve(&s),
                    Err(m) => {
                        ck.at(Some(p.span()), f("output.path"), m);
                        PathBuf::new()
                    }
                };
                if !path.as_os_str().is_empty()
                    && let Err(m) = inputs.files.file_place(&path)
                {
                    ck.at(Some(p.span()), f("output.path"), m);
                }
                OutputConfig::File(path)
            }
            ("file", None) => {
                ck.at(
                    Some(o.span()),
                    f("output.path"),
                    "a file output needs path = \"…\"",
                );
                OutputConfig::Stdout
            }
            (other, _) => {
                ck.at(
                    Some(o.get_ref().kind.span()),
                    f("output.type"),
                    format!("'{other}' is not an output type; use \"stdout\" or \"file\""),
                );
                OutputConfig::Stdout
            }
        },
    }
}

/// A file output with `{tenant}` becomes one file per tenant: it needs
/// tenants (`has_tenants`), and `{tenant}` belongs in the file name.
pub(super) fn per_tenant(
    ck: &mut Checker<'_>,
    i: usize,
    j: &RawJob,
    output: OutputConfig,
    has_tenants: bool,
) -> OutputConfig {
    let f = |k: &str| format!("jobs[{i}].{k}");
    match output {
        OutputConfig::File(p) if p.to_string_lossy().contains(TENANT_PLACEHOLDER) => {
            let span = j
                .output
                .as_ref()
                .and_then(|o| o.get_ref().path.as_ref())
                .map(Spanned::span);
            let in_name = p
                .file_name()
                .is_some_and(|n| n.to_string_lossy().contains(TENANT_PLACEHOLDER));
            let in_dir = p
                .parent()
                .is_some_and(|d| d.to_string_lossy().contains(TENANT_PLACEHOLDER));
            if !has_tenants {
                ck.at(
                    span,
                    f("output.path"),
                    "{tenant} needs a job with tenants or tenants_file",
                );
            } else if in_dir || !in_name {
                ck.at(
                    span,
                    f("output.path"),
                    "{tenant} may only appear in the file name, not in a directory",
                );
            }
            OutputConfig::PerTenant(p)
        }
        other => other,
    }
}

/// `status_file` of job `i` (named `name`), or by default
/// `<output directory>/<job name>.status.json` for a job with tenants and
/// a file output; `None` also when the given value has a problem.
pub(super) fn status_file(
    ck: &mut Checker<'_>,
    i: usize,
    j: &RawJob,
    name: &str,
    output: &OutputConfig,
    has_tenants: bool,
    inputs: &Inputs<'_>,
) -> Option<PathBuf> {
    let f = |k: &str| format!("jobs[{i}].{k}");
    match &j.status_file {
        Some(sf) => match inputs.expand(sf.get_ref()) {
            Ok(s) => {
                let path = inputs.resolve(&s);
                if let Err(m) = inputs.files.file_place(&path) {
                    ck.at(Some(sf.span()), f("status_file"), m);
                }
                Some(path)
            }
            Err(m) => {
                ck.at(Some(sf.span()), f("status_file"), m);
                None
            }
        },
        None if has_tenants => match output {
            OutputConfig::File(p) | OutputConfig::PerTenant(p) => {
                p.parent().map(|d| d.join(default_status_name(name)))
            }
            OutputConfig::Stdout => None,
        },
        None => None,
    }
}

/// `<job name>.status.json`, the name made safe for a file name.
fn default_status_name(job: &str) -> String {
    let safe: String = job
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{}.status.json", safe.trim_start_matches('.'))
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::super::*;

    #[test]
    fn a_tenant_placeholder_makes_a_per_tenant_output() {
        let dir = workspace("a.example\n");
        let c = check_in(
            dir.path(),
            &with_job(
                "tenants = [\"a.example\"]\noutput = { type = \"file\", path = \"data/users-{tenant}.jsonl\" }",
            ),
        )
        .unwrap();
        let template = dir.path().join("data/users-{tenant}.jsonl");
        assert_eq!(c.jobs[0].output, OutputConfig::PerTenant(template.clone()));
        assert_eq!(
            c.jobs[0].output.path_for(Some("t.example")),
            Some(dir.path().join("data/users-t.example.jsonl"))
        );
        assert_eq!(c.jobs[0].output.path_for(None), None);
        // With a tenants file too; a path without it is a shared file.
        let c = check_in(
            dir.path(),
            &with_job(
                "tenants_file = \"tenants.txt\"\noutput = { type = \"file\", path = \"${DATA}/{tenant}.jsonl\" }",
            ),
        )
        .unwrap();
        assert_eq!(
            c.jobs[0].output.path_for(Some("t.example")),
            Some(dir.path().join("data/t.example.jsonl"))
        );
        let c = check_in(
            dir.path(),
            &with_job("tenants = [\"a.example\"]\noutput = { type = \"file\", path = \"data/users.jsonl\" }"),
        )
        .unwrap();
        let shared = dir.path().join("data/users.jsonl");
        assert_eq!(c.jobs[0].output, OutputConfig::File(shared.clone()));
        assert_eq!(c.jobs[0].output.path_for(Some("t.example")), Some(shared));
        assert_eq!(OutputConfig::Stdout.path_for(Some("t.example")), None);
    }

    #[test]
    fn a_tenant_placeholder_needs_tenants_and_belongs_in_the_file_name() {
        let dir = workspace("");
        let path = "\"data/users-{tenant}.jsonl\"";
        let text = with_job(&format!("output = {{ type = \"file\", path = {path} }}"));
        only_problem(
            &check_in(dir.path(), &text).unwrap_err(),
            "jobs[0].output.path",
            place(&text, path),
            "{tenant} needs a job with tenants or tenants_file",
        );
        // An empty list runs for the identity's tenant: no tenant to name a file.
        let text = with_job(&format!(
            "tenants = []\noutput = {{ type = \"file\", path = {path} }}"
        ));
        only_problem(
            &check_in(dir.path(), &text).unwrap_err(),
            "jobs[0].output.path",
            place(&text, path),
            "{tenant} needs a job with tenants or tenants_file",
        );

        // In a directory part (that exists, so that it is the only problem).
        std::fs::create_dir(dir.path().join("data/{tenant}")).unwrap();
        let path = "\"data/{tenant}/users.jsonl\"";
        let text = with_job(&format!(
            "tenants = [\"a.example\"]\noutput = {{ type = \"file\", path = {path} }}"
        ));
        only_problem(
            &check_in(dir.path(), &text).unwrap_err(),
            "jobs[0].output.path",
            place(&text, path),
            "{tenant} may only appear in the file name",
        );
        let path = "\"data/{tenant}/{tenant}.jsonl\"";
        let text = with_job(&format!(
            "tenants = [\"a.example\"]\noutput = {{ type = \"file\", path = {path} }}"
        ));
        only_problem(
            &check_in(dir.path(), &text).unwrap_err(),
            "jobs[0].output.path",
            place(&text, path),
            "{tenant} may only appear in the file name",
        );
    }

    #[test]
    fn an_explicit_status_file_is_resolved_and_its_directory_checked() {
        let dir = workspace("");
        let c = check_in(dir.path(), &with_job("status_file = \"data/users.json\"")).unwrap();
        assert_eq!(
            c.jobs[0].status_file,
            Some(dir.path().join("data/users.json"))
        );
        let c = check_in(
            dir.path(),
            &with_job(
                "tenants = [\"a.example\"]\noutput = { type = \"file\", path = \"data/u.jsonl\" }\nstatus_file = \"${DATA}/s.json\"",
            ),
        )
        .unwrap();
        assert_eq!(c.jobs[0].status_file, Some(dir.path().join("data/s.json")));

        let text = with_job("status_file = \"nowhere/users.json\"");
        let p = only_problem(
            &check_in(dir.path(), &text).unwrap_err(),
            "jobs[0].status_file",
            place(&text, "\"nowhere/users.json\""),
            "does not exist",
        );
        assert!(
            p.message
                .contains(&dir.path().join("nowhere").display().to_string()),
            "{p}"
        );
        let text = with_job("status_file = \"data\"");
        only_problem(
            &check_in(dir.path(), &text).unwrap_err(),
            "jobs[0].status_file",
            place(&text, "\"data\""),
            "is a directory",
        );
    }

    #[test]
    fn the_default_status_file_sits_beside_a_file_output_of_a_job_with_tenants() {
        let dir = workspace("a.example\n");
        let status = |job: &str| {
            check_in(dir.path(), &with_job(job))
                .unwrap()
                .jobs
                .remove(0)
                .status_file
        };
        let out = "output = { type = \"file\", path = \"data/out/u.jsonl\" }";
        std::fs::create_dir(dir.path().join("data/out")).unwrap();
        let beside = Some(dir.path().join("data/out/users.status.json"));
        assert_eq!(status(&format!("tenants = [\"a.example\"]\n{out}")), beside);
        assert_eq!(
            status(&format!("tenants_file = \"tenants.txt\"\n{out}")),
            beside
        );
        assert_eq!(
            status(
                "tenants = [\"a.example\"]\noutput = { type = \"file\", path = \"data/out/u-{tenant}.jsonl\" }"
            ),
            beside
        );
        // No default without tenants, or with standard output.
        assert_eq!(status(out), None);
        assert_eq!(status(&format!("tenants = []\n{out}")), None);
        assert_eq!(status("tenants = [\"a.example\"]"), None);
        assert_eq!(
            status("tenants = [\"a.example\"]\noutput = { type = \"stdout\" }"),
            None
        );

        // The job's name made safe for a file name.
        for (name, file) in [
            ("users", "users.status.json"),
            ("a-b_c.d", "a-b_c.d.status.json"),
            ("users/of contoso", "users_of_contoso.status.json"),
            ("../up", "_up.status.json"),
            ("..hidden", "hidden.status.json"),
            ("Grüße", "Gr__e.status.json"),
        ] {
            let text = with_job(&format!("tenants = [\"a.example\"]\n{out}"))
                .replace("name = \"users\"", &format!("name = \"{name}\""));
            let c = check_in(dir.path(), &text).unwrap();
            assert_eq!(
                c.jobs[0].status_file,
                Some(dir.path().join("data/out").join(file)),
                "{name}"
            );
        }
    }
}
