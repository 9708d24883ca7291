//! End-to-end tests of the `apptoken` binary: the emulator as a child
//! process, `token`, `call`, `demo`, `jwt decode`, and the error paths with
//! their exit codes. Everything on 127.0.0.1, ephemeral ports.
//!
//! Over 500 lines: one test binary around one child-process harness (the
//! emulator child, the `apptoken` command with a clean environment) shared by
//! every test; each test is one command's happy and error paths.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_apptoken");

/// A child process killed when dropped.
struct ChildGuard(Option<Child>);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A command with a clean environment (no AZURE_* from the developer's
/// shell; IMDS on a closed loopback port unless `vars` say otherwise, so
/// the managed-identity chain never reaches 169.254.169.254).
fn apptoken(vars: &HashMap<String, String>) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_clear();
    for k in ["PATH", "HOME", "TMPDIR"] {
        if let Ok(v) = std::env::var(k) {
            cmd.env(k, v);
        }
    }
    cmd.env("AZURE_POD_IDENTITY_AUTHORITY_HOST", "http://127.0.0.1:1");
    cmd.envs(vars);
    cmd.stdin(Stdio::null());
    cmd
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("apptoken runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Parses the emulator's shell-sourceable `env` file.
fn parse_env_file(path: &Path) -> HashMap<String, String> {
    let content = std::fs::read_to_string(path).unwrap();
    let mut out = HashMap::new();
    for line in content.lines() {
        let line = line.trim();
        let Some(rest) = line.strip_prefix("export ") else {
            continue;
        };
        let (k, v) = rest.split_once('=').unwrap();
        let v = v.trim();
        let v = v
            .strip_prefix('\'')
            .and_then(|v| v.strip_suffix('\''))
            .unwrap_or(v);
        out.insert(k.to_string(), v.replace("'\\''", "'"));
    }
    out
}

struct RunningEmulator {
    child: ChildGuard,
    state: tempfile::TempDir,
    env: HashMap<String, String>,
}

fn start_emulator() -> RunningEmulator {
    start_emulator_with(&[])
}

fn start_emulator_with(extra: &[&str]) -> RunningEmulator {
    let state = tempfile::tempdir().unwrap();
    let child = apptoken(&HashMap::new())
        .args(["emulator", "--listen", "127.0.0.1:0"])
        .args(extra)
        .arg("--state-dir")
        .arg(state.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let guard = ChildGuard(Some(child));
    let env_file = state.path().join("env");
    // Wait for the emulator to write its env file (a readiness signal, not a timing assertion).
    let deadline = Instant::now() + Duration::from_secs(60);
    while !(env_file.exists()
        && std::fs::read_to_string(&env_file).is_ok_and(|s| s.contains("APPTOKEN_SAMPLE_SCOPE")))
    {
        assert!(
            Instant::now() < deadline,
            "the emulator did not write {}",
            env_file.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let env = parse_env_file(&env_file);
    RunningEmulator {
        child: guard,
        state,
        env,
    }
}

#[test]
fn emulator_token_call_and_sigterm() {
    let mut emu = start_emulator();
    let env = emu.env.clone();
    for k in [
        "AZURE_AUTHORITY_HOST",
        "AZURE_TENANT_ID",
        "AZURE_CLIENT_ID",
        "AZURE_CLIENT_SECRET",
        "APPTOKEN_SAMPLE_API",
        "APPTOKEN_SAMPLE_SCOPE",
    ] {
        assert!(
            env.get(k).is_some_and(|v| !v.is_empty()),
            "{k} missing from the env file"
        );
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(emu.state.path().join("env"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "the env file holds a secret");
    }
    let scope = env["APPTOKEN_SAMPLE_SCOPE"].clone();
    let api = env["APPTOKEN_SAMPLE_API"].clone();

    // token, as JSON
    let out = run(apptoken(&env).args(["token", "--scope", &scope]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let token = json["access_token"].as_str().unwrap().to_string();
    assert_eq!(json["token_type"], "Bearer");
    let expires = json["expires_on"].as_str().unwrap();
    assert!(
        time::OffsetDateTime::parse(expires, &time::format_description::well_known::Rfc3339)
            .is_ok(),
        "{expires}"
    );

    // token, raw
    let out = run(apptoken(&env).args(["token", "--scope", &scope, "--raw", "--force-refresh"]));
    assert!(out.status.success());
    let raw = text(&out.stdout).trim().to_string();
    assert_eq!(raw.split('.').count(), 3);

    // jwt decode from stdin
    let mut child = apptoken(&env)
        .args(["jwt", "decode"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(raw.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert!(text(&out.stderr).contains("NOT verified"));
    let decoded: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(decoded["claims"]["azp"], env["AZURE_CLIENT_ID"].as_str());
    assert_eq!(decoded["claims"]["roles"][0], "Users.Read.All");
    assert_eq!(decoded["header"]["alg"], "RS256");

    // call, one page and all pages
    let out =
        run(apptoken(&env).args(["call", "--scope", &scope, &format!("{api}/users?$top=999")]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let one: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let total = one["value"].as_array().unwrap().len();
    assert!(total > 7, "the sample data has several pages of 7");
    let out = run(apptoken(&env).args([
        "call",
        "--scope",
        &scope,
        "GET",
        &format!("{api}/users?$top=7"),
        "--all-pages",
    ]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let all: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(all["value"].as_array().unwrap().len(), total);
    assert_eq!(all["value"], one["value"]);

    // a non-2xx answer: status and body, exit 6
    let out = run(apptoken(&env).args([
        "call",
        "--scope",
        &scope,
        &format!("{api}/users/no-such-user"),
    ]));
    assert_eq!(out.status.code(), Some(6), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("HTTP 404"),
        "{}",
        text(&out.stderr)
    );

    // no secret and no token on stderr, even at trace level
    let out = run(apptoken(&env).args([
        "--log-level",
        "trace",
        "token",
        "--scope",
        &scope,
        "--force-refresh",
    ]));
    assert!(out.status.success());
    let logs = text(&out.stderr);
    assert!(
        logs.contains("token_request"),
        "trace logs are written: {logs}"
    );
    let issued = serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    for secret in [&env["AZURE_CLIENT_SECRET"], &token, &raw, &issued] {
        assert!(
            !logs.contains(secret.as_str()),
            "a secret or token leaked into the logs"
        );
    }

    // SIGTERM: a clean exit 0
    let mut child = emu.child.0.take().unwrap();
    #[cfg(unix)]
    {
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(
                    status.success(),
                    "the emulator exits 0 on SIGTERM: {status:?}"
                );
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the emulator did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    #[cfg(not(unix))]
    let _ = child.kill();
}

#[test]
fn whoami_explains_the_chain_and_the_identity_but_never_shows_the_token() {
    let emu = start_emulator();
    let env = emu.env.clone();
    let scope = env["APPTOKEN_SAMPLE_SCOPE"].clone();
    let out = run(apptoken(&env).args(["whoami", "--scope", &scope]));
    let shown = text(&out.stdout);
    assert!(out.status.success(), "{}{}", shown, text(&out.stderr));
    assert!(shown.starts_with("credential: secret\n"), "{shown}");
    assert!(
        shown.contains("environment credential (secret): chosen"),
        "{shown}"
    );
    assert!(
        shown.contains(&format!("app id: {}", env["AZURE_CLIENT_ID"])),
        "{shown}"
    );
    assert!(shown.contains("roles: "), "{shown}");
    assert!(
        !shown.contains("eyJ"),
        "the token is never printed: {shown}"
    );

    let out = run(apptoken(&env).args(["whoami", "--scope", &scope, "--json"]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["credential"], "secret");
    assert_eq!(json["identity"]["app_id"], env["AZURE_CLIENT_ID"].as_str());
    assert_eq!(json["opaque_token"], false);
    assert!(!text(&out.stdout).contains("eyJ"));

    // Nothing configured: every step of the chain, then the managed
    // identity's failure (IMDS is a closed loopback port here), exit 3.
    let out = run(apptoken(&HashMap::new()).args(["whoami", "--scope", &scope]));
    let shown = text(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{shown}{}", text(&out.stderr));
    assert!(
        shown.starts_with("credential: managed-identity\n"),
        "{shown}"
    );
    assert!(
        shown.contains("environment credential (secret): skipped"),
        "{shown}"
    );
    assert!(
        shown.contains("workload identity (federated-token-file): skipped"),
        "{shown}"
    );
    assert!(
        shown.contains("managed identity (managed-identity): chosen"),
        "{shown}"
    );
    assert!(text(&out.stderr).contains("IMDS"), "{}", text(&out.stderr));
}

#[test]
fn whoami_on_the_emulators_managed_identities_names_the_source_and_the_identity() {
    let emu = start_emulator();
    // The emulator writes `env` (what start_emulator waits for), then
    // emulator.json: wait for that one too (bounded; a readiness signal).
    let json = emu.state.path().join("emulator.json");
    let deadline = Instant::now() + Duration::from_secs(60);
    let info: serde_json::Value = loop {
        if let Some(v) = std::fs::read(&json)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
        {
            break v;
        }
        assert!(Instant::now() < deadline, "no {}", json.display());
        std::thread::sleep(Duration::from_millis(20));
    };
    let scope = emu.env["APPTOKEN_SAMPLE_SCOPE"].clone();
    let ids = info["managed_identities"].as_array().unwrap();
    let of = |kind: &str| ids.iter().find(|m| m["kind"] == kind).unwrap().clone();
    let (system, user) = (of("system"), of("user"));
    let field = |v: &serde_json::Value, k: &str| v[k].as_str().unwrap().to_string();
    let mut base = HashMap::new();
    if let Some(ca) = emu.env.get("APPTOKEN_CA_FILE") {
        base.insert("APPTOKEN_CA_FILE".to_string(), ca.clone());
    }
    let with = |pairs: &[(&str, String)]| {
        let mut env = base.clone();
        env.extend(pairs.iter().map(|(k, v)| (k.to_string(), v.clone())));
        env
    };
    // IMDS named by AZURE_POD_IDENTITY_AUTHORITY_HOST, nothing else: the
    // chain's two skipped steps, then the system-assigned identity.
    let env = with(&[(
        "AZURE_POD_IDENTITY_AUTHORITY_HOST",
        field(&info, "imds_base_url"),
    )]);
    let out = run(apptoken(&env).args(["whoami", "--scope", &scope, "--json"]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["credential"], "managed-identity", "{json}");
    let steps = json["chain"].to_string();
    assert_eq!(steps.matches("\"chosen\":false").count(), 2, "{steps}");
    assert!(steps.contains("system-assigned from IMDS"), "{steps}");
    assert_eq!(json["identity"]["object_id"], system["object_id"], "{json}");
    assert!(
        !text(&out.stdout).contains("eyJ"),
        "the token is never printed"
    );
    // App Service's variables, AZURE_CLIENT_ID naming the user-assigned one.
    let env = with(&[
        ("IDENTITY_ENDPOINT", field(&info, "identity_endpoint")),
        ("IDENTITY_HEADER", field(&info, "identity_header")),
        ("AZURE_CLIENT_ID", field(&user, "client_id")),
    ]);
    let out = run(apptoken(&env).args(["whoami", "--scope", &scope]));
    let shown = text(&out.stdout);
    assert!(out.status.success(), "{shown}{}", text(&out.stderr));
    assert!(
        shown.starts_with("credential: managed-identity\n"),
        "{shown}"
    );
    assert!(shown.contains("App Service"), "{shown}");
    assert!(
        shown.contains(&format!("object id: {}", field(&user, "object_id"))),
        "{shown}"
    );
    assert!(!shown.contains(&field(&info, "identity_header")), "{shown}");
    // A user-assigned identity the host does not have: the endpoint's 400,
    // a refusal (exit 4, as for token).
    let env = with(&[
        (
            "AZURE_POD_IDENTITY_AUTHORITY_HOST",
            field(&info, "imds_base_url"),
        ),
        ("APPTOKEN_CREDENTIAL", "managed-identity".into()),
        (
            "AZURE_CLIENT_ID",
            "00000000-0000-4000-8000-00000000dead".into(),
        ),
    ]);
    let out = run(apptoken(&env).args(["whoami", "--scope", &scope]));
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("IMDS: Identity not found"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn errors_have_exit_codes_and_say_what_to_fix() {
    let emu = start_emulator();
    let env = emu.env.clone();
    let scope = env["APPTOKEN_SAMPLE_SCOPE"].clone();

    // nothing configured
    let out = run(apptoken(&HashMap::new()).args(["token", "--scope", &scope]));
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("AZURE_"),
        "{}",
        text(&out.stderr)
    );

    // a delegated scope: refused before any request
    let out = run(apptoken(&env).args(["token", "--scope", "User.Read"]));
    assert_eq!(out.status.code(), Some(3));
    assert!(text(&out.stderr).contains("/.default"));

    // the wrong secret: exit 4 with the AADSTS code, and the secret is not shown
    let mut bad = env.clone();
    bad.insert(
        "AZURE_CLIENT_SECRET".into(),
        "definitely-wrong-secret".into(),
    );
    let out = run(apptoken(&bad).args(["token", "--scope", &scope]));
    assert_eq!(out.status.code(), Some(4));
    let err = text(&out.stderr);
    assert!(
        err.contains("AADSTS7000215") && err.contains("trace id"),
        "{err}"
    );
    assert!(!err.contains("definitely-wrong-secret"));

    // common: refused locally
    let mut common = env.clone();
    common.insert("AZURE_TENANT_ID".into(), "common".into());
    let out = run(apptoken(&common).args(["token", "--scope", &scope]));
    assert_eq!(out.status.code(), Some(3));
    assert!(text(&out.stderr).contains("common"));

    // an unreachable identity provider: exit 5
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut down = env.clone();
    down.insert(
        "AZURE_AUTHORITY_HOST".into(),
        format!("http://127.0.0.1:{port}"),
    );
    let out = run(apptoken(&down).args(["token", "--scope", &scope]));
    assert_eq!(out.status.code(), Some(5), "{}", text(&out.stderr));

    // a config file naming a secret file that others can read: refused with the fix
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("secret");
    std::fs::write(&secret_file, &env["AZURE_CLIENT_SECRET"]).unwrap();
    let config = dir.path().join("daemon.toml");
    std::fs::write(
        &config,
        format!(
            "[identity]\nauthority_host = \"{}\"\ntenant_id = \"{}\"\nclient_id = \"{}\"\nclient_secret_file = \"secret\"\n",
            env["AZURE_AUTHORITY_HOST"], env["AZURE_TENANT_ID"], env["AZURE_CLIENT_ID"]
        ),
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&secret_file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let out = run(apptoken(&HashMap::new())
            .args(["token", "--scope", &scope, "--config"])
            .arg(&config));
        assert_eq!(out.status.code(), Some(3));
        assert!(
            text(&out.stderr).contains("chmod 600"),
            "{}",
            text(&out.stderr)
        );
        std::fs::set_permissions(&secret_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let out = run(apptoken(&HashMap::new())
        .args(["token", "--scope", &scope, "--config"])
        .arg(&config));
    assert!(out.status.success(), "{}", text(&out.stderr));

    // a config file with a typo: the line and the field are named
    std::fs::write(
        &config,
        "[identity]\ntenant_id = \"x.example\"\nclient_secret = \"inline\"\n",
    )
    .unwrap();
    let out = run(apptoken(&HashMap::new())
        .args(["token", "--scope", &scope, "--config"])
        .arg(&config));
    assert_eq!(out.status.code(), Some(3));
    let err = text(&out.stderr);
    assert!(
        err.contains("line 3") && err.contains("client_secret"),
        "{err}"
    );

    // consent URL for a customer tenant
    let out = run(apptoken(&env).args([
        "consent-url",
        "--tenant",
        "fabrikam.onmicrosoft.com",
        "--redirect-uri",
        "https://isv.example/onboarded",
    ]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let url = text(&out.stdout);
    assert!(
        url.starts_with(&format!(
            "{}/fabrikam.onmicrosoft.com/adminconsent?client_id={}",
            env["AZURE_AUTHORITY_HOST"], env["AZURE_CLIENT_ID"]
        )),
        "{url}"
    );
    assert!(
        url.contains("redirect_uri=https%3A%2F%2Fisv.example%2Fonboarded"),
        "{url}"
    );
    let out = run(apptoken(&env).args(["consent-url", "--tenant", "common"]));
    assert_eq!(out.status.code(), Some(3));

    // bad usage: exit 2
    let out = run(apptoken(&env).args(["token"]));
    assert_eq!(out.status.code(), Some(2));
    // a JWT that is not one
    let out = run(apptoken(&env).args(["jwt", "decode", "not-a-jwt"]));
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn emulator_over_tls_with_the_ca_from_the_env_file() {
    let emu = start_emulator_with(&["--tls"]);
    let env = emu.env.clone();
    assert!(
        env["AZURE_AUTHORITY_HOST"].starts_with("https://"),
        "{env:?}"
    );
    assert!(env.contains_key("APPTOKEN_CA_FILE"), "{env:?}");
    let scope = env["APPTOKEN_SAMPLE_SCOPE"].clone();
    let out = run(apptoken(&env).args(["token", "--scope", &scope]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let api = env["APPTOKEN_SAMPLE_API"].clone();
    let out = run(apptoken(&env).args([
        "call",
        "--scope",
        &scope,
        &format!("{api}/users?$top=10"),
        "--all-pages",
    ]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    // Without the CA the server is not trusted: a transport failure, exit 5.
    let mut no_ca = env.clone();
    no_ca.remove("APPTOKEN_CA_FILE");
    let out = run(apptoken(&no_ca).args(["token", "--scope", &scope]));
    assert_eq!(out.status.code(), Some(5), "{}", text(&out.stderr));
}

/// `--listen 0.0.0.0:P` without `--allow-remote` exits 3 naming the reason and
/// the flag, before writing anything. `P` is held on 127.0.0.1 by this test,
/// so an emulator that bound before deciding would fail with "address in use"
/// (a different message) rather than open a non-loopback socket.
#[test]
fn emulator_refuses_a_non_loopback_address_without_allow_remote() {
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port();
    let state = tempfile::tempdir().unwrap();
    let out = run(apptoken(&HashMap::new())
        .args(["emulator", "--listen", &format!("0.0.0.0:{port}")])
        .arg("--state-dir")
        .arg(state.path()));
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    for part in [
        &format!("refusing to listen on 0.0.0.0:{port}"),
        "not a loopback address",
        "/_emulator/*",
        "--allow-remote",
    ] {
        assert!(stderr.contains(part), "{part:?} not in {stderr}");
    }
    assert!(
        std::fs::read_dir(state.path()).unwrap().next().is_none(),
        "the refused emulator wrote into its state directory"
    );
    let help = run(apptoken(&HashMap::new()).args(["emulator", "--help"]));
    let help = text(&help.stdout);
    assert!(
        help.contains("--allow-remote") && help.contains("unauthenticated"),
        "{help}"
    );
    drop(held);
}

#[test]
fn demo_runs_to_exit_zero() {
    let out = run(apptoken(&HashMap::new()).arg("demo"));
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "stdout:\n{stdout}\nstderr:\n{}",
        text(&out.stderr)
    );
    assert!(stdout.contains("client secret"), "{stdout}");
    assert!(stdout.contains("certificate"), "{stdout}");
    assert!(stdout.contains("Users.Read.All"), "{stdout}");
    assert!(
        stdout.contains("token requests the emulator received"),
        "{stdout}"
    );
}

/// POSTs JSON to the emulator's admin API (plain HTTP/1.1 over loopback).
fn emulator_post(env: &HashMap<String, String>, path: &str, json: &str) -> String {
    use std::io::{Read, Write};
    let host = env["AZURE_AUTHORITY_HOST"]
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let mut s = std::net::TcpStream::connect(&host).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{json}",
        json.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// Regression test for issue #16: one `429` with `Retry-After: 300000000000`
/// panicked the client's fetch task and the CLI exited 3 ("configuration
/// error"). It is the identity provider's throttling: exit 4, capped wait.
#[test]
fn regression_16_an_absurd_retry_after_is_a_throttle_not_a_configuration_error() {
    let emu = start_emulator();
    let env = emu.env.clone();
    let scope = env["APPTOKEN_SAMPLE_SCOPE"].clone();
    let r = emulator_post(
        &env,
        "/_emulator/faults",
        r#"{"target":"token","status":429,"retry_after":"300000000000","times":1}"#,
    );
    assert!(r.starts_with("HTTP/1.1 2"), "{r}");
    let out = run(apptoken(&env).args(["token", "--scope", &scope]));
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(
        !err.contains("panicked") && !err.contains("configuration"),
        "{err}"
    );
    assert!(err.contains("429"), "{err}");
    // The fault fired once: the next process gets a token.
    let out = run(apptoken(&env).args(["token", "--scope", &scope]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

/// Issue #17 from the command line: an ISV generates an emulator of its
/// customers, checks which ones can get a token (`tenants check`: the one
/// not consented is named with its code and what to do), runs its job once
/// (exit 7, partial: every other customer's file written), and after the
/// customer's consent every tenant answers. A tenants file with a problem
/// is refused by `config check` with the line.
#[test]
fn an_isv_checks_its_customers_and_a_partial_run_exits_7() {
    let dir = tempfile::tempdir().unwrap();
    let gen_dir = dir.path().join("isv");
    let out = run(apptoken(&HashMap::new())
        .args([
            "emulator",
            "generate",
            "--tenants",
            "20",
            "--without-consent",
            "7",
            "--out",
        ])
        .arg(&gen_dir));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("20 customer tenants (1 without consent)"));
    let emu = start_emulator_with(&["--config", gen_dir.join("emulator.toml").to_str().unwrap()]);
    let e = &emu.env;
    std::fs::create_dir(dir.path().join("out")).unwrap();
    let config = dir.path().join("daemon.toml");
    std::fs::write(
        &config,
        format!(
            "[identity]\nauthority_host = \"{}\"\ntenant_id = \"{}\"\nclient_id = \"{}\"\nclient_secret_file = \"isv/client-secret\"\n\n\
             [apis.sample]\nbase_url = \"{}\"\nscopes = [\"{}\"]\n\n\
             [[jobs]]\nname = \"users\"\napi = \"sample\"\npath = \"users\"\nevery = \"15m\"\n\
             tenants_file = \"isv/tenants.txt\"\noutput = {{ type = \"file\", path = \"out/users-{{tenant}}.jsonl\" }}\n",
            e["AZURE_AUTHORITY_HOST"],
            e["AZURE_TENANT_ID"],
            e["AZURE_CLIENT_ID"],
            e["APPTOKEN_SAMPLE_API"],
            e["APPTOKEN_SAMPLE_SCOPE"],
        ),
    )
    .unwrap();

    let check = run(apptoken(&HashMap::new())
        .args(["tenants", "check", "--config"])
        .arg(&config));
    let stdout = text(&check.stdout);
    assert_eq!(
        check.status.code(),
        Some(7),
        "{stdout}{}",
        text(&check.stderr)
    );
    let refused: Vec<&str> = stdout.lines().filter(|l| l.contains("REFUSED")).collect();
    assert_eq!(refused.len(), 1, "{stdout}");
    assert!(
        refused[0].starts_with("customer07.example") && refused[0].contains("AADSTS7000229"),
        "{stdout}"
    );
    assert!(
        stdout.contains("apptoken consent-url"),
        "the hint: {stdout}"
    );
    assert_eq!(
        stdout.lines().filter(|l| l.contains(" ok ")).count(),
        19,
        "{stdout}"
    );
    assert!(stdout.contains("roles: Users.Read.All"), "{stdout}");
    let json = run(apptoken(&HashMap::new())
        .args(["tenants", "check", "--json", "--config"])
        .arg(&config));
    let rows: Vec<serde_json::Value> = text(&json.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 20);
    assert_eq!(rows.iter().filter(|r| r["ok"] == false).count(), 1);
    assert!(!text(&json.stdout).contains(&e["AZURE_CLIENT_SECRET"]));
    assert!(!text(&json.stdout).contains("eyJ"), "no token is printed");

    let once = run(apptoken(&HashMap::new())
        .args(["run", "--once", "--config"])
        .arg(&config));
    let stderr = text(&once.stderr);
    assert_eq!(once.status.code(), Some(7), "{stderr}");
    assert!(
        stderr.contains("PARTIAL") && stderr.contains("19 of 20 tenants succeeded"),
        "{stderr}"
    );
    let files = std::fs::read_dir(dir.path().join("out"))
        .unwrap()
        .flatten()
        .filter(|f| f.file_name().to_string_lossy().starts_with("users-"))
        .count();
    assert_eq!(files, 19);
    let status: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("out/users.status.json")).unwrap())
            .unwrap();
    assert_eq!(status["tenants"][6]["code"], "AADSTS7000229");

    let consent = emulator_post(
        e,
        "/_emulator/consent",
        &format!(
            "{{\"tenant\":\"customer07.example\",\"client_id\":\"{}\"}}",
            e["AZURE_CLIENT_ID"]
        ),
    );
    assert!(consent.starts_with("HTTP/1.1 200"), "{consent}");
    let check = run(apptoken(&HashMap::new())
        .args(["tenants", "check", "--config"])
        .arg(&config));
    assert!(check.status.success(), "{}", text(&check.stdout));

    // Offboarding and onboarding: one command each, the file edited in place.
    let tenants_txt = gen_dir.join("tenants.txt");
    let removed = run(apptoken(&HashMap::new())
        .args(["tenants", "remove", "--config"])
        .arg(&config)
        .args(["customer07.example", "nosuch.example"]));
    assert!(removed.status.success(), "{}", text(&removed.stderr));
    assert!(text(&removed.stdout).contains("removed customer07.example"));
    assert!(text(&removed.stdout).contains("nosuch.example: not listed"));
    let list = std::fs::read_to_string(&tenants_txt).unwrap();
    assert!(
        !list.lines().any(|l| l.trim() == "customer07.example") && list.starts_with('#'),
        "its line is gone, the comments stay: {list}"
    );
    let added = run(apptoken(&HashMap::new())
        .args(["tenants", "add", "--config"])
        .arg(&config)
        .args(["customer07.example", "customer01.example"]));
    assert!(added.status.success(), "{}", text(&added.stderr));
    let stdout = text(&added.stdout);
    assert!(stdout.contains("added customer07.example: send its admin the URL of `apptoken consent-url --tenant customer07.example`"), "{stdout}");
    assert!(
        stdout.contains("customer01.example: already listed"),
        "{stdout}"
    );
    assert!(stdout.contains("20 tenants"), "{stdout}");
    let bad_name = run(apptoken(&HashMap::new())
        .args(["tenants", "add", "--config"])
        .arg(&config)
        .arg("../etc"));
    assert_eq!(bad_name.status.code(), Some(3));
    assert!(text(&bad_name.stderr).contains("is not a tenant id or domain name"));

    // A tenants file with a problem: config check names its line.
    std::fs::write(
        gen_dir.join("tenants.txt"),
        "# customers\ncustomer01.example\nnot/a/tenant\n",
    )
    .unwrap();
    let bad = run(apptoken(&HashMap::new())
        .args(["config", "check"])
        .arg(&config));
    assert_eq!(bad.status.code(), Some(3));
    assert!(
        text(&bad.stdout).contains("tenants.txt:3:1: 'not/a/tenant' is not a tenant id"),
        "{}",
        text(&bad.stdout)
    );
}
