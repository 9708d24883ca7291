//! Azure Arc's challenge: the agent answers a first request with 401 and
//! `WWW-Authenticate: Basic realm=<path of a key file>`; the client reads
//! that file and repeats the request with `Authorization: Basic <contents>`.
//!
//! The path comes from whoever answers on the agent's port, so it is
//! checked before anything is opened, as MSAL checks it: directly in the
//! agent's fixed token directory (no `..`, no link), a name ending in
//! `.key`, a regular file of at most 4,096 bytes. Only then is it read
//! (bounded again, in case it grew).

use std::io::Read;
use std::path::{Component, Path, PathBuf};

use secrecy::SecretString;

use crate::error::{Error, Result};

/// The largest key file the agent writes (MSAL's bound).
pub(crate) const MAX_KEY_FILE: u64 = 4096;

/// The key file a challenge names, checked against `dir` and read.
pub(crate) fn read_challenge_key(
    challenge: Option<&str>,
    dir: &Path,
    url: &str,
    status: u16,
) -> Result<SecretString> {
    let bad = |message: String| Error::InvalidResponse {
        url: url.to_string(),
        status,
        message: format!("Azure Arc: {message}"),
    };
    let challenge = challenge
        .ok_or_else(|| bad("the agent answered 401 without a WWW-Authenticate challenge".into()))?;
    let path = realm_path(challenge).ok_or_else(|| {
        bad("the agent's WWW-Authenticate challenge names no key file (Basic realm=<path>)".into())
    })?;
    check_path(&path, dir).map_err(|why| {
        bad(format!(
            "the agent named key file '{}', which {why}; it was not opened",
            path.display()
        ))
    })?;
    let meta = std::fs::symlink_metadata(&path)
        .map_err(|e| bad(format!("cannot read key file '{}': {e}", path.display())))?;
    if !meta.file_type().is_file() {
        return Err(bad(format!(
            "key file '{}' is not a regular file; it was not opened",
            path.display()
        )));
    }
    if meta.len() > MAX_KEY_FILE {
        return Err(bad(format!(
            "key file '{}' is larger than {MAX_KEY_FILE} bytes; it was not read",
            path.display()
        )));
    }
    let mut text = String::new();
    std::fs::File::open(&path)
        .and_then(|f| f.take(MAX_KEY_FILE + 1).read_to_string(&mut text))
        .map_err(|e| bad(format!("cannot read key file '{}': {e}", path.display())))?;
    if text.len() as u64 > MAX_KEY_FILE {
        return Err(bad(format!(
            "key file '{}' is larger than {MAX_KEY_FILE} bytes",
            path.display()
        )));
    }
    let key = text.trim();
    if key.is_empty() {
        return Err(bad(format!("key file '{}' is empty", path.display())));
    }
    Ok(SecretString::from(key.to_string()))
}

/// The path of `Basic realm=<path>` (quoted or not).
fn realm_path(challenge: &str) -> Option<PathBuf> {
    let rest = challenge.trim();
    let rest = rest
        .get(..5)
        .filter(|s| s.eq_ignore_ascii_case("basic"))
        .map(|_| rest[5..].trim_start())?;
    let value = rest
        .get(..6)
        .filter(|s| s.eq_ignore_ascii_case("realm="))
        .map(|_| &rest[6..])?;
    let value = value.trim();
    let value = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value);
    (!value.is_empty()).then(|| PathBuf::from(value))
}

/// Why `path` is not a key file in `dir`, if it is not.
fn check_path(path: &Path, dir: &Path) -> std::result::Result<(), &'static str> {
    if !path.is_absolute() {
        return Err("is not an absolute path");
    }
    if path
        .components()
        .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
    {
        return Err("has '.' or '..' in it");
    }
    if path.parent() != Some(dir) {
        return Err("is not in the agent's token directory");
    }
    match path.extension() {
        Some(e) if e == "key" => {}
        _ => return Err("does not end in '.key'"),
    }
    let dir_meta =
        std::fs::symlink_metadata(dir).map_err(|_| "is in a directory that cannot be read")?;
    if !dir_meta.file_type().is_dir() {
        return Err("is in a token directory that is a link or not a directory");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn read(challenge: &str, dir: &Path) -> Result<SecretString> {
        read_challenge_key(Some(challenge), dir, "http://127.0.0.1:1/arc", 401)
    }

    #[test]
    fn reads_a_key_file_in_the_token_directory() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("abc.key");
        std::fs::write(&key, "the-key\n").unwrap();
        for challenge in [
            format!("Basic realm={}", key.display()),
            format!("basic realm=\"{}\"", key.display()),
        ] {
            assert_eq!(
                read(&challenge, dir.path()).unwrap().expose_secret(),
                "the-key"
            );
        }
    }

    #[test]
    fn refuses_paths_outside_the_directory_and_big_or_odd_files_without_reading_them() {
        let dir = tempfile::tempdir().unwrap();
        let other = tempfile::tempdir().unwrap();
        let outside = other.path().join("x.key");
        std::fs::write(&outside, "k").unwrap();
        let big = dir.path().join("big.key");
        std::fs::write(&big, vec![b'a'; 4097]).unwrap();
        let not_key = dir.path().join("x.txt");
        std::fs::write(&not_key, "k").unwrap();
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        std::fs::write(sub.join("y.key"), "k").unwrap();
        let fifo_like = dir.path().join("d.key");
        std::fs::create_dir(&fifo_like).unwrap();
        let cases: Vec<(String, &str)> = vec![
            (
                format!("Basic realm={}", outside.display()),
                "not in the agent's token directory",
            ),
            (
                format!(
                    "Basic realm={}/../{}/x.key",
                    dir.path().display(),
                    other.path().display()
                ),
                "'..'",
            ),
            (format!("Basic realm={}", big.display()), "larger than 4096"),
            (format!("Basic realm={}", not_key.display()), "'.key'"),
            (
                format!("Basic realm={}", sub.join("y.key").display()),
                "not in the agent's token directory",
            ),
            (
                format!("Basic realm={}", fifo_like.display()),
                "not a regular file",
            ),
            ("Basic realm=relative.key".into(), "absolute"),
            ("Bearer realm=/x.key".into(), "names no key file"),
            ("Basic".into(), "names no key file"),
        ];
        for (challenge, want) in cases {
            let e = read(&challenge, dir.path()).unwrap_err().to_string();
            assert!(e.contains(want), "{challenge}: {e}");
        }
        #[cfg(unix)]
        {
            let link = dir.path().join("link.key");
            std::os::unix::fs::symlink(&outside, &link).unwrap();
            let e = read(&format!("Basic realm={}", link.display()), dir.path()).unwrap_err();
            assert!(e.to_string().contains("not a regular file"), "{e}");
        }
        let e = read_challenge_key(None, dir.path(), "u", 401).unwrap_err();
        assert!(e.to_string().contains("without a WWW-Authenticate"), "{e}");
    }

    proptest::proptest! {
        #[test]
        fn never_panics(challenge in "\\PC{0,80}") {
            let _ = realm_path(&challenge);
            let _ = read_challenge_key(Some(&challenge), Path::new("/nonexistent-apptoken-dir"), "u", 401);
        }
    }
}
