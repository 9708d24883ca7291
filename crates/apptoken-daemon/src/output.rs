//! Job outputs as JSON Lines. A file output is written to a temporary file
//! in the same directory and renamed into place (after fsync) when the run
//! completes, so readers never see half a run and a crash leaves the
//! previous output intact.
//!
//! Per tenant: a `{tenant}` output is one such file per tenant, committed
//! when that tenant succeeded. One file for many tenants is assembled at the
//! end of the run ([`assemble`]): each tenant that succeeded from its own
//! temporary part, each tenant that failed or was skipped from its lines in
//! the previous file, in the configured tenant order. Standard output with
//! tenants holds each tenant's lines in memory and prints them when that
//! tenant succeeded.
//!
//! Temporary files are named `.NAME.tmp-PID-INSTANCE-RANDOM`: `INSTANCE` is
//! a random nonce drawn once per process start. A temporary file of an
//! output that this process instance did not create is an orphan (a run
//! killed with `kill -9`) and is removed — at start, before any job runs,
//! and again whenever a run opens the output. The PID alone cannot tell:
//! in a container the daemon is PID 1 at every start.
//!
//! Why over 500 lines: about 400 are code (the three sinks share the
//! temporary-file and orphan rules), the rest its unit tests.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use serde_json::Value;

use crate::config::OutputConfig;

/// One run's output.
#[derive(Debug)]
pub(crate) enum Output {
    Stdout,
    /// Standard output, printed at commit (one tenant's lines).
    Buffered(Mutex<Vec<u8>>),
    File {
        target: PathBuf,
        temp: PathBuf,
        writer: Mutex<Option<File>>,
    },
}

fn temp_prefix(target: &Path) -> String {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!(".{name}.tmp-")
}

/// `PID-INSTANCE`: this process instance, as it appears in its temporary
/// files' names.
fn this_instance() -> &'static str {
    static INSTANCE: OnceLock<String> = OnceLock::new();
    INSTANCE.get_or_init(|| format!("{}-{}", std::process::id(), uuid::Uuid::new_v4().simple()))
}

/// Removes the temporary files of `target` that this process instance did
/// not create (left by a run that was killed); returns how many.
pub(crate) fn remove_orphans(target: &Path) -> usize {
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let prefix = temp_prefix(target);
    let mine = format!("{prefix}{}-", this_instance());
    let mut removed = 0;
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let n = e.file_name();
            let n = n.to_string_lossy();
            if n.starts_with(&prefix)
                && !n.starts_with(&mine)
                && std::fs::remove_file(e.path()).is_ok()
            {
                removed += 1;
            }
        }
    }
    removed
}

/// Removes the temporary files of every tenant's file of a `{tenant}`
/// output that this process instance did not create; returns how many.
/// One directory scan for all tenants.
pub(crate) fn remove_template_orphans(template: &Path) -> usize {
    let dir = match template.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = template
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let Some((pre, post)) = name.split_once(crate::config::TENANT_PLACEHOLDER) else {
        return remove_orphans(template);
    };
    let start = format!(".{pre}");
    let middle = format!("{post}.tmp-");
    let mine = format!(".tmp-{}-", this_instance());
    let mut removed = 0;
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let n = e.file_name();
            let n = n.to_string_lossy();
            let Some(rest) = n.strip_prefix(&start) else {
                continue;
            };
            let Some(i) = rest.find(&middle) else {
                continue;
            };
            if i > 0
                && !rest[i + post.len()..].starts_with(&mine)
                && std::fs::remove_file(e.path()).is_ok()
            {
                removed += 1;
            }
        }
    }
    removed
}

/// At start, before any job runs: the orphaned temporary files of every
/// file output and status file of `config`.
pub(crate) fn remove_all_orphans(config: &crate::DaemonConfig) {
    for job in &config.jobs {
        let mut n = match &job.output {
            OutputConfig::File(target) => remove_orphans(target),
            OutputConfig::PerTenant(template) => remove_template_orphans(template),
            OutputConfig::Stdout => 0,
        };
        if let Some(status) = &job.status_file {
            n += remove_orphans(status);
        }
        if n > 0 {
            tracing::info!(job = %job.name, removed = n, "removed the temporary files of an earlier run that did not finish (killed)");
        }
    }
}

impl Output {
    pub(crate) fn open(config: &OutputConfig) -> std::io::Result<Output> {
        match config {
            OutputConfig::Stdout => Ok(Output::Stdout),
            OutputConfig::File(target) => {
                // Left-overs of a run that was killed.
                remove_orphans(target);
                Output::temp_for(target)
            }
            OutputConfig::PerTenant(_) => Err(std::io::Error::other(
                "a {tenant} output is opened per tenant",
            )),
        }
    }

    /// Standard output, printed when committed.
    pub(crate) fn buffered() -> Output {
        Output::Buffered(Mutex::new(Vec::new()))
    }

    /// A new temporary file for `target` (no orphan scan: the caller did
    /// it once for the run).
    pub(crate) fn temp_for(target: &Path) -> std::io::Result<Output> {
        let dir = target.parent().unwrap_or(Path::new("."));
        let temp = dir.join(format!(
            "{}{}-{}",
            temp_prefix(target),
            this_instance(),
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
            target: target.to_path_buf(),
            temp,
            writer: Mutex::new(Some(file)),
        })
    }

    /// Appends lines (one JSON value each): one page, written to the
    /// temporary file at once (a reader of the directory sees the run's
    /// progress; nothing is renamed before the run completes).
    pub(crate) fn write_lines(&self, lines: &[Value]) -> std::io::Result<()> {
        let mut buf = Vec::new();
        for l in lines {
            serde_json::to_writer(&mut buf, l).map_err(std::io::Error::other)?;
            buf.push(b'\n');
        }
        self.write_bytes(&buf)
    }

    /// Appends raw bytes.
    pub(crate) fn write_bytes(&self, buf: &[u8]) -> std::io::Result<()> {
        match self {
            Output::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(buf)?;
                out.flush()
            }
            Output::Buffered(b) => {
                b.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .extend_from_slice(buf);
                Ok(())
            }
            Output::File { writer, .. } => {
                let mut w = writer.lock().unwrap_or_else(|p| p.into_inner());
                match w.as_mut() {
                    Some(w) => w.write_all(buf),
                    None => Err(std::io::Error::other("the output is closed")),
                }
            }
        }
    }

    /// The run completed: flush, fsync, rename into place, fsync the directory.
    pub(crate) fn commit(self) -> std::io::Result<Option<PathBuf>> {
        match &self {
            Output::Stdout => Ok(None),
            Output::Buffered(b) => {
                let buf = std::mem::take(&mut *b.lock().unwrap_or_else(|p| p.into_inner()));
                let mut out = std::io::stdout().lock();
                out.write_all(&buf)?;
                out.flush()?;
                Ok(None)
            }
            Output::File {
                target,
                temp,
                writer,
            } => {
                let w = writer.lock().unwrap_or_else(|p| p.into_inner()).take();
                if let Some(file) = w {
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

/// One tenant's lines in a temporary file, for [`assemble`]; removed when
/// dropped.
#[derive(Debug)]
pub(crate) struct Part(PathBuf);

impl Output {
    /// Closes a temporary file written for one tenant of a shared output.
    pub(crate) fn into_part(mut self) -> std::io::Result<Part> {
        match &mut self {
            Output::File { temp, writer, .. } => {
                let w = writer.get_mut().unwrap_or_else(|p| p.into_inner()).take();
                if let Some(mut f) = w {
                    f.flush()?;
                }
                // The part owns the file now: the output's drop leaves it.
                Ok(Part(std::mem::take(temp)))
            }
            _ => Err(std::io::Error::other("only a file output has parts")),
        }
    }
}

impl Drop for Part {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// One tenant's place in an assembled output.
#[derive(Debug)]
pub(crate) enum Piece<'a> {
    /// The tenant succeeded: its new lines.
    Fresh(&'a Part),
    /// The tenant failed or was skipped: its lines of the previous file.
    Keep(&'a str),
}

/// The line of a previous output, as far as assembling cares.
#[derive(serde::Deserialize)]
struct TenantOf<'a> {
    #[serde(borrow)]
    tenant: Option<std::borrow::Cow<'a, str>>,
}

/// Builds the next version of a shared output `target` from `pieces`, in
/// their order; returns it uncommitted (the caller commits, after
/// fencing), and the tenants whose previous lines it kept. The previous
/// file is read once, line by line; a line that is not JSON or has no
/// tenant is not kept.
pub(crate) fn assemble(
    target: &Path,
    pieces: &[Piece<'_>],
) -> std::io::Result<(Output, std::collections::HashSet<String>)> {
    use std::collections::HashMap;
    use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
    let keep: std::collections::HashSet<&str> = pieces
        .iter()
        .filter_map(|p| match p {
            Piece::Keep(t) => Some(*t),
            Piece::Fresh(_) => None,
        })
        .collect();
    // Where each kept tenant's lines are in the previous file.
    let mut ranges: HashMap<String, Vec<(u64, u64)>> = HashMap::new();
    let previous = match File::open(target) {
        Ok(f) if !keep.is_empty() => Some(f),
        _ => None,
    };
    if let Some(f) = &previous {
        let mut r = BufReader::new(f);
        let mut line = Vec::new();
        let mut at = 0u64;
        loop {
            line.clear();
            let n = r.read_until(b'\n', &mut line)?;
            if n == 0 {
                break;
            }
            if let Ok(TenantOf { tenant: Some(t) }) = serde_json::from_slice::<TenantOf<'_>>(&line)
                && keep.contains(t.as_ref())
            {
                ranges
                    .entry(t.into_owned())
                    .or_default()
                    .push((at, n as u64));
            }
            at = at.saturating_add(n as u64);
        }
    }
    let out = Output::temp_for(target)?;
    {
        let Output::File { writer, .. } = &out else {
            return Err(std::io::Error::other("not a file output"));
        };
        let mut guard = writer.lock().unwrap_or_else(|p| p.into_inner());
        let Some(file) = guard.as_mut() else {
            return Err(std::io::Error::other("the output is closed"));
        };
        let mut w = std::io::BufWriter::new(file);
        let mut prev = previous.as_ref().map(BufReader::new);
        for piece in pieces {
            match piece {
                Piece::Fresh(part) => {
                    let mut f = File::open(&part.0)?;
                    std::io::copy(&mut f, &mut w)?;
                }
                Piece::Keep(t) => {
                    let (Some(r), Some(list)) = (prev.as_mut(), ranges.get(*t)) else {
                        continue;
                    };
                    for &(start, len) in list {
                        r.seek(SeekFrom::Start(start))?;
                        let mut buf = Vec::new();
                        r.by_ref().take(len).read_to_end(&mut buf)?;
                        if buf.last() != Some(&b'\n') {
                            buf.push(b'\n');
                        }
                        w.write_all(&buf)?;
                    }
                }
            }
        }
        w.flush()?;
    }
    Ok((out, ranges.into_keys().collect()))
}

/// Writes `value` (pretty JSON) to `path` atomically: a temporary file in
/// the same directory, fsynced and renamed into place.
pub(crate) fn write_json_atomically(path: &Path, value: &Value) -> std::io::Result<()> {
    let out = Output::temp_for(path)?;
    let mut bytes = serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?;
    bytes.push(b'\n');
    out.write_bytes(&bytes)?;
    out.commit().map(|_| ())
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

    /// A temporary file with this process's own PID, as a killed earlier
    /// process with the same PID left it (PID 1 in a container): the old
    /// naming (`PID-RANDOM`) and the current one (`PID-INSTANCE-RANDOM`,
    /// another instance). Both are orphans: removed at start, before any
    /// job runs; a file of this instance (a run in progress) stays.
    #[test]
    fn a_temp_file_with_this_processs_pid_is_removed_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.jsonl");
        std::fs::write(&target, "previous\n").unwrap();
        let pid = std::process::id();
        let old_style = dir.path().join(format!(
            ".out.jsonl.tmp-{pid}-{}",
            uuid::Uuid::new_v4().simple()
        ));
        let other_instance = dir.path().join(format!(
            ".out.jsonl.tmp-{pid}-{}-{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        ));
        let other_output = dir.path().join(format!(".other.jsonl.tmp-{pid}-x"));
        for f in [&old_style, &other_instance, &other_output] {
            std::fs::write(f, "{\"half\":\"a run\"}\n").unwrap();
        }
        // A run of this instance, in progress.
        let running = Output::open(&OutputConfig::File(target.clone())).unwrap();
        let Output::File { temp: live, .. } = &running else {
            unreachable!()
        };
        let live = live.clone();
        assert!(!old_style.exists() && !other_instance.exists());
        for f in [&old_style, &other_instance] {
            std::fs::write(f, "{\"half\":\"a run\"}\n").unwrap();
        }

        // Start: a daemon whose job writes out.jsonl, never run here.
        let cfg = dir.path().join("daemon.toml");
        let secret = dir.path().join("secret");
        std::fs::write(&secret, "s").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        std::fs::write(
            &cfg,
            "[identity]\nauthority_host = \"http://127.0.0.1:9\"\ntenant_id = \"t.example\"\nclient_id = \"c\"\nclient_secret_file = \"secret\"\n\n[apis.a]\nbase_url = \"http://127.0.0.1:9/v1\"\nscopes = [\"api://a/.default\"]\n\n[[jobs]]\nname = \"j\"\napi = \"a\"\npath = \"x\"\nevery = \"1d\"\noutput = { type = \"file\", path = \"out.jsonl\" }\n",
        )
        .unwrap();
        let config = crate::DaemonConfig::load(&cfg, &|_| None).unwrap_or_else(|e| panic!("{e}"));
        let _daemon = crate::Daemon::new(config, crate::Options::default()).unwrap();
        assert!(
            !old_style.exists(),
            "an old-style orphan with our PID stays"
        );
        assert!(
            !other_instance.exists(),
            "an orphan with our PID from another instance stays"
        );
        assert!(
            live.exists(),
            "this instance's run in progress keeps its file"
        );
        assert!(
            other_output.exists(),
            "another output's files are not touched"
        );
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "previous\n");
        drop(running);
        assert!(!live.exists());
    }
}
