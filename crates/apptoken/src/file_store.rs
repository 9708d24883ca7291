//! A persistent token store in one file, for a single machine: a restarted
//! daemon does not fetch all its tokens again. Compiled with the
//! `file-store` feature only.

use std::collections::HashMap;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine;

use crate::error::{ConfigError, ConfigErrorKind, FileProblem, Result, StoreError, StoreErrorKind};
use crate::store::{StoreFuture, TokenStore};

/// A [`TokenStore`] kept in a JSON file (values are sealed by the client,
/// so the file holds no token in clear). Every write replaces the file
/// atomically (temporary file, fsync, rename) with mode 0600; a file that
/// does not parse is moved aside (`<name>.corrupt-<unix time>`) with a warning and
/// the store starts empty. Leases are local: one process owns the file.
///
/// Available with the `file-store` feature.
pub struct FileStore {
    path: PathBuf,
    entries: Mutex<HashMap<String, FileEntry>>,
}

#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct FileEntry {
    value: String,
    expires: i64,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct FileFormat {
    version: u32,
    entries: HashMap<String, FileEntry>,
}

impl fmt::Debug for FileStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn now_unix() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// `<name>.corrupt-<unix time>` next to `path` (`-2`, `-3`… when one of
/// that second is already there): nothing moved aside earlier is replaced.
fn aside_name(path: &std::path::Path) -> PathBuf {
    let base = format!(
        "{}.corrupt-{}",
        path.file_name().unwrap_or_default().to_string_lossy(),
        now_unix()
    );
    let mut aside = path.with_file_name(&base);
    let mut n = 2;
    while aside.exists() && n < 1000 {
        aside = path.with_file_name(format!("{base}-{n}"));
        n += 1;
    }
    aside
}

impl FileStore {
    /// Opens (or creates on first write) the store at `path`.
    pub fn open(path: impl Into<PathBuf>) -> Result<FileStore> {
        let path = path.into();
        let entries = match std::fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice::<FileFormat>(&bytes) {
                Ok(f) if f.version == 1 => f.entries,
                _ => {
                    let aside = aside_name(&path);
                    tracing::warn!(
                        path = %path.display(),
                        moved_to = %aside.display(),
                        "the token cache file does not parse; moved aside, starting with an empty cache"
                    );
                    std::fs::rename(&path, &aside).map_err(|e| {
                        cache_file(
                            FileProblem::Unwritable,
                            &path,
                            format!(
                                "cannot move the corrupt cache file '{}' aside",
                                path.display()
                            ),
                        )
                        .with_source(e)
                    })?;
                    HashMap::new()
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => HashMap::new(),
            Err(e) => {
                return Err(cache_file(
                    FileProblem::Unreadable,
                    &path,
                    format!("cannot read the token cache file '{}'", path.display()),
                )
                .with_source(e)
                .into());
            }
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
            && !dir.is_dir()
        {
            return Err(cache_file(
                FileProblem::Unwritable,
                &path,
                format!(
                    "the directory of the token cache file '{}' does not exist",
                    path.display()
                ),
            )
            .into());
        }
        Ok(FileStore {
            path,
            entries: Mutex::new(entries),
        })
    }

    /// Where the file is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn persist(&self, entries: &HashMap<String, FileEntry>) -> Result<()> {
        let now = now_unix();
        let live: HashMap<String, FileEntry> = entries
            .iter()
            .filter(|(_, e)| e.expires > now)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let body = serde_json::to_vec(&FileFormat {
            version: 1,
            entries: live,
        })
        .map_err(|e| {
            StoreError::new(StoreErrorKind::Failed, "cannot encode the cache file").with_source(e)
        })?;
        let dir = self
            .path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let tmp = dir.join(format!(
            ".{}.tmp-{}",
            self.path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("cache"),
            std::process::id()
        ));
        let write = || -> std::io::Result<()> {
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create(true).truncate(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
            let mut f = opts.open(&tmp)?;
            f.write_all(&body)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)?;
            if let Ok(d) = std::fs::File::open(dir) {
                let _ = d.sync_all();
            }
            Ok(())
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            StoreError::new(
                StoreErrorKind::Failed,
                format!(
                    "cannot write the token cache file '{}'",
                    self.path.display()
                ),
            )
            .with_path(&self.path)
            .with_source(e)
            .into()
        })
    }
}

impl TokenStore for FileStore {
    fn get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Vec<u8>>> {
        Box::pin(async move {
            let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
            Ok(entries
                .get(key)
                .filter(|e| e.expires > now_unix())
                .and_then(|e| {
                    base64::engine::general_purpose::STANDARD
                        .decode(&e.value)
                        .ok()
                }))
        })
    }

    fn put<'a>(&'a self, key: &'a str, value: &'a [u8], ttl: Duration) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
            entries.insert(
                key.to_string(),
                FileEntry {
                    value: base64::engine::general_purpose::STANDARD.encode(value),
                    expires: now_unix()
                        .saturating_add(i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX)),
                },
            );
            self.persist(&entries)
        })
    }

    fn try_lease<'a>(&'a self, _: &'a str, _: &'a str, _: Duration) -> StoreFuture<'a, bool> {
        Box::pin(async { Ok(true) })
    }

    fn release_lease<'a>(&'a self, _: &'a str, _: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(async { Ok(()) })
    }

    fn renew_lease<'a>(&'a self, _: &'a str, _: &'a str, _: Duration) -> StoreFuture<'a, bool> {
        Box::pin(async { Ok(true) })
    }
}

/// The cache file's detail, as a configuration error (the file is named by it).
fn cache_file(problem: FileProblem, path: &Path, message: String) -> ConfigError {
    ConfigError::new(ConfigErrorKind::File(problem), message).with_path(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn survives_reopening_and_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.json");
        let s = FileStore::open(&path).unwrap();
        s.put("k", b"sealed", Duration::from_secs(3600))
            .await
            .unwrap();
        s.put("gone", b"x", Duration::from_secs(0)).await.unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        let again = FileStore::open(&path).unwrap();
        assert_eq!(
            again.get("k").await.unwrap().as_deref(),
            Some(&b"sealed"[..])
        );
        assert_eq!(again.get("gone").await.unwrap(), None);
        // no temporary file left behind
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[tokio::test]
    async fn a_truncated_file_is_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.json");
        let s = FileStore::open(&path).unwrap();
        s.put("k", b"sealed", Duration::from_secs(3600))
            .await
            .unwrap();
        let full = std::fs::read(&path).unwrap();
        std::fs::write(&path, &full[..full.len() / 2]).unwrap();
        let s = FileStore::open(&path).unwrap();
        assert_eq!(s.get("k").await.unwrap(), None);
        let names = || -> Vec<String> {
            std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        };
        let names_now = names();
        assert!(
            names_now
                .iter()
                .any(|n| n.starts_with("cache.json.corrupt-")),
            "{names_now:?}"
        );
        // A second corrupt file in the same second does not replace the first.
        std::fs::write(&path, b"{").unwrap();
        FileStore::open(&path).unwrap();
        std::fs::write(&path, b"[").unwrap();
        FileStore::open(&path).unwrap();
        let aside = names().iter().filter(|n| n.contains(".corrupt-")).count();
        assert_eq!(aside, 3);
        s.put("k2", b"v", Duration::from_secs(60)).await.unwrap();
        assert!(FileStore::open(&path).is_ok());
        assert!(FileStore::open(dir.path().join("missing-dir/cache.json")).is_err());
    }
}
