//! `apptoken token --issuer …` against an independently written,
//! OpenID-certified provider: node's `oidc-provider`
//! (tests/peers/oidc-provider, installed by scripts/test.sh with `npm ci`),
//! started on loopback. Client secret basic and post, a resource indicator
//! (a JWT access token for that audience), a wrong secret (exit 4 with the
//! provider's error, the secret never echoed). FAILS (never skips) when node
//! or the provider's packages are missing.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

mod support;
use support::*;

/// The provider, stopped when dropped (it exits when its stdin closes).
struct Provider {
    child: Child,
    info: serde_json::Value,
}

impl Drop for Provider {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn provider() -> Provider {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/peers/oidc-provider");
    assert!(
        dir.join("node_modules/oidc-provider").exists(),
        "node's oidc-provider is not installed in {}: run scripts/test.sh (npm ci there)",
        dir.display()
    );
    let mut child = Command::new("node")
        .arg("server.mjs")
        .current_dir(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run node ({e}): run scripts/test.sh"));
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let info = serde_json::from_str(&line)
        .unwrap_or_else(|e| panic!("the provider's first line is not JSON ({e}): {line}"));
    Provider { child, info }
}

impl Provider {
    fn s(&self, path: &[&str]) -> String {
        let mut v = &self.info;
        for p in path {
            v = &v[*p];
        }
        v.as_str()
            .unwrap_or_else(|| panic!("{path:?} in {}", self.info))
            .to_string()
    }
}

fn claims(token: &str) -> serde_json::Value {
    use base64::Engine;
    let part = token.split('.').nth(1).expect("a JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[test]
fn tokens_from_oidc_provider_with_a_secret_basic_or_post_and_a_resource() {
    let p = provider();
    let issuer = p.s(&["issuer"]);
    let resource = "https://api.example.test";
    let dir = tempfile::tempdir().unwrap();
    for (client, auth) in [
        ("secret-basic", "basic"),
        ("secret-post", "post"),
        ("secret-basic-special", "basic"),
    ] {
        let config = dir.path().join(format!("{client}.toml"));
        let secret = dir.path().join(format!("{client}.secret"));
        write_private(
            &secret,
            p.s(&["clients", client, "client_secret"]).as_bytes(),
        );
        std::fs::write(
            &config,
            format!(
                "[identity]\nissuer = \"{issuer}\"\nclient_id = \"{}\"\nclient_secret_file = \"{}\"\nclient_secret_auth = \"{auth}\"\n",
                p.s(&["clients", client, "client_id"]),
                secret.display()
            ),
        )
        .unwrap();
        let out = apptoken()
            .args(["token", "--config"])
            .arg(&config)
            .args(["--scope", "api:read", "--resource", resource])
            // Entra settings an issuer wins over.
            .env("AZURE_TENANT_ID", "contoso.onmicrosoft.com")
            .output()
            .unwrap();
        assert!(out.status.success(), "{client}: {}", text(&out.stderr));
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(json["token_type"], "Bearer", "{client}");
        let c = claims(json["access_token"].as_str().unwrap());
        assert_eq!(c["aud"], resource, "{client}: {c}");
        assert_eq!(c["iss"], issuer.as_str(), "{client}: {c}");
        assert_eq!(
            c["client_id"],
            p.s(&["clients", client, "client_id"]).as_str()
        );
        assert_eq!(c["scope"], "api:read", "{client}: {c}");
    }
    // The default client_secret_auth for a generic provider: basic.
    let config = dir.path().join("secret-basic.toml");
    let text_of = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text_of.replace("client_secret_auth = \"basic\"\n", ""),
    )
    .unwrap();
    let out = apptoken()
        .args(["token", "--raw", "--config"])
        .arg(&config)
        .args(["--resource", resource])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));

    // A wrong secret: the provider's refusal, exit 4, the secret not echoed.
    let wrong = dir.path().join("wrong.secret");
    write_private(&wrong, b"not-the-secret-0123456789-abcdefghijklmnop");
    let out = apptoken()
        .args(["token", "--issuer", &issuer, "--scope", "api:read"])
        .env(
            "AZURE_CLIENT_ID",
            p.s(&["clients", "secret-basic", "client_id"]),
        )
        .env(
            "AZURE_CLIENT_SECRET",
            "not-the-secret-0123456789-abcdefghijklmnop",
        )
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(err.contains("invalid_client"), "{err}");
    assert!(
        !err.contains("not-the-secret"),
        "the secret is echoed: {err}"
    );
}
