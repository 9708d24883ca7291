//! Helpers of the configuration's unit tests: check a text as if read
//! from a file (`check`, `check_in` with `${DATA}`), a small good file
//! (`GOOD`, `with_job`), places in a text, and a temporary workspace.
//!
//! Invariant: the environment the helpers give holds `AZURE_CLIENT_SECRET`
//! (and `DATA`), nothing else, so the tests do not depend on the caller's.

use std::path::Path;

use super::*;

pub(super) fn check(text: &str) -> Result<DaemonConfig, Vec<Problem>> {
    let dir = std::env::temp_dir();
    DaemonConfig::from_toml_str(text, &dir.join("daemon.toml"), &|k| match k {
        "AZURE_CLIENT_SECRET" => Some("s".into()),
        _ => None,
    })
    .map_err(|e| match e {
        Error::Config(p) => p,
        other => panic!("{other}"),
    })
}

pub(super) const GOOD: &str = r#"
[identity]
authority_host = "http://127.0.0.1:9"
tenant_id = "contoso.example"
client_id = "cid"

[apis.sample]
base_url = "http://127.0.0.1:9/v1.0"
scopes = ["api://sample/.default"]
headers = { ConsistencyLevel = "eventual" }

[[jobs]]
name = "users"
api = "sample"
path = "users?$top=5"
every = "15m"
tenants = ["a.example", "b.example"]
"#;
// ---- Job options of issue #17: tenants, tenants_file, {tenant}
// outputs, status_file, tenant backoffs. ----

/// A configuration with one job (`users`) of no tenants, `extra` lines
/// appended to it (more `[[jobs]]` may follow in `extra`).
pub(super) fn with_job(extra: &str) -> String {
    format!(
        "[identity]\nauthority_host = \"http://127.0.0.1:9\"\ntenant_id = \"contoso.example\"\nclient_id = \"cid\"\n\n\
             [apis.sample]\nbase_url = \"http://127.0.0.1:9/v1.0\"\nscopes = [\"api://sample/.default\"]\n\n\
             [[jobs]]\nname = \"users\"\napi = \"sample\"\npath = \"users\"\nevery = \"15m\"\n{extra}\n"
    )
}

/// Checks `text` as if read from `dir/daemon.toml`; `${DATA}` is `dir/data`.
pub(super) fn check_in(dir: &Path, text: &str) -> Result<DaemonConfig, Vec<Problem>> {
    let data = dir.join("data").display().to_string();
    DaemonConfig::from_toml_str(text, &dir.join("daemon.toml"), &|k| match k {
        "AZURE_CLIENT_SECRET" => Some("s".into()),
        "DATA" => Some(data.clone()),
        _ => None,
    })
    .map_err(|e| match e {
        Error::Config(p) => p,
        other => panic!("{other}"),
    })
}

/// The 1-based line and column of byte `i` of `text`.
pub(super) fn line_col(text: &str, i: usize) -> (usize, usize) {
    let before = &text[..i];
    let line = before.matches('\n').count() + 1;
    (line, i - before.rfind('\n').map_or(0, |n| n + 1) + 1)
}

/// Where `needle` first occurs in `text` (line, column).
pub(super) fn place(text: &str, needle: &str) -> (usize, usize) {
    let i = text.find(needle);
    line_col(
        text,
        i.unwrap_or_else(|| panic!("{needle:?} not in {text}")),
    )
}

/// Where `needle` last occurs in `text` (line, column).
pub(super) fn place_last(text: &str, needle: &str) -> (usize, usize) {
    let i = text.rfind(needle);
    line_col(
        text,
        i.unwrap_or_else(|| panic!("{needle:?} not in {text}")),
    )
}

/// The one problem `problems` holds: its field, its place and a part of
/// its message.
#[track_caller]
pub(super) fn only_problem(
    problems: &[Problem],
    field: &str,
    at: (usize, usize),
    fragment: &str,
) -> Problem {
    assert_eq!(problems.len(), 1, "{problems:#?}");
    let p = &problems[0];
    assert_eq!(p.field, field, "{p}");
    assert_eq!(p.location, Some(at), "{p}");
    assert!(p.message.contains(fragment), "{fragment:?} not in {p}");
    p.clone()
}

/// A temporary directory holding `data/` (outputs) and `tenants.txt`.
pub(super) fn workspace(tenants: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    std::fs::write(dir.path().join("tenants.txt"), tenants).unwrap();
    dir
}
