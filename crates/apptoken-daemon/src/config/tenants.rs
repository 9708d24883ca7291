//! A job's tenants: the inline `tenants` list or the lines of
//! `tenants_file`; and [`tenants_file_of`], which finds a job's tenants
//! file from the TOML alone (for `apptoken tenants add|remove`: it reads
//! the configuration file, nothing else).
//!
//! Pure but for reading the tenants file, made through
//! [`Preflight`](super::preflight::Preflight). Invariants: each inline
//! tenant is checked at its own place, and a tenant listed twice (case
//! folded) is a problem; a tenants file's problems are reported at its
//! value, each naming the file's line; an empty tenants file is a problem
//! (a job would silently run for nobody); `tenants` and `tenants_file`
//! exclude each other; a managed identity ([`managed_identity`]) has
//! no tenants but its own.

use std::path::{Path, PathBuf};

use super::raw::RawJob;
use super::{Checker, Inputs};

/// The tenants of job `i` and its tenants file (resolved), if any.
pub(super) fn check(
    ck: &mut Checker<'_>,
    i: usize,
    j: &RawJob,
    inputs: &Inputs<'_>,
) -> (Vec<String>, Option<PathBuf>) {
    let f = |k: &str| format!("jobs[{i}].{k}");
    let mut tenants = Vec::new();
    let mut lower = std::collections::HashSet::new();
    for t in j.tenants.iter().flatten() {
        let v = t.get_ref().trim();
        match crate::tenant_list::check_tenant(v) {
            Err(m) => ck.at(Some(t.span()), f("tenants"), m),
            Ok(v) if !lower.insert(v.to_ascii_lowercase()) => ck.at(
                Some(t.span()),
                f("tenants"),
                format!("'{v}' is listed twice"),
            ),
            Ok(v) => tenants.push(v.to_string()),
        }
    }
    let mut tenants_file = None;
    if let Some(tf) = &j.tenants_file {
        if j.tenants.is_some() {
            ck.at(
                Some(tf.span()),
                f("tenants_file"),
                "give either tenants or tenants_file, not both",
            );
        }
        match inputs.expand(tf.get_ref()) {
            Err(m) => ck.at(Some(tf.span()), f("tenants_file"), m),
            Ok(s) => {
                let path = inputs.resolve(&s);
                match inputs.files.tenant_list(&path) {
                    Ok(list) if list.is_empty() => ck.at(
                        Some(tf.span()),
                        f("tenants_file"),
                        format!("'{}' lists no tenant", path.display()),
                    ),
                    Ok(list) => tenants = list,
                    Err(problems) => {
                        for m in problems {
                            ck.at(Some(tf.span()), f("tenants_file"), m);
                        }
                    }
                }
                tenants_file = Some(path);
            }
        }
    }
    (tenants, tenants_file)
}

/// Refuses the tenants of every job when the identity is a managed
/// identity: it belongs to one tenant, its host's, and Entra gives it no
/// token for another (a multi-tenant job needs an app registration, which
/// `credential = "managed-identity-federation"` gives without a secret).
pub(super) fn managed_identity(ck: &mut Checker<'_>, jobs: &[toml::Spanned<RawJob>]) {
    const WHY: &str = "a managed identity gets tokens in its own tenant only, so it cannot run a \
                       job for other tenants: remove the tenants, or use credential = \
                       \"managed-identity-federation\" with a multi-tenant app registration that \
                       trusts the managed identity (docs/MANAGED_IDENTITY.md)";
    for (i, j) in jobs.iter().enumerate() {
        let j = j.get_ref();
        match (&j.tenants, &j.tenants_file) {
            (Some(list), _) if !list.is_empty() => {
                ck.at(Some(list[0].span()), format!("jobs[{i}].tenants"), WHY)
            }
            (_, Some(tf)) => ck.at(Some(tf.span()), format!("jobs[{i}].tenants_file"), WHY),
            _ => {}
        }
    }
}

/// The `tenants_file` of `job` in the configuration file `config` — or the
/// only one it names — resolved as the daemon resolves it (`${VAR}`
/// expanded, relative to the file). Read from the TOML alone, without the
/// whole check: `apptoken tenants add|remove` need not read the credential.
pub fn tenants_file_of(
    config: &Path,
    job: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<PathBuf, crate::error::Error> {
    let bad = |message: String| crate::error::Error::TenantList {
        path: config.to_path_buf(),
        message,
    };
    let text = std::fs::read_to_string(config).map_err(|e| bad(format!("cannot read it: {e}")))?;
    let raw: toml::Table = toml::from_str(&text).map_err(|e| bad(e.message().to_string()))?;
    let base = config.parent().unwrap_or(Path::new("."));
    let mut files: Vec<(String, PathBuf)> = Vec::new();
    for j in raw
        .get("jobs")
        .and_then(toml::Value::as_array)
        .into_iter()
        .flatten()
    {
        let name = j.get("name").and_then(toml::Value::as_str).unwrap_or("");
        if let Some(f) = j.get("tenants_file").and_then(toml::Value::as_str)
            && job.is_none_or(|w| w == name)
        {
            let p = PathBuf::from(super::expand::expand(f, env).map_err(bad)?);
            let p = if p.is_relative() { base.join(p) } else { p };
            if !files.iter().any(|(_, q)| *q == p) {
                files.push((name.to_string(), p));
            }
        }
    }
    match (files.len(), job) {
        (1, _) => Ok(files.remove(0).1),
        (0, Some(j)) => Err(bad(format!("no job named '{j}' with a tenants_file"))),
        (0, None) => Err(bad("no job has a tenants_file".into())),
        _ => Err(bad(format!(
            "several jobs have their own tenants_file ({}): say which with --job",
            files
                .iter()
                .map(|(n, _)| format!("'{n}'"))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;

    #[test]
    fn a_managed_identity_runs_no_job_for_other_tenants() {
        let dir = workspace("a.example\n");
        let mi = |job: &str| {
            with_job(job).replace(
                "client_id = \"cid\"\n",
                "client_id = \"cid\"\ncredential = \"managed-identity\"\n",
            )
        };
        let text = mi("tenants = [\"a.example\", \"b.example\"]");
        let p = check_in(dir.path(), &text).unwrap_err();
        only_problem(
            &p,
            "jobs[0].tenants",
            place(&text, "\"a.example\""),
            "managed-identity-federation",
        );
        let text = mi("tenants_file = \"tenants.txt\"");
        let p = check_in(dir.path(), &text).unwrap_err();
        only_problem(
            &p,
            "jobs[0].tenants_file",
            place(&text, "\"tenants.txt\""),
            "in its own tenant only",
        );
        // No tenants, or an empty list (the identity's own tenant): fine.
        check_in(dir.path(), &mi("")).unwrap();
        check_in(dir.path(), &mi("tenants = []")).unwrap();
        // The same tenants with an app registration's credential: fine.
        check_in(
            dir.path(),
            &with_job("tenants = [\"a.example\", \"b.example\"]"),
        )
        .unwrap();
        let fic = with_job("tenants = [\"a.example\"]").replace(
            "client_id = \"cid\"\n",
            "client_id = \"cid\"\ncredential = \"managed-identity-federation\"\n",
        );
        check_in(dir.path(), &fic).unwrap();
    }

    #[test]
    fn a_tenants_file_fills_the_tenants_in_file_order() {
        let dir = workspace(
            "# customers of the users export\n\nzeta.example\n  alpha.example   # since 2026-11\n\
             \t\n7c1e3a52-9c4b-4d8e-a0f1-3b2d5e6f7a81#no space before the comment\n# mid.example\n",
        );
        let c = check_in(dir.path(), &with_job("tenants_file = \"tenants.txt\"")).unwrap();
        let j = &c.jobs[0];
        assert_eq!(
            j.tenants,
            [
                "zeta.example",
                "alpha.example",
                "7c1e3a52-9c4b-4d8e-a0f1-3b2d5e6f7a81"
            ]
        );
        let resolved = dir.path().join("tenants.txt");
        assert_eq!(j.tenants_file.as_deref(), Some(resolved.as_path()));
        assert_eq!(c.tenant_files(), [resolved]);

        // ${VAR} is expanded, then the path resolved like any other.
        std::fs::write(dir.path().join("data/list.txt"), "b.example\na.example\n").unwrap();
        let c = check_in(dir.path(), &with_job("tenants_file = \"${DATA}/list.txt\"")).unwrap();
        assert_eq!(c.jobs[0].tenants, ["b.example", "a.example"]);
        assert_eq!(
            c.jobs[0].tenants_file.as_deref(),
            Some(dir.path().join("data/list.txt").as_path())
        );
        // Without a tenants file, none.
        let c = check_in(dir.path(), &with_job("")).unwrap();
        assert!(c.jobs[0].tenants.is_empty() && c.jobs[0].tenants_file.is_none());
        assert!(c.tenant_files().is_empty());
    }

    #[test]
    fn a_tenants_file_that_cannot_be_used_is_a_problem_at_its_value() {
        let dir = workspace("");
        let file = dir.path().join("tenants.txt");
        let field = "jobs[0].tenants_file";
        let text = with_job("tenants_file = \"tenants.txt\"");
        let at = place(&text, "\"tenants.txt\"");
        let problems = |list: &str| {
            std::fs::write(&file, list).unwrap();
            check_in(dir.path(), &text).unwrap_err()
        };

        // Lists no tenant: empty, or only comments and blank lines.
        only_problem(&problems(""), field, at, "lists no tenant");
        only_problem(
            &problems("# none yet\n\n   \n"),
            field,
            at,
            "lists no tenant",
        );

        // A bad line: FILE:LINE:COL, the column at the name.
        let p = only_problem(
            &problems("a.example\n\n   bad/name   # oops\n"),
            field,
            at,
            "is not a tenant id or domain name",
        );
        let prefix = format!("{}:3:4: 'bad/name'", file.display());
        assert!(p.message.starts_with(&prefix), "{p}");
        let p = only_problem(&problems("common\n"), field, at, "not a tenant id");
        assert!(
            p.message.starts_with(&format!("{}:1:1:", file.display())),
            "{p}"
        );
        let p = only_problem(&problems("two names\n"), field, at, "one tenant per line");
        assert!(
            p.message.starts_with(&format!("{}:1:1:", file.display())),
            "{p}"
        );

        // A duplicate, compared without case.
        let p = only_problem(
            &problems("contoso.example\nfabrikam.example\n  CONTOSO.Example\n"),
            field,
            at,
            "is listed twice",
        );
        let expected = format!("{}:3:3: 'CONTOSO.Example' is listed twice", file.display());
        assert_eq!(p.message, expected);

        // Every bad line is its own problem, all at the value.
        let p = problems("a.example\n..\nA.EXAMPLE\n");
        assert_eq!(p.len(), 2, "{p:#?}");
        assert!(p.iter().all(|p| p.field == field && p.location == Some(at)));
        assert!(
            p[0].message
                .starts_with(&format!("{}:2:1:", file.display()))
        );
        assert!(
            p[1].message
                .starts_with(&format!("{}:3:1:", file.display()))
        );

        // A missing file, a directory.
        let text = with_job("tenants_file = \"missing.txt\"");
        only_problem(
            &check_in(dir.path(), &text).unwrap_err(),
            field,
            place(&text, "\"missing.txt\""),
            "cannot read",
        );
        let text = with_job("tenants_file = \"data\"");
        only_problem(
            &check_in(dir.path(), &text).unwrap_err(),
            field,
            place(&text, "\"data\""),
            "is not a regular file",
        );
        // A ${VAR} that is not set.
        let text = with_job("tenants_file = \"${NOPE}/tenants.txt\"");
        only_problem(
            &check_in(dir.path(), &text).unwrap_err(),
            field,
            place(&text, "\"${NOPE}"),
            "${NOPE}, which is not set",
        );
    }

    #[test]
    fn tenants_and_a_tenants_file_together_are_a_problem() {
        let dir = workspace("b.example\n");
        let text = with_job("tenants = [\"a.example\"]\ntenants_file = \"tenants.txt\"");
        only_problem(
            &check_in(dir.path(), &text).unwrap_err(),
            "jobs[0].tenants_file",
            place(&text, "\"tenants.txt\""),
            "give either tenants or tenants_file, not both",
        );
    }

    #[test]
    fn inline_tenants_are_checked_each_at_its_place() {
        let dir = workspace("");
        let c = check_in(
            dir.path(),
            &with_job("tenants = [\"b.example\", \" a.example \", \"7c1e3a52-9c4b-4d8e-a0f1-3b2d5e6f7a81\"]"),
        )
        .unwrap();
        assert_eq!(
            c.jobs[0].tenants,
            [
                "b.example",
                "a.example",
                "7c1e3a52-9c4b-4d8e-a0f1-3b2d5e6f7a81"
            ]
        );
        assert_eq!(c.jobs[0].tenants_file, None);

        let text =
            with_job("tenants = [\"contoso.example\", \"fabrikam.example\", \"Contoso.EXAMPLE\"]");
        only_problem(
            &check_in(dir.path(), &text).unwrap_err(),
            "jobs[0].tenants",
            place(&text, "\"Contoso.EXAMPLE\""),
            "'Contoso.EXAMPLE' is listed twice",
        );

        for bad in [
            "common",
            "organizations",
            "consumers",
            "Common",
            "..",
            "a/b",
            ".a.example",
            "-a.example",
        ] {
            let text = with_job(&format!("tenants = [\"ok.example\", \"{bad}\"]"));
            only_problem(
                &check_in(dir.path(), &text).unwrap_err(),
                "jobs[0].tenants",
                place(&text, &format!("\"{bad}\"")),
                &format!("'{bad}' is not a tenant id or domain name"),
            );
        }
    }
}
