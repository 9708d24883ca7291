//! Fleet tests of `apptoken run`: three daemons sharing one `redis-server`
//! (started here on a unix socket in a temporary directory) and one
//! emulator run each tick once; `kill -9` of the instance running a tick
//! hands it to another; a `[cache] file` survives restarts. Waits poll for
//! a condition (bounded). Job leases expire in real time (that is what a
//! kill -9 hand-over is), so their lifetime leaves the test seconds of
//! slack; store operations are patient (only a Redis that is gone fails
//! them), and a tick on two instances is accepted only where the daemon
//! logged the documented reason (the store did not answer).

#[path = "../../apptoken-redis/tests/common/mod.rs"]
mod redis_server;
use redis_server::Redis;

mod support;
use support::*;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;

impl Emulator {
    /// Writes a daemon configuration with a `[cache]` table.
    fn config(&self, path: &Path, cache: &str, daemon: &str, jobs: &str) {
        std::fs::write(path, self.daemon_toml(cache, daemon, jobs)).unwrap();
    }
}

/// The ticks an output file holds now.
fn ticks(path: &Path) -> BTreeSet<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["tick"].as_str().map(str::to_string))
        .collect()
}

/// Log text without terminal colour codes.
fn strip_ansi(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

struct Instance {
    child: ChildGuard,
    output: PathBuf,
    log: PathBuf,
}

/// Three daemons with the same configuration (but their own output file).
fn three_daemons(emu: &Emulator, redis: &Redis, dir: &Path) -> Vec<Instance> {
    write_private(
        &dir.join("cache.key"),
        b"c2VjcmV0LWZsZWV0LWtleS0zMi1ieXRlcy1sb25nISE=",
    );
    (0..3)
        .map(|i| {
            let d = dir.join(format!("i{i}"));
            std::fs::create_dir(&d).unwrap();
            let cfg = d.join("daemon.toml");
            emu.config(
                &cfg,
                &format!(
                    "redis = \"{}\"\nkey_file = \"{}\"\ntimeout = \"30s\"",
                    redis.url(),
                    dir.join("cache.key").display()
                ),
                // The waiters follow a tick until tick + every + 2 leases: a
                // kill -9 within 8 s of the tick is handed over.
                "job_lease = \"6s\"",
                "[[jobs]]\nname = \"users\"\napi = \"sample\"\npath = \"users?$top=3\"\npaging = false\nevery = \"2s\"\noutput = { type = \"file\", path = \"users.jsonl\" }\n",
            );
            let log = d.join("stderr.log");
            let child = apptoken()
                .args(["run", "--config"])
                .arg(&cfg)
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .unwrap();
            Instance {
                child: ChildGuard(Some(child)),
                output: d.join("users.jsonl"),
                log,
            }
        })
        .collect()
}

/// Why a tick may run on several instances (docs/DAEMON.md): the store did
/// not answer at the tick, or at the fencing renewal before the commit.
fn store_failed(log: &str) -> bool {
    log.contains("the shared store does not answer")
        || log.contains("cannot renew a job lease before committing")
}

/// Each tick ran on one instance, or on several of which one logged that
/// the store did not answer.
fn once_each(instances: &[Instance], seen: &BTreeMap<String, BTreeSet<usize>>) {
    for (tick, who) in seen {
        if who.len() > 1 {
            let logs: Vec<String> = who
                .iter()
                .map(|&i| std::fs::read_to_string(&instances[i].log).unwrap_or_default())
                .collect();
            assert!(
                logs.iter().any(|l| store_failed(l)),
                "tick {tick} ran on instances {who:?}, and the store answered:\n{}",
                logs.join("\n---\n")
            );
        }
    }
}

/// Records which instance ran which tick, polling the outputs.
fn observe(instances: &[Instance], seen: &mut BTreeMap<String, BTreeSet<usize>>) {
    for (i, inst) in instances.iter().enumerate() {
        if inst.child.0.is_none() {
            continue;
        }
        for t in ticks(&inst.output) {
            seen.entry(t).or_default().insert(i);
        }
    }
}

#[cfg(unix)]
#[test]
fn three_daemons_run_each_tick_once_and_kill_9_hands_a_tick_over() {
    let redis = Redis::start();
    let emu = start_emulator(None);
    let dir = tempfile::tempdir().unwrap();
    let mut instances = three_daemons(&emu, &redis, dir.path());

    // Each tick on exactly one instance.
    let mut seen: BTreeMap<String, BTreeSet<usize>> = BTreeMap::new();
    until("five ticks", || {
        observe(&instances, &mut seen);
        seen.len() >= 5
    });
    once_each(&instances, &seen);

    // A long tick (its request held ten minutes): its holder is killed;
    // another instance runs it.
    emu.add_fault(r#"{"target":"api","delay_ms":600000,"times":1}"#);
    until("the slow request", || emu.faults_pending() == 0);
    // The holder: the one instance with a run it has not finished (another
    // may be finishing an earlier tick for a moment: wait until it has).
    let unfinished = || -> Vec<usize> {
        (0..instances.len())
            .filter(|&i| {
                let log = std::fs::read_to_string(&instances[i].log).unwrap_or_default();
                let taken = log.matches("holds the fleet lease").count();
                let done = log.matches("job run completed").count()
                    + log.matches("job run failed").count();
                taken > done
            })
            .collect()
    };
    until("one instance running the slow tick", || {
        unfinished().len() == 1
    });
    let holder = unfinished()[0];
    let log = strip_ansi(&std::fs::read_to_string(&instances[holder].log).unwrap());
    let slow_tick = log
        .lines()
        .rev()
        .find(|l| l.contains("holds the fleet lease"))
        .and_then(|l| l.split("tick=").nth(1))
        .and_then(|t| t.split_whitespace().next())
        .unwrap()
        .to_string();
    let before_kill = ticks(&instances[holder].output);
    assert!(!before_kill.contains(&slow_tick));
    let mut child = instances[holder].child.0.take().unwrap();
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    until("the slow tick on another instance", || {
        observe(&instances, &mut seen);
        seen.contains_key(&slow_tick)
    });
    assert!(!seen[&slow_tick].contains(&holder));
    // And the fleet goes on: later ticks, still once each.
    let later = seen.len() + 2;
    until("two more ticks", || {
        observe(&instances, &mut seen);
        seen.len() >= later
    });
    once_each(&instances, &seen);
    drop(instances.drain(..));
}

#[cfg(unix)]
#[test]
fn a_cache_file_spares_token_requests_after_a_restart_and_survives_truncation() {
    let emu = start_emulator(None);
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("daemon.toml");
    emu.config(
        &cfg,
        "file = \"cache.json\"",
        "",
        "[[jobs]]\nname = \"users\"\napi = \"sample\"\npath = \"users?$top=3\"\nevery = \"1h\"\noutput = { type = \"file\", path = \"users.jsonl\" }\n",
    );
    let once = || {
        let out = apptoken()
            .args(["run", "--once", "--config"])
            .arg(&cfg)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let check = apptoken()
        .args(["config", "check"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    once();
    let first = emu.token_requests();
    assert_eq!(first, 1);
    let cache = dir.path().join("cache.json");
    assert!(cache.exists() && dir.path().join("cache.json.key").exists());
    once();
    assert_eq!(
        emu.token_requests(),
        first,
        "the token came from the cache file"
    );

    // A truncated file is moved aside; the daemon starts and fetches again.
    let bytes = std::fs::read(&cache).unwrap();
    std::fs::write(&cache, &bytes[..bytes.len() / 2]).unwrap();
    once();
    assert_eq!(emu.token_requests(), first + 1);
    let aside = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .any(|e| e.file_name().to_string_lossy().contains("corrupt"));
    assert!(aside, "the truncated file was moved aside");
}

#[test]
fn config_check_reports_cache_problems_with_line_and_field() {
    let emu = start_emulator(None);
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("daemon.toml");
    let open_key = dir.path().join("open.key");
    std::fs::write(&open_key, b"c2VjcmV0LWZsZWV0LWtleS0zMi1ieXRlcy1sb25nISE=").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&open_key, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    emu.config(
        &cfg,
        &format!(
            "redis = \"http://user:hunter2@example.invalid\"\nkey_file = \"{}\"",
            open_key.display()
        ),
        "job_lease = \"0s\"",
        "",
    );
    let out = apptoken()
        .args(["config", "check"])
        .arg(&cfg)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(3), "{text}");
    assert!(
        text.contains(":12:") && text.contains("cache.redis"),
        "{text}"
    );
    assert!(text.contains("cache.key_file"), "{text}");
    assert!(text.contains("daemon.job_lease"), "{text}");
    assert!(
        !text.contains("hunter2"),
        "the password is never shown: {text}"
    );
}
