//! Every configuration example in the docs parses as what it claims to be:
//! the ```toml blocks of docs/CLI.md, docs/EMULATOR.md, docs/DAEMON.md and
//! README.md, and packaging/daemon.toml, each read by the parser that reads
//! such a file in use (unknown fields and typos fail). Files the examples
//! name that do not exist on this machine (`/etc/apptoken/...`,
//! `${CREDENTIALS_DIRECTORY}/...`) are the only problems accepted.
//!
//! (That docs/CLI.md names every command and flag is checked next to the
//! clap definitions: crates/apptoken-cli/src/cli.rs.)

use std::path::{Path, PathBuf};
use std::process::Command;

use apptoken::ClientConfig;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The ```toml fenced blocks of a Markdown file, with the line each starts on.
fn toml_blocks(markdown: &str) -> Vec<(usize, String)> {
    let mut blocks = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (i, line) in markdown.lines().enumerate() {
        let fence = line.trim_start();
        match current.as_mut() {
            None if fence.starts_with("```toml") => current = Some((i + 2, String::new())),
            None => {}
            Some(_) if fence.starts_with("```") => blocks.extend(current.take()),
            Some((_, text)) => {
                text.push_str(line);
                text.push('\n');
            }
        }
    }
    assert!(current.is_none(), "an unclosed ```toml block");
    blocks
}

/// The ```toml blocks of `file`, as many as this test knows how to read.
fn blocks_of(file: &str, expected: usize) -> Vec<(usize, String)> {
    let blocks = toml_blocks(&read(file));
    assert_eq!(
        blocks.len(),
        expected,
        "{file} has {} ```toml blocks; this test knows {expected}: parse the new one here",
        blocks.len()
    );
    blocks
}

/// `[identity]` as the CLI reads it (`settings.rs`): only that table, exactly a `ClientConfig`.
fn identity(file: &str, line: usize, text: &str) -> ClientConfig {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct ConfigFile {
        identity: ClientConfig,
    }
    toml::from_str::<ConfigFile>(text)
        .unwrap_or_else(|e| panic!("{file}:{line}: the [identity] example does not parse: {e}"))
        .identity
}

/// MANAGED_IDENTITY.md's `[identity]` examples parse, and each chooses the
/// credential it says (no request: the chain's choice only).
#[test]
fn managed_identity_examples_are_client_configs_that_choose_a_managed_identity() {
    let file = "docs/MANAGED_IDENTITY.md";
    for (line, text) in blocks_of(file, 2) {
        let c = identity(file, line, &text);
        let choice = c
            .choose_credential()
            .unwrap_or_else(|e| panic!("{file}:{line}: {e}"));
        assert!(
            matches!(
                choice.credential,
                apptoken::CredentialType::ManagedIdentity
                    | apptoken::CredentialType::ManagedIdentityFederation
            ),
            "{file}:{line}: {:?}",
            choice.credential
        );
    }
}

/// OIDC.md's examples each select a generic provider by its issuer (kept
/// exactly, a trailing '/' too) and choose its client secret.
#[test]
fn oidc_examples_select_a_generic_provider_with_a_secret() {
    let file = "docs/OIDC.md";
    for (line, text) in blocks_of(file, 4) {
        let c = identity(file, line, &text);
        let issuer = c
            .issuer
            .clone()
            .unwrap_or_else(|| panic!("{file}:{line}: no issuer"));
        let a = c
            .authority()
            .unwrap_or_else(|e| panic!("{file}:{line}: {e}"));
        assert_eq!(a.kind(), apptoken::AuthorityKind::Oidc, "{file}:{line}");
        assert_eq!(a.issuer(), Some(issuer.as_str()), "{file}:{line}");
        let choice = c
            .choose_credential()
            .unwrap_or_else(|e| panic!("{file}:{line}: {e}"));
        assert_eq!(
            choice.credential,
            apptoken::CredentialType::Secret,
            "{file}:{line}"
        );
    }
}

/// EXEC.md's `[identity]` examples (the Kubernetes Job's, the systemd unit's).
#[test]
fn exec_examples_are_client_configs_with_a_secret_file() {
    let file = "docs/EXEC.md";
    for (line, text) in blocks_of(file, 2) {
        let c = identity(file, line, &text);
        assert!(c.client_secret_file.is_some(), "{file}:{line}");
        assert!(
            c.client_secret_file
                .as_ref()
                .is_some_and(|p| p.is_relative() || p.starts_with("/run/credentials/")),
            "{file}:{line}"
        );
    }
}

#[test]
fn cli_and_readme_identity_examples_are_client_configs() {
    for file in ["docs/CLI.md", "README.md"] {
        for (line, text) in blocks_of(file, 1) {
            let c = identity(file, line, &text);
            assert!(
                c.tenant_id.is_some() && c.client_id.is_some(),
                "{file}:{line}"
            );
        }
    }
}

/// The daemon's parser with systemd's `CREDENTIALS_DIRECTORY`; every problem
/// must be a credential or other file that is absent here.
fn check_daemon_example(file: &str, line: usize, text: &str) {
    let env = |k: &str| {
        (k == "CREDENTIALS_DIRECTORY").then(|| "/run/credentials/apptoken.service".to_string())
    };
    let path = Path::new("/etc/apptoken/daemon.toml");
    let problems = match apptoken_daemon::DaemonConfig::from_toml_str(text, path, &env) {
        Ok(_) => return,
        Err(apptoken_daemon::Error::Config(problems)) => problems,
        Err(e) => panic!("{file}:{line}: {e}"),
    };
    for p in &problems {
        println!(
            "{file}: accepted as absent here: {}: {}",
            p.field, p.message
        );
    }
    let unexpected: Vec<String> = problems
        .iter()
        .filter(|p| !is_absent_file(p))
        .map(|p| format!("{}: {}", p.field, p.message))
        .collect();
    assert!(
        unexpected.is_empty(),
        "{file} (block at line {line}) has problems other than files absent on this machine:\n  {}",
        unexpected.join("\n  ")
    );
}

/// A problem about a file the example names that does not exist here (a
/// credential, a key, an output directory), nothing else: the field is one
/// that names a file and the message says it is not there.
fn is_absent_file(p: &apptoken_daemon::Problem) -> bool {
    let file_field = [
        "identity",
        "identity.client_secret_file",
        "identity.certificate_path",
        "identity.certificate_password_file",
        "identity.federated_token_file",
        "identity.ca_file",
        "cache.key_file",
        "cache.redis_password_file",
        "cache.redis_ca_file",
        "cache.file",
        "daemon.client_secret_credential",
    ]
    .contains(&p.field.as_str())
        || (p.field.starts_with("jobs[")
            && (p.field.ends_with("].output.path")
                || p.field.ends_with("].output")
                || p.field.ends_with("].tenants_file")
                || p.field.ends_with("].status_file")));
    let absent = ["No such file or directory", "does not exist", "not found"]
        .iter()
        .any(|m| p.message.contains(m));
    file_field && absent
}

#[test]
fn daemon_examples_are_daemon_configs() {
    for (line, text) in blocks_of("docs/DAEMON.md", 1) {
        check_daemon_example("docs/DAEMON.md", line, &text);
    }
    check_daemon_example("packaging/daemon.toml", 1, &read("packaging/daemon.toml"));
}

#[test]
fn the_emulator_example_is_an_emulator_config() {
    let [(line, text), (mi_line, mi_text)] =
        <[_; 2]>::try_from(blocks_of("docs/EMULATOR.md", 2)).unwrap();
    // The managed-identity block's keys join the main example (whose
    // tenants and resources they name).
    let mut joined: toml::Table = toml::from_str(&text).unwrap();
    let mi: toml::Table = toml::from_str(&mi_text)
        .unwrap_or_else(|e| panic!("docs/EMULATOR.md:{mi_line}: not TOML: {e}"));
    joined.extend(mi);
    let joined = toml::to_string(&joined).unwrap();
    // The files the example names, made by `apptoken cert new`.
    let dir = tempfile::tempdir().unwrap();
    let made = Command::new(env!("CARGO_BIN_EXE_apptoken"))
        .args(["cert", "new", "--subject", "CN=docs example", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    for (from, to) in [
        ("cert.pem", "client-cert.pem"),
        ("key.pem", "client-key.pem"),
        ("cert.pfx", "client-cert.pfx"),
    ] {
        std::fs::copy(dir.path().join(from), dir.path().join(to)).unwrap();
    }
    if let Err(e) = apptoken_emulator::Config::from_toml_str(&text, dir.path()) {
        panic!("docs/EMULATOR.md:{line}: the configuration example is refused: {e}");
    }
    if let Err(e) = apptoken_emulator::Config::from_toml_str(&joined, dir.path()) {
        panic!("docs/EMULATOR.md:{mi_line}: the managed-identity example is refused: {e}");
    }
}

/// The scan itself: blocks are found whole, other languages are not.
#[test]
fn toml_blocks_are_found() {
    let md = "a\n```toml\nx = 1\n```\n```sh\ny\n```\n  ```toml\n  z = 2\n  ```\n";
    assert_eq!(
        toml_blocks(md),
        vec![(3, "x = 1\n".to_string()), (9, "  z = 2\n".to_string())]
    );
}
