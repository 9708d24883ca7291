//! `apptoken exec [--scope S]... -- CMD [ARGS...]`: the settings' client
//! behind a private App Service endpoint (`apptoken_broker`), CMD run
//! with it and without the credential, CMD's exit code passed on.

use std::sync::Arc;

use apptoken::ManagedIdentityId;
use apptoken_broker::{AppServiceEndpoint, Exec, Policy, ServedIdentity};

use crate::cli::ExecArgs;
use crate::{Failure, settings};

/// The program ran and exited with a code that is not 0: `main` exits with
/// it and prints nothing (the program said what it had to).
#[derive(Debug, thiserror::Error)]
#[error("the program exited with code {0}")]
pub(crate) struct ChildExited(pub(crate) u8);

pub(crate) async fn exec(args: ExecArgs) -> Result<(), Failure> {
    let cfg = settings::client_config(args.config.as_deref())?;
    let choice = cfg.choose_credential()?;
    let client = Arc::new(cfg.build_client()?);
    let identity = match choice.managed_identity.as_ref().map(|m| m.id()) {
        // A managed identity: what its settings name, the rest confirmed
        // from its tokens' claims.
        Some(ManagedIdentityId::ClientId(c)) => ServedIdentity::new(c.clone()),
        Some(ManagedIdentityId::ObjectId(o)) => ServedIdentity::new("").with_object_id(o.clone()),
        Some(ManagedIdentityId::ResourceId(r)) => {
            ServedIdentity::new("").with_resource_id(r.clone())
        }
        Some(_) => ServedIdentity::new(""),
        None => ServedIdentity::new(client.client_id()),
    };
    // Fail before the program starts when the credential does not work,
    // and start it with its tokens already cached.
    for scope in &args.scopes {
        client.acquire_token(&[scope]).await?;
    }
    let policy = if args.scopes.is_empty() {
        Policy::any()
    } else {
        Policy::scopes(&args.scopes)
    };
    let Some((program, rest)) = args.command.split_first() else {
        return Err(Failure::config(
            "no program to run: apptoken exec -- CMD [ARGS...]",
        ));
    };
    let endpoint = AppServiceEndpoint::start(client, identity, policy).await?;
    tracing::info!(endpoint = endpoint.url(), credential = %choice.credential, "token endpoint for the program");
    let ran = Exec::new(program, rest).run(&endpoint).await;
    endpoint.shutdown().await;
    match ran {
        Ok(0) => Ok(()),
        Ok(code) => Err(Failure {
            code,
            error: ChildExited(code).into(),
        }),
        Err(e) => Err(Failure {
            code: e.exit_code().unwrap_or(crate::exit::FAILURE),
            error: e.into(),
        }),
    }
}
