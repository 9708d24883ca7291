//! Job outputs as JSON Lines. A file output is written to a temporary file
//! in the same directory and renamed into place (after fsync) when the run
//! completes, so readers never see half a run and a crash leaves the
//! previous output intact.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde_json::Value;

use crate::config::OutputConfig;

/// One run's output.
#[derive(Debug)]
pub(crate) enum Output {
    Stdout,
    File {
        target: PathBuf,
        temp: PathBuf,
        writer: Mutex<Option<BufWriter<File>>>,
    },
}

fn temp_prefix(target: &Path) -> String {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!(".{name}.tmp-")
}

impl Output {
    pub(crate) fn open(config: &OutputConfig) -> std::io::Result<Output> {
        match config {
            OutputConfig::Stdout => Ok(Output::Stdout),
            OutputConfig::File(target) => {
                let dir = target.parent().unwrap_or(Path::new("."));
                let prefix = temp_prefix(target);
                // Left-overs of a run that was killed.
                if let Ok(entries) = std::fs::read_dir(dir) {
                    for e in entries.flatten() {
                        let n = e.file_name();
                        let n = n.to_string_lossy();
                        let stale_pid = n
                            .strip_prefix(&prefix)
                            .and_then(|r| r.split('-').next())
                            .and_then(|p| p.parse::<u32>().ok())
                            .is_some_and(|p| p != std::process::id());
                        if stale_pid {
                            let _ = std::fs::remove_file(e.path());
                        }
                    }
                }
                let temp = dir.join(format!(
                    "{prefix}{}-{}",
                    std::process::id(),
                    uuid::Uuid::new_v4().simple()
                ));
                let mut opts = std::fs::OpenOptions::new();
                opts.write(true).create_new(true);
                #[cfg(unix)]
                {
                    use std::os::unix::fs::OpenOptionsExt;
                    opts.mode(0o640);
                }
                let file = opts.open(&temp)?;
                Ok(Output::File {
                    target: target.clone(),
                    temp,
                    writer: Mutex::new(Some(BufWriter::new(file))),
                })
            }
        }
    }

    /// Appends lines (one JSON value each).
    pub(crate) fn write_lines(&self, lines: &[Value]) -> std::io::Result<()> {
        let mut buf = Vec::new();
        for l in lines {
            serde_json::to_writer(&mut buf, l).map_err(std::io::Error::other)?;
            buf.push(b'\n');
        }
        match self {
            Output::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(&buf)?;
                out.flush()
            }
            Output::File { writer, .. } => {
                let mut w = writer.lock().unwrap_or_else(|p| p.into_inner());
                match w.as_mut() {
                    Some(w) => w.write_all(&buf),
                    None => Err(std::io::Error::other("the output is closed")),
                }
            }
        }
    }

    /// The run completed: flush, fsync, rename into place, fsync the directory.
    pub(crate) fn commit(self) -> std::io::Result<Option<PathBuf>> {
        match &self {
            Output::Stdout => Ok(None),
            Output::File {
                target,
                temp,
                writer,
            } => {
                let w = writer.lock().unwrap_or_else(|p| p.into_inner()).take();
                if let Some(w) = w {
                    let file = w.into_inner().map_err(|e| e.into_error())?;
                    file.sync_all()?;
                }
                std::fs::rename(temp, target)?;
                if let Some(dir) = target.parent()
                    && let Ok(d) = File::open(if dir.as_os_str().is_empty() {
                        Path::new(".")
                    } else {
                        dir
                    })
                {
                    let _ = d.sync_all();
                }
                Ok(Some(target.clone()))
            }
        }
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        // Not committed (the run failed or was cancelled): the previous output stays.
        if let Output::File { temp, .. } = self
            && temp.exists()
        {
            let _ = std::fs::remove_file(temp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_output_replaces_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.jsonl");
        std::fs::write(&target, "old\n").unwrap();
        let o = Output::open(&OutputConfig::File(target.clone())).unwrap();
        o.write_lines(&[serde_json::json!({"a": 1})]).unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "old\n");
        drop(o);
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "old\n");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "the temp file is gone"
        );
        let o = Output::open(&OutputConfig::File(target.clone())).unwrap();
        o.write_lines(&[serde_json::json!({"a": 2}), serde_json::json!({"a": 3})])
            .unwrap();
        o.commit().unwrap();
        assert_eq!(
            std::fs::read_to_string(&target).unwrap(),
            "{\"a\":2}\n{\"a\":3}\n"
        );
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
