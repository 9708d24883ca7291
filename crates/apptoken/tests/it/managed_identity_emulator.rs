//! Managed identity against the emulator, end to end: each source (IMDS,
//! App Service, Azure Arc), each user-assigned id form, the chain choosing
//! it from the environment's variables, and a managed identity as an app's
//! federated credential. The emulator is an independent implementation of
//! the endpoints (it shares no code with this client), so these are the
//! wire formats' witnesses; `managed_identity.rs` reaches the branches.

use std::sync::Arc;

use apptoken::{
    Authority, ClientConfig, ConfidentialClient, Credential, CredentialType, ManagedIdentity,
    ManagedIdentityId, ManualClock,
};
use apptoken_emulator::{Config, Emulator, EmulatorInfo, RunningEmulator};
use base64::Engine;

/// The embedded configuration's app whose federated credential trusts the
/// user-assigned identity (docs/EMULATOR.md, "Managed identities").
const FEDERATED_APP: &str = "6a1c3e5f-7b9d-4f2a-8c4e-0a2b4c6d8e21";

async fn emulator() -> (RunningEmulator, EmulatorInfo, tempfile::TempDir) {
    let state = tempfile::tempdir().unwrap();
    let config = Config::embedded(state.path()).unwrap();
    let emu = Emulator::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let info = emu.info().clone();
    (emu, info, state)
}

fn claims(token: &str) -> serde_json::Value {
    let part = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// The embedded configuration's identity of this kind (`system`, `user`).
fn identity(info: &EmulatorInfo, kind: &str) -> apptoken_emulator::ManagedIdentityInfo {
    info.managed_identities
        .iter()
        .find(|m| m.kind == kind)
        .unwrap_or_else(|| panic!("the embedded emulator has no {kind} identity"))
        .clone()
}

fn client(mi: ManagedIdentity) -> ConfidentialClient {
    ConfidentialClient::builder()
        .managed_identity(mi)
        .clock(Arc::new(ManualClock::starting_now()))
        .build()
        .unwrap()
}

#[tokio::test]
async fn every_source_and_id_form_gets_the_identitys_token() {
    let (emu, info, _state) = emulator().await;
    let scope = &info.sample_scope;
    let system = identity(&info, "system");
    let user = identity(&info, "user");
    let ids = [
        (ManagedIdentityId::SystemAssigned, &system),
        (ManagedIdentityId::ClientId(user.client_id.clone()), &user),
        (ManagedIdentityId::ObjectId(user.object_id.clone()), &user),
        (
            ManagedIdentityId::ResourceId(user.resource_id.clone()),
            &user,
        ),
    ];
    for (id, who) in &ids {
        let sources = [
            ManagedIdentity::imds(&info.imds_base_url, id.clone()).unwrap(),
            ManagedIdentity::app_service(
                &info.identity_endpoint,
                info.identity_header.clone(),
                id.clone(),
            )
            .unwrap(),
        ];
        for mi in sources {
            let kind = mi.kind();
            let t = client(mi).acquire_token(&[scope]).await.unwrap();
            let c = claims(t.secret());
            assert_eq!(c["oid"], who.object_id.as_str(), "{kind} {id}");
            assert_eq!(c["idtyp"], "app", "{kind} {id}");
            assert_eq!(c["tid"], who.tenant_id.as_str(), "{kind} {id}");
        }
    }
    // Azure Arc: system-assigned only, through its challenge.
    let arc = ManagedIdentity::azure_arc(&info.arc_endpoint)
        .unwrap()
        .with_arc_key_dir(&info.arc_key_dir);
    let t = client(arc).acquire_token(&[scope]).await.unwrap();
    assert_eq!(claims(t.secret())["oid"], system.object_id.as_str());
    // An identity the host does not have: the endpoint's 400, not retried.
    let e = client(
        ManagedIdentity::imds(
            &info.imds_base_url,
            ManagedIdentityId::ClientId("00000000-0000-4000-8000-00000000dead".into()),
        )
        .unwrap(),
    )
    .acquire_token(&[scope])
    .await
    .unwrap_err();
    assert_eq!(e.status(), Some(400), "{e}");
    emu.shutdown().await;
}

#[tokio::test]
async fn the_chain_finds_the_identity_from_the_environment_as_the_sdks_do() {
    let (emu, info, _state) = emulator().await;
    let user = identity(&info, "user");
    let vars = |pairs: Vec<(&'static str, String)>| {
        ClientConfig::from_env_vars(move |k| {
            pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone())
        })
        .unwrap()
    };
    // App Service's variables, AZURE_CLIENT_ID naming the user-assigned one.
    let cfg = vars(vec![
        ("IDENTITY_ENDPOINT", info.identity_endpoint.clone()),
        ("IDENTITY_HEADER", info.identity_header.clone()),
        ("AZURE_CLIENT_ID", user.client_id.clone()),
    ]);
    let choice = cfg.choose_credential().unwrap();
    assert_eq!(choice.credential, CredentialType::ManagedIdentity);
    assert!(choice.steps.last().unwrap().reason.contains("App Service"));
    let t = cfg
        .build_client()
        .unwrap()
        .acquire_token(&[&info.sample_scope])
        .await
        .unwrap();
    assert_eq!(claims(t.secret())["oid"], user.object_id.as_str());
    // IMDS where AZURE_POD_IDENTITY_AUTHORITY_HOST says: probed, then used.
    let cfg = vars(vec![(
        "AZURE_POD_IDENTITY_AUTHORITY_HOST",
        info.imds_base_url.clone(),
    )]);
    let t = cfg
        .build_client()
        .unwrap()
        .acquire_token(&[&info.sample_scope])
        .await
        .unwrap();
    assert_eq!(claims(t.secret())["idtyp"], "app");
    emu.shutdown().await;
}

#[tokio::test]
async fn a_managed_identity_is_an_apps_federated_credential() {
    let (emu, info, _state) = emulator().await;
    let user = identity(&info, "user");
    let mi = client(
        ManagedIdentity::imds(
            &info.imds_base_url,
            ManagedIdentityId::ClientId(user.client_id.clone()),
        )
        .unwrap(),
    );
    let app = ConfidentialClient::builder()
        .authority(
            Authority::parse(&format!("{}/{}", info.authority_host, info.tenant_id)).unwrap(),
        )
        .client_id(FEDERATED_APP)
        .credential(Credential::managed_identity_client(mi))
        .build()
        .unwrap();
    let t = app.acquire_token(&[&info.sample_scope]).await.unwrap();
    let c = claims(t.secret());
    assert_eq!(
        c["azp"].as_str().or(c["appid"].as_str()),
        Some(FEDERATED_APP)
    );
    // Another app's id with the same identity: no federated credential trusts it.
    let mi = client(
        ManagedIdentity::imds(
            &info.imds_base_url,
            ManagedIdentityId::ClientId(user.client_id.clone()),
        )
        .unwrap(),
    );
    let other = ConfidentialClient::builder()
        .authority(
            Authority::parse(&format!("{}/{}", info.authority_host, info.tenant_id)).unwrap(),
        )
        .client_id(&info.client_id)
        .credential(Credential::managed_identity_client(mi))
        .build()
        .unwrap();
    let e = other
        .acquire_token(&[&info.sample_scope])
        .await
        .unwrap_err();
    assert!(e.server_error().is_some(), "{e}");
    emu.shutdown().await;
}
