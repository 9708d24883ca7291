//! End-to-end tests of `apptoken exec`: the emulator as a child process,
//! the program a shell (or Python with MSAL and azure-identity) that
//! reports what it was given; the endpoint asked directly with a raw
//! HTTP client for every refusal; exit codes and forwarded signals.
//! Everything on 127.0.0.1. Waits poll for a file the program writes
//! (bounded); no test depends on how long something takes.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

mod support;
use support::*;

/// `apptoken exec` with the emulator's app in the environment (a secret,
/// as a user would have it) and `extra` variables.
fn exec(emu: &Emulator, extra: &[(&str, &str)]) -> Command {
    let mut cmd = apptoken();
    let secret = std::fs::read_to_string(emu.state.path().join("client-secret")).unwrap();
    cmd.env("AZURE_AUTHORITY_HOST", emu.s("authority_host"))
        .env("AZURE_TENANT_ID", emu.s("tenant_id"))
        .env("AZURE_CLIENT_ID", emu.s("client_id"))
        .env("AZURE_CLIENT_SECRET", secret.trim());
    for (k, v) in extra {
        cmd.env(k, v);
    }
    cmd.arg("exec");
    cmd
}

/// The emulator's sample API as an App Service `resource` (its scope
/// without `/.default`).
fn sample_resource(emu: &Emulator) -> String {
    emu.s("sample_scope")
        .trim_end_matches("/.default")
        .to_string()
}

/// The `KEY=value` lines of an `env` dump.
fn env_of(dump: &str) -> HashMap<String, String> {
    dump.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A shell program that writes its environment to `$OUT` (atomically),
/// then waits for `$DONE` to exist.
/// It also ends when apptoken is gone (a failed test kills it), so that
/// nothing outlives the test.
const REPORT_AND_WAIT: &str = "env > \"$OUT.tmp\" && mv \"$OUT.tmp\" \"$OUT\"; \
     while [ ! -e \"$DONE\" ] && kill -0 $PPID 2>/dev/null; do sleep 0.02; done";

/// A GET to the endpoint with these headers (`Host` first, unless given):
/// the status and the JSON body.
fn get(addr: &str, target: &str, headers: &[(&str, &str)]) -> (u16, serde_json::Value) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let mut req = format!("GET {target} HTTP/1.1\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        req.push_str(&format!("Host: {addr}\r\n"));
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("Connection: close\r\n\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, body(&out))
}

struct Running {
    child: ChildGuard,
    env: HashMap<String, String>,
    done: PathBuf,
}

impl Running {
    /// `apptoken exec ARGS -- sh -c REPORT_AND_WAIT`, once the program has
    /// reported its environment.
    fn start(emu: &Emulator, dir: &Path, args: &[&str], extra: &[(&str, &str)]) -> Running {
        let mut cmd = exec(emu, extra);
        cmd.args(args);
        Running::start_with(cmd, dir)
    }

    /// `cmd` (`apptoken … exec [OPTIONS]`) running the reporting program.
    fn start_with(mut cmd: Command, dir: &Path) -> Running {
        static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let out = dir.join(format!("env-{n}"));
        let done = dir.join(format!("done-{n}"));
        let child = cmd
            .args(["--", "sh", "-c", REPORT_AND_WAIT])
            .env("OUT", &out)
            .env("DONE", &done)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let child = ChildGuard(Some(child));
        until("the program's environment", || out.exists());
        let env = env_of(&std::fs::read_to_string(&out).unwrap());
        Running { child, env, done }
    }

    fn addr(&self) -> String {
        self.env["IDENTITY_ENDPOINT"]
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap()
            .to_string()
    }

    fn header(&self) -> String {
        self.env["IDENTITY_HEADER"].clone()
    }

    /// Lets the program end; returns apptoken's exit code and stderr.
    fn finish(mut self) -> (Option<i32>, String) {
        std::fs::write(&self.done, "").unwrap();
        let out = self.child.0.take().unwrap().wait_with_output().unwrap();
        (out.status.code(), text(&out.stderr))
    }
}

#[test]
fn the_program_gets_an_endpoint_and_no_credential() {
    let emu = start_emulator(None);
    let dir = tempfile::tempdir().unwrap();
    let scope = emu.s("sample_scope");
    let planted = [
        ("AZURE_CLIENT_CERTIFICATE_PASSWORD", "pfx-password"),
        ("AZURE_USERNAME", "someone"),
        ("AZURE_PASSWORD", "p@ss"),
        ("AZURE_TOKEN_CREDENTIALS", "prod"),
        ("IDENTITY_SERVER_THUMBPRINT", "ABCDEF"),
        ("IMDS_ENDPOINT", "http://127.0.0.1:2"),
        ("MSI_ENDPOINT", "http://127.0.0.1:3"),
        ("MSI_SECRET", "msi-secret"),
        ("IDENTITY_ENDPOINT", "http://127.0.0.1:4/elsewhere"),
        ("IDENTITY_HEADER", "not-ours"),
        ("KEEP_ME", "yes"),
    ];
    let run = Running::start(&emu, dir.path(), &["--scope", &scope], &planted);
    let env = &run.env;
    for k in [
        "AZURE_CLIENT_SECRET",
        "AZURE_CLIENT_CERTIFICATE_PASSWORD",
        "AZURE_USERNAME",
        "AZURE_PASSWORD",
        "AZURE_TOKEN_CREDENTIALS",
        "IDENTITY_SERVER_THUMBPRINT",
        "IMDS_ENDPOINT",
        "MSI_ENDPOINT",
        "MSI_SECRET",
    ] {
        assert!(!env.contains_key(k), "{k} reached the program");
    }
    let secret = std::fs::read_to_string(emu.state.path().join("client-secret")).unwrap();
    assert!(
        !env.values().any(|v| v.contains(secret.trim())),
        "the secret reached the program"
    );
    assert_eq!(env["KEEP_ME"], "yes");
    assert_eq!(env["AZURE_CLIENT_ID"], emu.s("client_id"));
    let endpoint = &env["IDENTITY_ENDPOINT"];
    assert!(
        endpoint.starts_with("http://127.0.0.1:") && endpoint.ends_with("/msi/token"),
        "{endpoint}"
    );
    assert!(env["IDENTITY_HEADER"].len() >= 40, "a fresh random header");
    assert_ne!(env["IDENTITY_HEADER"], "not-ours");
    let (code, stderr) = run.finish();
    assert_eq!(code, Some(0), "{stderr}");
    assert!(!stderr.contains(secret.trim()), "{stderr}");
}

/// What is sent (a name, the target, the headers) and what must come back
/// (the status, a fragment of the message).
type Refusal<'a> = (&'a str, String, Vec<(&'a str, &'a str)>, u16, &'a str);

#[test]
fn the_endpoint_serves_its_resources_to_the_header_and_refuses_the_rest() {
    let emu = start_emulator(None);
    let dir = tempfile::tempdir().unwrap();
    let scope = emu.s("sample_scope");
    let resource = scope.trim_end_matches("/.default").to_string();
    let run = Running::start(&emu, dir.path(), &["--scope", &scope], &[]);
    let (addr, header) = (run.addr(), run.header());
    let path = |q: &str| format!("/msi/token?api-version=2019-08-01&{q}");
    let good = path(&format!("resource={resource}"));
    let h = [("X-IDENTITY-HEADER", header.as_str())];

    let (status, body) = get(&addr, &good, &h);
    assert_eq!(status, 200, "{body}");
    assert!(
        body["expires_on"].is_string(),
        "expires_on is a string: {body}"
    );
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["resource"], resource.as_str());
    assert_eq!(body["client_id"], emu.s("client_id").as_str());
    let token = body["access_token"].as_str().unwrap().to_string();
    // azure-identity sends AZURE_CLIENT_ID as client_id: the app's is fine.
    let (status, body) = get(
        &addr,
        &path(&format!(
            "resource={resource}&client_id={}",
            emu.s("client_id")
        )),
        &h,
    );
    assert_eq!(
        (status, body["access_token"].as_str()),
        (200, Some(token.as_str()))
    );

    // Every refusal, in the shape clients parse, none with a token.
    let refusals: Vec<Refusal> = vec![
        ("no header", good.clone(), vec![], 401, "missing"),
        (
            "wrong header",
            good.clone(),
            vec![("X-IDENTITY-HEADER", "guess")],
            401,
            "not this endpoint's",
        ),
        (
            "another resource",
            path("resource=https://vault.azure.net"),
            h.to_vec(),
            403,
            "add --scope https://vault.azure.net/.default",
        ),
        (
            "a foreign client_id",
            path(&format!(
                "resource={resource}&client_id=00000000-0000-4000-8000-00000000dead"
            )),
            h.to_vec(),
            400,
            "not the identity this endpoint serves",
        ),
        (
            "X-Forwarded-For",
            good.clone(),
            vec![
                ("X-IDENTITY-HEADER", &header),
                ("X-Forwarded-For", "10.1.2.3"),
            ],
            400,
            "x-forwarded-for",
        ),
        (
            "a Host that is not loopback",
            good.clone(),
            vec![("Host", "metadata.example"), ("X-IDENTITY-HEADER", &header)],
            400,
            "Host",
        ),
        (
            "no api-version",
            format!("/msi/token?resource={resource}"),
            h.to_vec(),
            400,
            "api-version is missing",
        ),
        (
            "no resource",
            path("x=1"),
            h.to_vec(),
            400,
            "resource is missing",
        ),
        (
            "another path",
            "/metadata/identity/oauth2/token".into(),
            h.to_vec(),
            404,
            "/msi/token",
        ),
    ];
    for (what, target, headers, want, fragment) in refusals {
        let (status, body) = get(&addr, &target, &headers);
        assert_eq!(status, want, "{what}: {body}");
        assert_eq!(body["statusCode"], want, "{what}: {body}");
        let message = body["message"].as_str().unwrap_or_default();
        assert!(message.contains(fragment), "{what}: {message}");
        assert!(body.get("access_token").is_none(), "{what}");
        assert!(!message.contains(&header), "{what}: the header is quoted");
    }
    let (code, stderr) = run.finish();
    assert_eq!(code, Some(0), "{stderr}");
    assert!(!stderr.contains(&token), "the token is never logged");
    assert!(!stderr.contains(&header), "the header is never logged");
    // Nothing left behind: the port is closed.
    assert!(
        std::net::TcpStream::connect(&addr).is_err(),
        "still listening"
    );
}

#[test]
fn the_identity_providers_refusals_reach_the_program_in_its_shape() {
    let emu = start_emulator(None);
    let dir = tempfile::tempdir().unwrap();
    let resource = sample_resource(&emu);
    let target = format!("/msi/token?api-version=2019-08-01&resource={resource}");
    // A wrong secret: Entra's refusal, its AADSTS code in the message.
    let run = Running::start(&emu, dir.path(), &[], &[("AZURE_CLIENT_SECRET", "wrong")]);
    let (status, body) = get(
        &run.addr(),
        &target,
        &[("X-IDENTITY-HEADER", &run.header())],
    );
    assert_eq!((status, &body["statusCode"]), (400, &400.into()), "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("AADSTS7000215"), "{message}");
    assert!(
        !message.contains("wrong"),
        "the secret is quoted: {message}"
    );
    assert_eq!(run.finish().0, Some(0));

    // Throttled: 429 with the identity provider's Retry-After.
    let run = Running::start(&emu, dir.path(), &[], &[]);
    let (addr, header) = (run.addr(), run.header());
    emu.add_fault(r#"{"target":"token","preset":"entra_throttle","times":10}"#);
    let raw = {
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        write!(
            s,
            "GET {target} HTTP/1.1\r\nHost: {addr}\r\nX-IDENTITY-HEADER: {header}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    };
    assert!(raw.starts_with("HTTP/1.1 429"), "{raw}");
    assert!(
        raw.to_ascii_lowercase().contains("retry-after: 60"),
        "{raw}"
    );
    assert_eq!(support::body(&raw)["statusCode"], 429, "{raw}");
    assert_eq!(run.finish().0, Some(0));
    // Unavailable (every retry answered 503): 503, which the SDKs retry. A
    // new run: the client remembers the throttling above for its 60 s.
    http(&emu.addr, "DELETE", "/_emulator/faults", "");
    emu.add_fault(r#"{"target":"token","preset":"unavailable","times":10}"#);
    let run = Running::start(&emu, dir.path(), &[], &[]);
    let (status, body) = get(
        &run.addr(),
        &target,
        &[("X-IDENTITY-HEADER", &run.header())],
    );
    assert_eq!(status, 503, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("AADSTS90033"),
        "{body}"
    );
    assert_eq!(run.finish().0, Some(0));
}

#[test]
fn a_hosts_managed_identity_is_handed_to_the_program() {
    let emu = start_emulator(None);
    let dir = tempfile::tempdir().unwrap();
    let resource = sample_resource(&emu);
    let ids = emu.info["managed_identities"].as_array().unwrap();
    let system = ids.iter().find(|m| m["kind"] == "system").unwrap();
    let (client_id, object_id) = (
        system["client_id"].as_str().unwrap(),
        system["object_id"].as_str().unwrap(),
    );
    // No app credential at all: the chain takes IMDS (the emulator's).
    let mut cmd = apptoken();
    cmd.env("AZURE_POD_IDENTITY_AUTHORITY_HOST", emu.s("imds_base_url"))
        .arg("exec");
    let run = Running::start_with(cmd, dir.path());
    let (addr, header) = (run.addr(), run.header());
    let h = [("X-IDENTITY-HEADER", header.as_str())];
    let q = |extra: &str| format!("/msi/token?api-version=2019-08-01&resource={resource}{extra}");
    let (status, body) = get(&addr, &q(""), &h);
    assert_eq!(status, 200, "{body}");
    let token = body["access_token"].as_str().unwrap();
    let claims = claims_of(token);
    assert_eq!(claims["oid"], object_id, "{claims}");
    // The system-assigned identity's ids are confirmed from its token.
    for extra in [
        format!("&client_id={client_id}"),
        format!("&principal_id={object_id}"),
    ] {
        let (status, body) = get(&addr, &q(&extra), &h);
        assert_eq!(status, 200, "{extra}: {body}");
    }
    let (status, body) = get(
        &addr,
        &q("&client_id=00000000-0000-4000-8000-00000000dead"),
        &h,
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains(client_id),
        "it names the identity served: {body}"
    );
    let (code, stderr) = run.finish();
    assert_eq!(code, Some(0), "{stderr}");
}

/// A JWT's claims (unverified).
fn claims_of(token: &str) -> serde_json::Value {
    use base64::Engine;
    let part = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[test]
fn a_hundred_concurrent_requests_make_one_token_request() {
    let emu = start_emulator(None);
    let dir = tempfile::tempdir().unwrap();
    let resource = sample_resource(&emu);
    // No --scope: nothing is fetched before the program starts.
    let run = Running::start(&emu, dir.path(), &[], &[]);
    let before = emu.token_requests();
    let (addr, header) = (run.addr(), run.header());
    let target = format!("/msi/token?api-version=2019-08-01&resource={resource}");
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(100));
    let answers: Vec<_> = (0..100)
        .map(|_| {
            let (addr, header, target, barrier) = (
                addr.clone(),
                header.clone(),
                target.clone(),
                barrier.clone(),
            );
            std::thread::spawn(move || {
                barrier.wait();
                get(&addr, &target, &[("X-IDENTITY-HEADER", &header)])
            })
        })
        .collect();
    let mut tokens = std::collections::HashSet::new();
    for a in answers {
        let (status, body) = a.join().unwrap();
        assert_eq!(status, 200, "{body}");
        tokens.insert(body["access_token"].as_str().unwrap().to_string());
    }
    assert_eq!(tokens.len(), 1, "one token for all");
    assert_eq!(emu.token_requests() - before, 1, "one token request");
    let (code, stderr) = run.finish();
    assert_eq!(code, Some(0), "{stderr}");
}

#[test]
fn exit_codes_pass_through_and_signals_reach_the_program() {
    let emu = start_emulator(None);
    let dir = tempfile::tempdir().unwrap();
    let code_of = |args: &[&str]| {
        let out = exec(&emu, &[]).arg("--").args(args).output().unwrap();
        (out.status.code(), text(&out.stderr))
    };
    assert_eq!(code_of(&["sh", "-c", "exit 7"]).0, Some(7));
    assert_eq!(code_of(&["true"]).0, Some(0));
    assert_eq!(
        code_of(&["sh", "-c", "kill -TERM $$"]).0,
        Some(143),
        "128 + SIGTERM"
    );
    let (code, stderr) = code_of(&["/nonexistent/program"]);
    assert_eq!(code, Some(127), "{stderr}");
    assert!(
        stderr.contains("cannot run '/nonexistent/program'"),
        "{stderr}"
    );
    // A credential that does not work fails before the program runs.
    let marker = dir.path().join("ran");
    let out = exec(&emu, &[("AZURE_CLIENT_SECRET", "wrong")])
        .args(["--scope", &emu.s("sample_scope"), "--", "touch"])
        .arg(&marker)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    assert!(!marker.exists(), "the program ran with a broken credential");

    // SIGTERM, SIGHUP and SIGINT sent to apptoken reach the program, whose
    // own exit code comes back.
    for (sig, code) in [("TERM", 9), ("HUP", 10), ("INT", 11)] {
        let ready = dir.path().join(format!("ready-{sig}"));
        let got = dir.path().join(format!("got-{sig}"));
        let script = format!(
            "trap 'echo {sig} > \"$GOT\"; exit {code}' {sig}; touch \"$READY\"; \
             while kill -0 $PPID 2>/dev/null; do sleep 0.02; done"
        );
        let child = exec(&emu, &[])
            .args(["--", "sh", "-c", &script])
            .env("READY", &ready)
            .env("GOT", &got)
            .spawn()
            .unwrap();
        let mut child = ChildGuard(Some(child));
        until("the program's trap", || ready.exists());
        let pid = child.0.as_ref().unwrap().id().to_string();
        let sent = Command::new("kill")
            .args([&format!("-{sig}"), &pid])
            .status();
        assert!(sent.unwrap().success());
        let mut status = None;
        let proc = child.0.as_mut().unwrap();
        until(&format!("apptoken to exit after SIG{sig}"), || {
            status = proc.try_wait().unwrap();
            status.is_some()
        });
        let status = status.unwrap();
        assert_eq!(
            status.code(),
            Some(code),
            "the program's code after SIG{sig}"
        );
        assert_eq!(std::fs::read_to_string(&got).unwrap().trim(), sig);
    }
}

#[test]
fn msal_and_azure_identity_get_the_apps_tokens_in_the_program_unchanged() {
    let emu = start_emulator(None);
    let python = std::env::var_os("APPTOKEN_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python")
        });
    assert!(
        python.exists(),
        "MSAL Python is missing: no interpreter at {} (APPTOKEN_PYTHON). Run scripts/test.sh, \
         which creates the .venv with tests/peers/requirements.txt.",
        python.display()
    );
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/peers/exec_child.py");
    let scope = emu.s("sample_scope");
    let before = emu.token_requests();
    let out = exec(&emu, &[("NO_PROXY", "*"), ("PYTHONDONTWRITEBYTECODE", "1")])
        // The emulator's authority is plain http, which DefaultAzureCredential
        // refuses as AZURE_AUTHORITY_HOST: the program does not need it.
        .args(["--scope", &scope, "--", "env", "-u", "AZURE_AUTHORITY_HOST"])
        .arg(&python)
        .arg(&script)
        .arg(&scope)
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "the program failed ({}); if msal or azure-identity is not importable, run scripts/test.sh\n{stdout}\n{}",
        out.status,
        text(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["msal"], "1.39.0", "pinned MSAL version");
    assert_eq!(
        report["azure_identity"], "1.25.1",
        "pinned azure-identity version"
    );
    for case in [
        "msal",
        "managed_identity_credential",
        "default_azure_credential",
    ] {
        let r = &report["results"][case];
        assert_eq!(r["ok"], true, "{case}: {r:#}");
        // A token the emulator issued to our app registration.
        assert_eq!(
            r["claims"]["azp"],
            emu.s("client_id").as_str(),
            "{case}: {r:#}"
        );
        assert_eq!(
            r["claims"]["tid"],
            emu.s("tenant_id").as_str(),
            "{case}: {r:#}"
        );
    }
    assert_eq!(
        emu.token_requests() - before,
        1,
        "one token request (before the program started): its three clients were served from \
         apptoken's cache"
    );
}
