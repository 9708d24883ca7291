//! End-to-end tests of `apptoken run`, `config check` and `cert`: the
//! emulator as a child process, signals, kill -9, logs, certificates.
//! Everything on 127.0.0.1, ephemeral ports. Waits poll for a condition
//! (bounded); no test depends on how long something takes.
//!
//! Over 500 lines: one test binary around one child-process harness (start,
//! wait for a condition, signal, read logs) shared by every test.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

mod support;
use support::*;

const SLOW_JOB: &str = "[[jobs]]\nname = \"users\"\napi = \"sample\"\npath = \"users?$top=10\"\nevery = \"1h\"\nrun_at_start = true\noutput = { type = \"file\", path = \"users.jsonl\" }\n";

#[cfg(unix)]
fn signal(child: &Child, sig: &str) {
    let st = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(st.success());
}

/// `apptoken run --config cfg`, its standard error piped.
fn run_daemon(cfg: &std::path::Path) -> ChildGuard {
    let child = apptoken()
        .args(["run", "--config"])
        .arg(cfg)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    ChildGuard(Some(child))
}

/// `apptoken run --config cfg`, its standard error written to `log`.
fn run_daemon_logged(cfg: &Path, log: &Path) -> ChildGuard {
    let child = apptoken()
        .args(["run", "--config"])
        .arg(cfg)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    ChildGuard(Some(child))
}

/// The temporary files of `users.jsonl` in `dir`.
fn temp_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(".users.jsonl.tmp-")
        })
        .map(|e| e.path())
        .collect();
    v.sort();
    v
}

/// SIGTERM while a page is being fetched: the run finishes within the
/// grace period, is committed, and the exit status is 0. The API is the
/// test's own and answers the second page only once the daemon has logged
/// that it is stopping, so the signal certainly comes during the run.
#[cfg(unix)]
#[test]
fn sigterm_during_a_long_job_finishes_it_and_exits_0() {
    let emu = start_emulator(None);
    let api = GatedApi::start(3, &[1]);
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("daemon.toml");
    let jobs = "[[jobs]]\nname = \"users\"\napi = \"sample\"\npath = \"users\"\nevery = \"1h\"\nrun_at_start = true\noutput = { type = \"file\", path = \"users.jsonl\" }\n";
    std::fs::write(
        &cfg,
        emu.daemon_toml("", "grace_period = \"2m\"", jobs)
            .replace(&emu.s("sample_api"), &api.base),
    )
    .unwrap();
    let log = dir.path().join("stderr.log");
    let mut guard = run_daemon_logged(&cfg, &log);
    assert_eq!(api.next_request(), "/v1.0/users");
    assert_eq!(api.next_request(), "/v1.0/users?page=1", "held");
    signal(guard.0.as_ref().unwrap(), "TERM");
    until_logged(&log, "stop signal");
    assert!(!dir.path().join("users.jsonl").exists());
    api.release();
    let status = guard.0.take().unwrap().wait().unwrap();
    let err = read_lossy(&log);
    assert_eq!(status.code(), Some(0), "{err}");
    let lines = std::fs::read_to_string(dir.path().join("users.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), 30, "the whole run is in the output");
    let stop = err.find("stop signal").unwrap();
    let done = err.find("job run completed").expect("the run completed");
    assert!(stop < done, "the run completed after the signal: {err}");
    assert!(temp_files(dir.path()).is_empty());
}

/// kill -9 in the middle of a run, with page 1 already in the temporary
/// file: the previous output stays byte for byte, and the next start
/// removes the orphan — also when the new process has the PID the orphan
/// is named with (PID 1 at every start in a container).
#[cfg(unix)]
#[test]
fn kill_9_during_a_run_leaves_the_previous_output() {
    let emu = start_emulator(None);
    let dir = tempfile::tempdir().unwrap();
    let cfg = emu.daemon_config(dir.path(), SLOW_JOB, "");
    let out_file = dir.path().join("users.jsonl");
    let previous = b"{\"previous\":true}\n\xff not even UTF-8, kept as is\n".to_vec();
    std::fs::write(&out_file, &previous).unwrap();
    // Page 2 of 5 (the second API request) is held for ten minutes: the
    // run cannot finish before the kill.
    emu.add_fault(r#"{"target":"api","delay_ms":600000,"share":0.5,"times":1}"#);
    let mut guard = run_daemon_logged(&cfg, &dir.path().join("stderr.log"));
    let page_1_written = || {
        let t = temp_files(dir.path());
        t.len() == 1 && read_lossy(&t[0]).lines().count() == 10
    };
    until("page 1 in the temporary file, page 2 held", || {
        page_1_written() && emu.faults_pending() == 0
    });
    let mut c = guard.0.take().unwrap();
    let pid = c.id();
    c.kill().unwrap(); // SIGKILL
    c.wait().unwrap();
    assert_eq!(std::fs::read(&out_file).unwrap(), previous, "byte for byte");
    let orphan = temp_files(dir.path())
        .pop()
        .expect("the killed run's temporary file");
    let name = orphan.file_name().unwrap().to_string_lossy().into_owned();
    let prefix = format!(".users.jsonl.tmp-{pid}-");
    let rest = name
        .strip_prefix(&prefix)
        .expect("named with its PID")
        .to_string();

    // The next start: `sh` puts the orphan's contents under a name with its
    // own PID, then execs the daemon, which keeps that PID.
    let pid_file = dir.path().join("pid");
    let script = r#"cp "$1" "$2/.users.jsonl.tmp-$$-$3" && echo $$ > "$4" && exec "$5" run --once --config "$6""#;
    let run = clean_command("sh")
        .arg("-c")
        .arg(script)
        .arg("sh")
        .arg(&orphan)
        .arg(dir.path())
        .arg(&rest)
        .arg(&pid_file)
        .arg(BIN)
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let new_pid = run.id();
    let out = run.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        std::fs::read_to_string(&pid_file).unwrap().trim(),
        new_pid.to_string(),
        "the daemon ran with the PID of the orphan's copy"
    );
    assert_eq!(
        temp_files(dir.path()),
        Vec::<PathBuf>::new(),
        "both orphans removed (the killed PID's and this process's own)"
    );
    let lines = std::fs::read_to_string(&out_file).unwrap();
    assert_eq!(lines.lines().count(), 42, "the new run replaced the output");
}

/// Credential rotation without restart: the secret file changes, the
/// daemon notices (its log), the old secret expires at the identity
/// provider, and the next token request authenticates with the new one.
#[cfg(unix)]
#[test]
fn a_rotated_secret_is_used_from_the_next_token_request_without_a_restart() {
    const CLIENT: &str = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee";
    const TENANT: &str = "11111111-2222-4333-8444-555555555555";
    const OLD: &str = "old-secret-value-0001";
    const NEW: &str = "new-secret-value-0002";
    let dir = tempfile::tempdir().unwrap();
    // Both secrets are registered; the old one expires in an hour of the
    // emulator's clock, which the test moves.
    let expires = (time::OffsetDateTime::now_utc() + time::Duration::hours(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let emu_cfg = dir.path().join("emulator.toml");
    std::fs::write(
        &emu_cfg,
        format!(
            r#"
[[tenants]]
id = "{TENANT}"
domains = ["tailspin.example"]
display_name = "Tailspin"

[[resources]]
app_id = "66666666-7777-4888-9999-000000000000"
app_id_uri = "api://sample"
roles = [{{ value = "Users.Read.All" }}]

[[apps]]
client_id = "{CLIENT}"
display_name = "rotating daemon"
home_tenant = "tailspin.example"
  [[apps.secrets]]
  value = "{OLD}"
  expires_at = "{expires}"
  [[apps.secrets]]
  value = "{NEW}"

[[grants]]
tenant = "tailspin.example"
client_id = "{CLIENT}"
resource = "api://sample"
roles = ["Users.Read.All"]

[[users]]
tenant = "tailspin.example"
display_name = "Adele Vance"
given_name = "Adele"
surname = "Vance"
user_principal_name = "adele.vance@tailspin.example"

[sample_api]
resource = "api://sample"
required_role = "Users.Read.All"
"#
        ),
    )
    .unwrap();
    let emu = start_emulator(Some(&emu_cfg));
    let secret = dir.path().join("client-secret");
    write_private(&secret, OLD.as_bytes());
    let cfg = dir.path().join("daemon.toml");
    std::fs::write(
        &cfg,
        format!(
            "[identity]\nauthority_host = \"{}\"\ntenant_id = \"{TENANT}\"\nclient_id = \"{CLIENT}\"\nclient_secret_file = \"client-secret\"\n\n[apis.sample]\nbase_url = \"{}\"\nscopes = [\"api://sample/.default\"]\n\n[daemon]\ncredential_poll = \"1s\"\n\n[[jobs]]\nname = \"users\"\napi = \"sample\"\npath = \"users\"\nevery = \"1s\"\nrun_at_start = true\noutput = {{ type = \"file\", path = \"users.jsonl\" }}\n",
            emu.s("authority_host"),
            emu.s("sample_api"),
        ),
    )
    .unwrap();
    let stats = || body(&http(&emu.addr, "GET", "/_emulator/stats", ""));
    let outcomes = || -> Vec<(String, u64)> {
        stats()["token_requests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["outcome"].as_str().unwrap().to_string(),
                    c["count"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    let log = dir.path().join("stderr.log");
    let mut guard = run_daemon_logged(&cfg, &log);
    let out = dir.path().join("users.jsonl");
    until("the first run", || out.exists());
    assert_eq!(
        outcomes(),
        [("success".to_string(), 1)],
        "one token, old secret"
    );

    // Rotation: the new secret replaces the file's content (atomically, as
    // a deployment tool would); the daemon logs that it noticed.
    let staged = dir.path().join(".client-secret.new");
    write_private(&staged, NEW.as_bytes());
    std::fs::rename(&staged, &secret).unwrap();
    until_logged(&log, "a credential file changed");
    // Two hours later at the identity provider: the old secret has expired,
    // and so has the daemon's cached token (the API answers 401), so the
    // next run makes a token request.
    let r = http(
        &emu.addr,
        "POST",
        "/_emulator/clock",
        r#"{"advance_secs":7200}"#,
    );
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    until("the next token request", || {
        outcomes().iter().map(|(_, n)| n).sum::<u64>() >= 2
    });
    assert_eq!(
        outcomes(),
        [("success".to_string(), 2)],
        "the token request after the rotation authenticated with the new secret"
    );
    // And the runs go on with the new token.
    std::fs::remove_file(&out).unwrap();
    until("a run after the rotation", || out.exists());
    assert_eq!(outcomes(), [("success".to_string(), 2)]);

    // The identity provider now refuses the old secret, accepts the new one.
    let token = |secret: &str| {
        http_with(
            &emu.addr,
            "POST",
            &format!("/{TENANT}/oauth2/v2.0/token"),
            "application/x-www-form-urlencoded",
            &format!(
                "grant_type=client_credentials&client_id={CLIENT}&client_secret={secret}&scope=api%3A%2F%2Fsample%2F.default"
            ),
        )
    };
    let old = token(OLD);
    assert!(
        old.starts_with("HTTP/1.1 401") && old.contains("7000222"),
        "{old}"
    );
    assert!(token(NEW).starts_with("HTTP/1.1 200"));
    assert!(
        !read_lossy(&log).contains(NEW),
        "the secret is never logged"
    );
    signal(guard.0.as_ref().unwrap(), "TERM");
    let status = guard.0.take().unwrap().wait().unwrap();
    assert_eq!(status.code(), Some(0), "{}", read_lossy(&log));
}

/// SIGHUP re-reads the configuration: a good one takes effect (a job added
/// by it runs), a broken one is refused with its problem logged while the
/// daemon keeps running on the current one; SIGTERM still stops it cleanly.
#[cfg(unix)]
#[test]
fn sighup_reloads_a_good_configuration_and_keeps_the_current_one_on_a_bad_one() {
    use std::io::BufRead;
    use std::sync::{Arc, Mutex};

    let emu = start_emulator(None);
    let dir = tempfile::tempdir().unwrap();
    let job = |name: &str, every: &str, start: bool| {
        format!(
            "[[jobs]]\nname = \"{name}\"\napi = \"sample\"\npath = \"users?$top=2\"\nevery = \"{every}\"\nrun_at_start = {start}\noutput = {{ type = \"file\", path = \"{name}.jsonl\" }}\n"
        )
    };
    let daemon = "listen = \"127.0.0.1:0\"";
    let cfg = emu.daemon_config(dir.path(), &job("first", "1h", true), daemon);
    let mut guard = run_daemon(&cfg);
    let logs = Arc::new(Mutex::new(String::new()));
    let stderr = guard.0.as_mut().unwrap().stderr.take().unwrap();
    let reader = {
        let logs = Arc::clone(&logs);
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                let mut l = logs.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        })
    };
    // The first run has happened: the signal handlers are installed.
    until("the first job's output", || {
        dir.path().join("first.jsonl").exists()
    });
    let addr = {
        let l = logs.lock().unwrap();
        let at = l
            .find("on http://")
            .expect("the listener's address is logged")
            + 10;
        l[at..].split_whitespace().next().unwrap().to_string()
    };
    let reloads = |outcome: &str| {
        let m = http(&addr, "GET", "/metrics", "");
        let want = format!("apptoken_daemon_config_reloads_total{{outcome=\"{outcome}\"}} ");
        m.lines()
            .find_map(|l| l.strip_prefix(want.as_str()))
            .map_or(0, |v| v.trim().parse::<u64>().unwrap())
    };

    // A good configuration: a second job, every second.
    let two = format!("{}{}", job("first", "1h", true), job("second", "1s", false));
    std::fs::write(&cfg, emu.daemon_toml("", daemon, &two)).unwrap();
    signal(guard.0.as_ref().unwrap(), "HUP");
    until("the reload", || reloads("success") == 1);
    until("the job the reload added", || {
        dir.path().join("second.jsonl").exists()
    });

    // A broken one: refused, logged with where the problem is, not used.
    std::fs::write(
        &cfg,
        emu.daemon_toml("", daemon, &job("third", "0s", false)),
    )
    .unwrap();
    signal(guard.0.as_ref().unwrap(), "HUP");
    until("the refused reload", || reloads("failure") == 1);
    assert_eq!(reloads("success"), 1);
    assert!(http(&addr, "GET", "/healthz", "").starts_with("HTTP/1.1 200"));
    {
        let l = logs.lock().unwrap();
        assert!(l.contains("the current one stays"), "{l}");
        assert!(l.contains("every"), "the problem names the field: {l}");
    }
    // Still running on the second configuration: the second job goes on.
    std::fs::remove_file(dir.path().join("second.jsonl")).unwrap();
    until("the second job, still scheduled", || {
        dir.path().join("second.jsonl").exists()
    });
    assert!(!dir.path().join("third.jsonl").exists());

    signal(guard.0.as_ref().unwrap(), "TERM");
    let status = guard.0.take().unwrap().wait().unwrap();
    reader.join().unwrap();
    assert_eq!(status.code(), Some(0), "{}", logs.lock().unwrap());
}

#[test]
fn a_bad_configuration_is_refused_with_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("daemon.toml");
    std::fs::write(
        &cfg,
        "[identity]\ntenant_id = \"contoso.example\"\nclient_id = \"x\"\nclient_secret_file = \"missing-secret\"\n\n[apis.graph]\nbase_url = \"https://graph.example\"\nscopes = [\"User.Read\"]\n\n[[jobs]]\nname = \"users\"\napi = \"grahp\"\npath = \"users\"\ncron = \"every five minutes\"\n",
    )
    .unwrap();
    let out = apptoken()
        .args(["config", "check"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let report = text(&out.stdout);
    for want in [
        "daemon.toml:8:11: apis.graph.scopes",
        "daemon.toml:12:7: jobs[0].api",
        "daemon.toml:14:8: jobs[0].cron",
        "missing-secret",
    ] {
        assert!(report.contains(want), "{want} not in\n{report}");
    }
    // The daemon refuses to start with the same messages.
    let run = apptoken()
        .args(["run", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(3));
    assert!(
        text(&run.stderr).contains("daemon.toml:12:7: jobs[0].api"),
        "{}",
        text(&run.stderr)
    );
    // Syntax: an unknown field, with its line.
    std::fs::write(&cfg, "[daemon]\ngrace = \"10s\"\n").unwrap();
    let out = apptoken()
        .args(["config", "check"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(
        text(&out.stdout).contains("daemon.toml:2:1: grace"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn run_once_writes_outputs_and_logs_no_secret_or_token() {
    let emu = start_emulator(None);
    let dir = tempfile::tempdir().unwrap();
    let jobs = format!(
        "[[jobs]]\nname = \"users\"\napi = \"sample\"\npath = \"users?$top=7\"\nevery = \"15m\"\noutput = {{ type = \"file\", path = \"users.jsonl\" }}\ntenants = [\"{}\", \"fabrikam.onmicrosoft.com\"]\n",
        emu.s("tenant_domain")
    );
    let cfg = emu.daemon_config(dir.path(), &jobs, "");
    let check = apptoken()
        .args(["config", "check"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(check.status.success(), "{}", text(&check.stdout));
    let out = apptoken()
        .args([
            "--log-level",
            "trace",
            "--log-format",
            "json",
            "run",
            "--once",
            "--config",
        ])
        .arg(&cfg)
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    let lines = std::fs::read_to_string(dir.path().join("users.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), 42 + 17);
    let secret = std::fs::read_to_string(emu.state.path().join("client-secret")).unwrap();
    assert!(!err.contains(secret.trim()), "the secret is in the logs");
    assert!(!err.contains("eyJ"), "a token is in the logs");
    assert!(
        err.contains("\"client_request_id\""),
        "JSON logs with request ids: {err}"
    );
    // A job that fails makes --once exit non-zero.
    let broken = jobs.replace("users?$top=7", "users?$top=0");
    let cfg = emu.daemon_config(dir.path(), &broken, "");
    let out = apptoken()
        .args(["run", "--once", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("users.jsonl")).unwrap(),
        lines
    );
}

fn field(out: &str, name: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix(name))
        .unwrap_or_else(|| panic!("{name} not in\n{out}"))
        .trim()
        .to_string()
}

#[test]
fn a_certificate_from_cert_new_authenticates_once_registered() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    let out = apptoken()
        .args([
            "cert",
            "new",
            "--subject",
            "CN=my-daemon",
            "--days",
            "30",
            "--out",
        ])
        .arg(&certs)
        .output()
        .unwrap();
    let made = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let sha1 = field(&made, "SHA-1 thumbprint");
    let sha256 = field(&made, "SHA-256");
    assert_eq!(sha1.len(), 40);
    assert!(made.contains("\"AsymmetricX509Cert\""));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(certs.join("key.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // Again without --force: refused, nothing replaced.
    let again = apptoken()
        .args(["cert", "new", "--subject", "CN=x", "--out"])
        .arg(&certs)
        .output()
        .unwrap();
    assert!(!again.status.success());

    // cert show: PEM with --key, combined PEM, PFX.
    let show = apptoken()
        .args(["cert", "show"])
        .arg(certs.join("cert.pem"))
        .arg("--key")
        .arg(certs.join("key.pem"))
        .output()
        .unwrap();
    let shown = text(&show.stdout);
    assert!(show.status.success(), "{}", text(&show.stderr));
    assert_eq!(field(&shown, "SHA-1 thumbprint"), sha1);
    assert_eq!(field(&shown, "SHA-256"), sha256);
    assert!(
        shown.contains("CN=my-daemon") && shown.contains("matches"),
        "{shown}"
    );
    let pfx = apptoken()
        .args(["cert", "show"])
        .arg(certs.join("cert.pfx"))
        .arg("--password-file")
        .arg(certs.join("cert.pfx.password"))
        .output()
        .unwrap();
    assert!(pfx.status.success(), "{}", text(&pfx.stderr));
    assert_eq!(field(&text(&pfx.stdout), "SHA-1 thumbprint"), sha1);
    // Another key does not match.
    let other = dir.path().join("other");
    assert!(
        apptoken()
            .args(["cert", "new", "--subject", "CN=other", "--out"])
            .arg(&other)
            .status()
            .unwrap()
            .success()
    );
    let bad = apptoken()
        .args(["cert", "show"])
        .arg(certs.join("cert.pem"))
        .arg("--key")
        .arg(other.join("key.pem"))
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(3));
    assert!(text(&bad.stdout).contains("DOES NOT MATCH"));

    // Register it in an emulator configuration and authenticate with it.
    let emu_cfg = dir.path().join("emulator.toml");
    std::fs::write(
        &emu_cfg,
        format!(
            r#"
[[tenants]]
id = "11111111-2222-4333-8444-555555555555"
domains = ["tailspin.example"]
display_name = "Tailspin"

[[resources]]
app_id = "66666666-7777-4888-9999-000000000000"
app_id_uri = "api://sample"
roles = [{{ value = "Users.Read.All" }}]

[[apps]]
client_id = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"
display_name = "my daemon"
home_tenant = "tailspin.example"
  [[apps.certificates]]
  path = "{}"

[[grants]]
tenant = "tailspin.example"
client_id = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"
resource = "api://sample"
roles = ["Users.Read.All"]

[sample_api]
resource = "api://sample"
required_role = "Users.Read.All"
"#,
            certs.join("cert.pem").display()
        ),
    )
    .unwrap();
    let emu = start_emulator(Some(&emu_cfg));
    let cfg = dir.path().join("daemon.toml");
    std::fs::write(
        &cfg,
        format!(
            "[identity]\nauthority_host = \"{}\"\ntenant_id = \"tailspin.example\"\nclient_id = \"aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee\"\ncertificate_path = \"certs/cert-and-key.pem\"\n\n[apis.sample]\nbase_url = \"{}\"\nscopes = [\"api://sample/.default\"]\n\n[[jobs]]\nname = \"users\"\napi = \"sample\"\npath = \"users\"\nevery = \"1h\"\noutput = {{ type = \"file\", path = \"users.jsonl\" }}\n",
            emu.s("authority_host"),
            emu.s("sample_api")
        ),
    )
    .unwrap();
    let run: Output = apptoken()
        .args(["run", "--once", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", text(&run.stderr));
    assert!(dir.path().join("users.jsonl").exists());
}

#[test]
fn config_check_warns_before_a_certificate_expires() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    for (days, warned) in [("10", true), ("400", false)] {
        let _ = std::fs::remove_dir_all(&certs);
        let out = apptoken()
            .args([
                "cert",
                "new",
                "--subject",
                "CN=expiring",
                "--days",
                days,
                "--out",
            ])
            .arg(&certs)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        let pem = [
            std::fs::read(certs.join("cert.pem")).unwrap(),
            std::fs::read(certs.join("key.pem")).unwrap(),
        ]
        .concat();
        let combined = dir.path().join("combined.pem");
        std::fs::write(&combined, pem).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&combined, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let config = dir.path().join("daemon.toml");
        std::fs::write(
            &config,
            format!(
                "[identity]\nauthority_host = \"http://127.0.0.1:9\"\ntenant_id = \"contoso.example\"\nclient_id = \"00000000-0000-0000-0000-000000000001\"\ncertificate_path = \"{}\"\n",
                combined.display()
            ),
        )
        .unwrap();
        let out = apptoken()
            .args(["config", "check"])
            .arg(&config)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        assert_eq!(
            text(&out.stdout).contains("warning: the certificate"),
            warned,
            "{}",
            text(&out.stdout)
        );
    }
}
