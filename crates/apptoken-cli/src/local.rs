//! The local commands: `apptoken emulator` (the embedded identity provider
//! and sample API, until SIGTERM or Ctrl-C) and `apptoken demo` (the
//! emulator in a temporary directory, and one client run against it).

use std::path::PathBuf;

use anyhow::Context;
use apptoken::{
    Authority, Certificate, ClientSecret, ConfidentialClient, Credential, TokenRequest,
};
use apptoken_emulator::{Config as EmulatorConfig, Emulator};

use crate::Failure;
use crate::api::{self, ApiOutcome, ApiRequest};
use crate::cli::EmulatorArgs;
use crate::commands::{bail_failure, claims_of};
use crate::exit;

fn default_state_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(d).join("apptoken/emulator");
    }
    if let Some(h) = std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(h).join(".local/state/apptoken/emulator");
    }
    PathBuf::from(".apptoken-emulator")
}

pub(crate) async fn emulator(args: EmulatorArgs) -> Result<(), Failure> {
    if let Some(crate::cli::EmulatorCommand::Generate(g)) = args.command {
        return crate::tenants::generate(g);
    }
    // Refused before anything is generated or written (Emulator::start checks again).
    Emulator::check_listen(args.listen, args.allow_remote).map_err(|e| Failure {
        code: exit::CONFIG,
        error: e.into(),
    })?;
    let state_dir = args.state_dir.unwrap_or_else(default_state_dir);
    std::fs::create_dir_all(&state_dir).with_context(|| {
        format!(
            "cannot create the state directory '{}'",
            state_dir.display()
        )
    })?;
    let config = match &args.config {
        Some(path) => EmulatorConfig::from_file(path)
            .map_err(|e| Failure {
                code: exit::CONFIG,
                error: e.into(),
            })?
            .with_state_dir(&state_dir),
        None => EmulatorConfig::embedded(&state_dir).map_err(|e| Failure {
            code: exit::CONFIG,
            error: e.into(),
        })?,
    };
    let config = if args.tls {
        config.with_tls(true)
    } else {
        config
    };
    let config = config.with_allow_remote(args.allow_remote);
    let running = Emulator::start(config, args.listen)
        .await
        .map_err(|e| Failure {
            code: exit::FAILURE,
            error: e.into(),
        })?;
    let info = running.info().clone();
    println!("apptoken emulator listening on {}", running.base_url());
    println!(
        "  tenant        {} ({})",
        info.tenant_id, info.tenant_domain
    );
    for t in &info.other_tenants {
        println!("  tenant        {} ({})", t.tenant_id, t.domain);
    }
    println!("  client id     {}", info.client_id);
    if let Some(s) = &info.client_secret {
        println!("  client secret {s}");
    }
    if let Some(p) = &info.certificate_path {
        println!("  certificate   {}", p.display());
    }
    if let Some(p) = &info.private_key_path {
        println!("  private key   {}", p.display());
    }
    if let Some(p) = &info.pfx_path {
        println!("  pfx           {}", p.display());
    }
    println!(
        "  sample API    {}/users  (scope {})",
        info.sample_api, info.sample_scope
    );
    for m in &info.managed_identities {
        println!(
            "  {} MI  client id {}  object id {}",
            if m.kind == "system" {
                "system"
            } else {
                "user  "
            },
            m.client_id,
            m.object_id
        );
        println!("                resource id {}", m.resource_id);
    }
    println!(
        "  IMDS          AZURE_POD_IDENTITY_AUTHORITY_HOST={}",
        info.imds_base_url
    );
    println!(
        "  App Service   IDENTITY_ENDPOINT={} IDENTITY_HEADER={}",
        info.identity_endpoint, info.identity_header
    );
    println!(
        "  Azure Arc     {}  (key files in {})",
        info.arc_endpoint,
        info.arc_key_dir.display()
    );
    println!("  state         {}", state_dir.display());
    if let Some(ca) = &info.ca_certificate_path {
        println!("  TLS CA        {}", ca.display());
        println!(
            "                trust it per program: SSL_CERT_FILE (OpenSSL, curl), REQUESTS_CA_BUNDLE (Python),"
        );
        println!(
            "                NODE_EXTRA_CA_CERTS (Node.js); apptoken reads APPTOKEN_CA_FILE from the env file"
        );
    }
    if let Some(ca) = &info.ca_certificate_path {
        println!("  TLS CA        {}", ca.display());
        println!(
            "                trust it per program: SSL_CERT_FILE (OpenSSL, curl), REQUESTS_CA_BUNDLE (Python requests),"
        );
        println!(
            "                NODE_EXTRA_CA_CERTS (Node.js); apptoken reads APPTOKEN_CA_FILE from the env file"
        );
    }
    println!();
    println!(
        "Try:  source {}/env && apptoken token --scope \"$APPTOKEN_SAMPLE_SCOPE\"",
        state_dir.display()
    );
    println!("Stop with Ctrl-C or SIGTERM.");
    wait_for_shutdown_signal().await?;
    eprintln!("shutting down");
    running.shutdown().await;
    Ok(())
}

async fn wait_for_shutdown_signal() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.context("cannot listen for Ctrl-C")?,
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c()
        .await
        .context("cannot listen for Ctrl-C")?;
    Ok(())
}

pub(crate) async fn demo() -> Result<(), Failure> {
    let state_dir = std::env::temp_dir().join(format!("apptoken-demo-{}", std::process::id()));
    let result = demo_in(&state_dir).await;
    let _ = std::fs::remove_dir_all(&state_dir);
    result
}

async fn demo_in(state_dir: &std::path::Path) -> Result<(), Failure> {
    std::fs::create_dir_all(state_dir).context("cannot create a temporary directory")?;
    let config = EmulatorConfig::embedded(state_dir)?;
    let running = Emulator::start(config, "127.0.0.1:0".parse().context("address")?).await?;
    let info = running.info().clone();
    println!(
        "apptoken demo: an Entra ID emulator is running at {}",
        running.base_url()
    );
    println!();

    let authority = Authority::from_host(&info.authority_host, &info.tenant_id)?;
    let secret = info
        .client_secret
        .clone()
        .context("the embedded app has no secret")?;
    let secret_client = ConfidentialClient::builder()
        .authority(authority.clone())
        .client_id(&info.client_id)
        .credential(Credential::secret(ClientSecret::new(secret)))
        .build()?;
    let t1 = secret_client.acquire_token(&[&info.sample_scope]).await?;
    let minutes = (t1.expires_on() - time::OffsetDateTime::now_utc()).whole_minutes();
    println!(
        "1. client secret  -> token for {} (valid {minutes} min)",
        info.sample_scope
    );

    let cert_path = info
        .certificate_path
        .clone()
        .context("the embedded app has no certificate")?;
    let key_path = info
        .private_key_path
        .clone()
        .context("the embedded app has no private key")?;
    let cert_pem =
        std::fs::read(&cert_path).with_context(|| format!("reading {}", cert_path.display()))?;
    let key_pem =
        std::fs::read(&key_path).with_context(|| format!("reading {}", key_path.display()))?;
    let certificate = Certificate::from_pem_parts(&cert_pem, &key_pem, None)?;
    let thumbprint = certificate.thumbprint_sha1_hex();
    let cert_client = ConfidentialClient::builder()
        .authority(authority.clone())
        .client_id(&info.client_id)
        .credential(Credential::certificate(certificate))
        .build()?;
    let t2 = cert_client.acquire_token(&[&info.sample_scope]).await?;
    println!(
        "2. certificate    -> token through a PS256 client assertion (certificate {thumbprint})"
    );

    let claims = claims_of(t2.secret());
    let roles: Vec<String> = claims
        .get("roles")
        .and_then(|r| r.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    println!(
        "   authenticated as app {} (azp) in tenant {} (tid), roles: {}",
        claims.get("azp").and_then(|v| v.as_str()).unwrap_or("?"),
        claims.get("tid").and_then(|v| v.as_str()).unwrap_or("?"),
        if roles.is_empty() {
            "none".to_string()
        } else {
            roles.join(", ")
        }
    );

    let http = api::http_client(None)?;
    let mut tenants = vec![(info.tenant_domain.clone(), None::<String>)];
    tenants.extend(
        info.other_tenants
            .iter()
            .map(|t| (t.domain.clone(), Some(t.tenant_id.clone()))),
    );
    for (step, (name, tenant)) in (3..).zip(tenants) {
        let mut token = TokenRequest::new([&info.sample_scope]);
        if let Some(t) = &tenant {
            token = token.tenant(t);
        }
        let req = ApiRequest {
            method: reqwest::Method::GET,
            url: url::Url::parse(&format!("{}/users?$top=10", info.sample_api))
                .context("sample API URL")?,
            body: None,
            headers: Default::default(),
            token,
        };
        match api::call(&http, &cert_client, &req, true, 100).await? {
            ApiOutcome::Ok { body, pages } => {
                let n = body
                    .get("value")
                    .and_then(|v| v.as_array())
                    .map_or(0, |a| a.len());
                println!(
                    "{step}. GET /v1.0/users -> read {n} users of {name} in {pages} pages (following @odata.nextLink)"
                );
            }
            ApiOutcome::Failed { status, body } => {
                return Err(Failure {
                    code: exit::API,
                    error: anyhow::anyhow!("the sample API answered {status}: {body}"),
                });
            }
        }
    }

    // Once more: served from the cache, no request.
    let again = cert_client.acquire_token(&[&info.sample_scope]).await?;
    if !again.is_same_token(&t2) {
        return bail_failure(
            exit::FAILURE,
            "the second acquisition did not come from the cache",
        );
    }
    let stats = running.stats();
    println!();
    println!(
        "token requests the emulator received: {} (one per credential and tenant; every other call was served from the cache)",
        stats.token_requests_for(&info.client_id)
    );
    crate::run::demo_daemon(&info, state_dir).await?;
    running.shutdown().await;
    Ok(())
}
