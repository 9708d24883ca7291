//! Tenant names and the tenant list file (`tenants_file`): what a valid
//! tenant is (a GUID or a domain name, never `common`/`organizations`/
//! `consumers`, never something that could walk a path), and the file's
//! format: one tenant per line, `#` starts a comment (a whole line, or after
//! the name), blank lines ignored, each tenant at most once (compared
//! without case). Parsing is pure; reading is bounded (a regular file of at
//! most [`MAX_FILE_BYTES`], at most [`MAX_TENANTS`] tenants).

use std::collections::HashSet;
use std::io::Read;
use std::path::Path;

use crate::error::Error;

/// The largest tenant list file read.
pub(crate) const MAX_FILE_BYTES: u64 = 8 * 1024 * 1024;
/// The most tenants one job may have.
pub(crate) const MAX_TENANTS: usize = 100_000;

/// Checks one tenant name: a GUID or a domain name (letters, digits, `-`,
/// `.`; starting and ending with a letter or digit; at most 253
/// characters). `common`, `organizations` and `consumers` name no one
/// directory and are refused. The name goes into file names
/// (`{tenant}` outputs), so nothing else is allowed.
pub(crate) fn check_tenant(v: &str) -> Result<&str, String> {
    let ok_edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    let bad = v.is_empty()
        || v.len() > 253
        || !ok_edge(v.chars().next())
        || !ok_edge(v.chars().last())
        || v.contains("..")
        || v.chars()
            .any(|c| !(c.is_ascii_alphanumeric() || c == '-' || c == '.'))
        || matches!(
            v.to_ascii_lowercase().as_str(),
            "common" | "organizations" | "consumers"
        );
    if bad {
        Err(format!(
            "'{v}' is not a tenant id or domain name (a GUID, or a domain such as contoso.onmicrosoft.com)"
        ))
    } else {
        Ok(v)
    }
}

/// A problem on one line of a tenant list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LineProblem {
    /// 1-based.
    pub(crate) line: usize,
    /// 1-based, in characters.
    pub(crate) column: usize,
    pub(crate) message: String,
}

/// Parses a tenant list: the tenants in file order, and every problem.
pub(crate) fn parse(text: &str) -> (Vec<String>, Vec<LineProblem>) {
    let mut tenants = Vec::new();
    let mut problems = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let content = raw.split('#').next().unwrap_or("");
        let name = content.trim();
        if name.is_empty() {
            continue;
        }
        let column = content.chars().take_while(|c| c.is_whitespace()).count() + 1;
        if name.split_whitespace().nth(1).is_some() {
            problems.push(LineProblem {
                line,
                column,
                message: format!("'{name}': one tenant per line (put a comment after '#')"),
            });
            continue;
        }
        if let Err(m) = check_tenant(name) {
            problems.push(LineProblem {
                line,
                column,
                message: m,
            });
            continue;
        }
        if !seen.insert(name.to_ascii_lowercase()) {
            problems.push(LineProblem {
                line,
                column,
                message: format!("'{name}' is listed twice"),
            });
            continue;
        }
        if tenants.len() == MAX_TENANTS {
            problems.push(LineProblem {
                line,
                column,
                message: format!("more than {MAX_TENANTS} tenants; split the job"),
            });
            break;
        }
        tenants.push(name.to_string());
    }
    (tenants, problems)
}

/// Reads a tenant list file: a regular file, UTF-8, at most
/// [`MAX_FILE_BYTES`] (a FIFO or `/dev/zero` is refused, never read
/// forever).
pub(crate) fn read(path: &Path) -> Result<String, String> {
    let meta =
        std::fs::metadata(path).map_err(|e| format!("cannot read '{}': {e}", path.display()))?;
    if !meta.is_file() {
        return Err(format!("'{}' is not a regular file", path.display()));
    }
    let file =
        std::fs::File::open(path).map_err(|e| format!("cannot read '{}': {e}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read '{}': {e}", path.display()))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(format!(
            "'{}' is larger than {} MiB",
            path.display(),
            MAX_FILE_BYTES / 1024 / 1024
        ));
    }
    String::from_utf8(bytes).map_err(|_| format!("'{}' is not UTF-8 text", path.display()))
}

/// Reads and parses a tenant list file; problems say `file:line:column`.
pub(crate) fn load(path: &Path) -> Result<Vec<String>, Vec<String>> {
    let text = read(path).map_err(|m| vec![m])?;
    let (tenants, problems) = parse(&text);
    if problems.is_empty() {
        Ok(tenants)
    } else {
        Err(problems
            .into_iter()
            .map(|p| format!("{}:{}:{}: {}", path.display(), p.line, p.column, p.message))
            .collect())
    }
}

/// What [`add_tenants`] or [`remove_tenants`] changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TenantListChange {
    /// Tenants added or removed, as given.
    pub changed: Vec<String>,
    /// Tenants that were already listed (add) or not listed (remove).
    pub unchanged: Vec<String>,
    /// Tenants in the file now.
    pub total: usize,
}

/// Adds `tenants` to a tenant list's text (at the end, one per line);
/// each is checked, and one already listed (without case) is left alone.
pub(crate) fn add_to(text: &str, tenants: &[String]) -> Result<(String, TenantListChange), String> {
    let (mut listed, problems) = parse(text);
    if let Some(p) = problems.first() {
        return Err(format!("line {}:{}: {}", p.line, p.column, p.message));
    }
    let mut out = text.to_string();
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    let mut change = TenantListChange::default();
    for t in tenants {
        let t = check_tenant(t.trim())?;
        if listed.iter().any(|l| l.eq_ignore_ascii_case(t)) {
            change.unchanged.push(t.to_string());
            continue;
        }
        if listed.len() >= MAX_TENANTS {
            return Err(format!("more than {MAX_TENANTS} tenants; split the job"));
        }
        out.push_str(t);
        out.push('\n');
        listed.push(t.to_string());
        change.changed.push(t.to_string());
    }
    change.total = listed.len();
    Ok((out, change))
}

/// Removes `tenants` from a tenant list's text: their lines go (a comment
/// on the same line too); every other line, comments included, stays.
pub(crate) fn remove_from(
    text: &str,
    tenants: &[String],
) -> Result<(String, TenantListChange), String> {
    let (listed, problems) = parse(text);
    if let Some(p) = problems.first() {
        return Err(format!("line {}:{}: {}", p.line, p.column, p.message));
    }
    let wanted: Vec<String> = tenants
        .iter()
        .map(|t| t.trim().to_ascii_lowercase())
        .collect();
    let mut out = String::with_capacity(text.len());
    let mut change = TenantListChange::default();
    for line in text.split_inclusive('\n') {
        let name = line.split('#').next().unwrap_or("").trim();
        if !name.is_empty() && wanted.contains(&name.to_ascii_lowercase()) {
            change.changed.push(name.to_string());
            continue;
        }
        out.push_str(line);
    }
    for (t, w) in tenants.iter().zip(&wanted) {
        if !change.changed.iter().any(|c| c.to_ascii_lowercase() == *w) {
            change.unchanged.push(t.trim().to_string());
        }
    }
    change.total = listed.len() - change.changed.len();
    if change.total == 0 {
        return Err("that would leave no tenant in the list; remove the job instead".into());
    }
    Ok((out, change))
}

/// Adds tenants to the tenant list file `path` (created when missing), each
/// checked; one already listed is left alone. The file is replaced
/// atomically (its mode kept) and only when something changed; a running
/// daemon picks the new list up at its next poll.
pub fn add_tenants(path: &Path, tenants: &[String]) -> Result<TenantListChange, Error> {
    let text = match read(path) {
        Ok(t) => t,
        Err(_) if !path.exists() => String::new(),
        Err(m) => return Err(list_error(path, m)),
    };
    let (new, change) = add_to(&text, tenants).map_err(|m| list_error(path, m))?;
    if !change.changed.is_empty() {
        replace(path, new.as_bytes())?;
    }
    Ok(change)
}

/// Removes tenants from the tenant list file `path` (their lines; other
/// lines and comments stay). Refuses to leave the list empty. Replaced
/// atomically, only when something changed.
pub fn remove_tenants(path: &Path, tenants: &[String]) -> Result<TenantListChange, Error> {
    let text = read(path).map_err(|m| list_error(path, m))?;
    let (new, change) = remove_from(&text, tenants).map_err(|m| list_error(path, m))?;
    if !change.changed.is_empty() {
        replace(path, new.as_bytes())?;
    }
    Ok(change)
}

fn list_error(path: &Path, message: String) -> Error {
    Error::TenantList {
        path: path.to_path_buf(),
        message,
    }
}

/// Writes `bytes` over `path` atomically, keeping the file's permissions.
fn replace(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let io = |e: std::io::Error| list_error(path, format!("cannot write it: {e}"));
    let out = crate::output::Output::temp_for(path).map_err(io)?;
    out.write_bytes(bytes).map_err(io)?;
    if let (Ok(meta), crate::output::Output::File { temp, .. }) = (std::fs::metadata(path), &out) {
        std::fs::set_permissions(temp, meta.permissions()).map_err(io)?;
    }
    out.commit().map_err(io)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn comments_blank_lines_and_problems_with_their_places() {
        let text = "# customers\n\ncontoso.example\n  fabrikam.example   # since 2026\n\
                    bad/name\nCONTOSO.example\ncommon\ntwo names\n7c1e3a52-9c4b-4d8e-a0f1-3b2d5e6f7a81\n";
        let (tenants, problems) = parse(text);
        assert_eq!(
            tenants,
            [
                "contoso.example",
                "fabrikam.example",
                "7c1e3a52-9c4b-4d8e-a0f1-3b2d5e6f7a81"
            ]
        );
        let at: Vec<(usize, usize)> = problems.iter().map(|p| (p.line, p.column)).collect();
        assert_eq!(at, [(5, 1), (6, 1), (7, 1), (8, 1)], "{problems:?}");
        assert!(problems[1].message.contains("listed twice"));
        assert!(problems[3].message.contains("one tenant per line"));
        let (_, p) = parse("   ..\n");
        assert_eq!((p[0].line, p[0].column), (1, 4));
    }

    #[test]
    fn names_that_could_walk_a_path_or_name_no_directory_are_refused() {
        for bad in [
            "",
            ".",
            "..",
            "a..b",
            ".a",
            "a.",
            "-a",
            "a/b",
            "a\\b",
            "organizations",
            "Common",
            "consumers",
            "a b",
            "ä.example",
        ] {
            assert!(check_tenant(bad).is_err(), "{bad:?}");
        }
        for good in ["contoso.onmicrosoft.com", "a", "x-1.example", "0000-aa"] {
            assert!(check_tenant(good).is_ok(), "{good:?}");
        }
        assert!(check_tenant(&"a".repeat(254)).is_err());
    }

    #[test]
    fn a_fifo_or_a_huge_file_is_refused_not_read_forever() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read(dir.path()).unwrap_err().contains("not a regular file"));
        let big = dir.path().join("big");
        let f = std::fs::File::create(&big).unwrap();
        f.set_len(MAX_FILE_BYTES + 1).unwrap();
        assert!(read(&big).unwrap_err().contains("larger than"));
        let ok = dir.path().join("ok");
        std::fs::write(&ok, "a.example\nb.example\n").unwrap();
        assert_eq!(load(&ok).unwrap(), ["a.example", "b.example"]);
        std::fs::write(&ok, "a.example\na.example\n").unwrap();
        let e = load(&ok).unwrap_err();
        assert!(e[0].ends_with(":2:1: 'a.example' is listed twice"), "{e:?}");
    }

    #[test]
    fn adding_and_removing_keeps_comments_and_refuses_bad_names() {
        let text = "# customers\ncontoso.example  # 2025\n\nfabrikam.example\n";
        let (t, c) = add_to(text, &["new.example".into(), "CONTOSO.example".into()]).unwrap();
        assert_eq!(t, format!("{text}new.example\n"));
        assert_eq!(c.changed, ["new.example"]);
        assert_eq!(c.unchanged, ["CONTOSO.example"]);
        assert_eq!(c.total, 3);
        assert!(
            add_to(text, &["a/b".into()])
                .unwrap_err()
                .contains("not a tenant id")
        );
        assert_eq!(
            add_to("x.example", &["y.example".into()]).unwrap().0,
            "x.example\ny.example\n"
        );
        let (t, c) = remove_from(
            &format!("{text}new.example\n"),
            &["Contoso.Example".into(), "gone.example".into()],
        )
        .unwrap();
        assert_eq!(t, "# customers\n\nfabrikam.example\nnew.example\n");
        assert_eq!(c.changed, ["contoso.example"]);
        assert_eq!(c.unchanged, ["gone.example"]);
        assert_eq!(c.total, 2);
        assert!(
            remove_from("a.example\n", &["a.example".into()])
                .unwrap_err()
                .contains("no tenant")
        );
        assert!(
            remove_from("a.example\nbad/x\n", &["a.example".into()])
                .unwrap_err()
                .starts_with("line 2:1:")
        );
    }

    #[test]
    fn the_file_is_replaced_atomically_with_its_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.txt");
        let c = add_tenants(&path, &["a.example".into()]).unwrap();
        assert_eq!((c.changed.len(), c.total), (1, 1));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
            add_tenants(&path, &["b.example".into()]).unwrap();
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        assert_eq!(load(&path).unwrap(), ["a.example", "b.example"]);
        remove_tenants(&path, &["a.example".into()]).unwrap();
        assert_eq!(load(&path).unwrap(), ["b.example"]);
        let files = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(files, 1, "no temporary file is left");
        assert!(matches!(
            remove_tenants(&dir.path().join("none"), &["b.example".into()]),
            Err(Error::TenantList { .. })
        ));
    }

    proptest! {
        /// Any text: no panic; every tenant returned passes the name check,
        /// none twice, each problem on a line that exists.
        #[test]
        fn any_text_parses_without_panic(text in "(?s).{0,400}") {
            let (tenants, problems) = parse(&text);
            let mut seen = HashSet::new();
            for t in &tenants {
                prop_assert!(check_tenant(t).is_ok());
                prop_assert!(seen.insert(t.to_ascii_lowercase()));
            }
            let lines = text.lines().count();
            for p in &problems {
                prop_assert!(p.line >= 1 && p.line <= lines);
            }
        }

        /// A list written one per line reads back as itself.
        #[test]
        fn a_written_list_reads_back(names in proptest::collection::btree_set("[a-z0-9]{1,8}(\\.[a-z0-9]{1,8}){0,2}", 0..50)) {
            let names: Vec<String> = names.into_iter().filter(|n| check_tenant(n).is_ok()).collect();
            let text: String = names.iter().map(|n| format!("{n}  # c\n")).collect();
            let (tenants, problems) = parse(&text);
            prop_assert!(problems.is_empty());
            prop_assert_eq!(tenants, names);
        }
    }
}
