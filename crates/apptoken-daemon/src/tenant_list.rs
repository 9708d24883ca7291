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
