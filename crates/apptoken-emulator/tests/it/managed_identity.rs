//! Managed identities: IMDS, App Service and Azure Arc, each user-assigned
//! id form, the refusals in each source's shape, string-typed answers, the
//! claims of the tokens, IMDS's limits mode (on the emulator's clock, and
//! with requests held in flight), faults, and a managed identity's token as
//! an app's federated client assertion, end to end.

use std::time::Duration;

use apptoken_emulator::{Config, Emulator, Fault, ManagedIdentityInfo, Target};
use serde_json::Value;

use crate::support::{Answer, Harness, claims};

/// The embedded configuration's app that trusts the user-assigned identity.
const MI_FEDERATED_APP: &str = "6a1c3e5f-7b9d-4f2a-8c4e-0a2b4c6d8e21";
const SAMPLE: &str = "api://apptoken-sample-api";
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

async fn start_with(f: impl FnOnce(Config, &std::path::Path) -> Config) -> Harness {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = f(Config::embedded(dir.path()).expect("embedded"), dir.path());
    let emu = Emulator::start(config, "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("start");
    Harness {
        emu,
        dir,
        http: reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client"),
    }
}

async fn start() -> Harness {
    start_with(|c, _| c).await
}

fn identity(h: &Harness, kind: &str) -> ManagedIdentityInfo {
    h.emu
        .info()
        .managed_identities
        .iter()
        .find(|m| m.kind == kind)
        .cloned()
        .expect("identity")
}

impl Harness {
    async fn mi_get(&self, path: &str, query: &[(&str, &str)], headers: &[(&str, &str)]) -> Answer {
        let mut request = self
            .http
            .get(format!("{}{path}", self.emu.base_url()))
            .query(query);
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        Answer::read(request.send().await.expect("send")).await
    }

    async fn imds(&self, query: &[(&str, &str)]) -> Answer {
        self.mi_get(
            "/metadata/identity/oauth2/token",
            query,
            &[("Metadata", "true")],
        )
        .await
    }

    async fn app_service(&self, query: &[(&str, &str)], header: Option<&str>) -> Answer {
        let headers: Vec<(&str, &str)> = header
            .map(|v| ("X-IDENTITY-HEADER", v))
            .into_iter()
            .collect();
        self.mi_get("/msi/token", query, &headers).await
    }
}

const IMDS_V1: (&str, &str) = ("api-version", "2018-02-01");

#[track_caller]
fn assert_all_strings(body: &Value, keys: &[&str]) {
    let object = body
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {body:#}"));
    assert_eq!(
        object
            .keys()
            .map(String::as_str)
            .collect::<std::collections::BTreeSet<_>>(),
        keys.iter().copied().collect(),
        "{body:#}"
    );
    for (k, v) in object {
        assert!(v.is_string(), "{k} is not a string: {body:#}");
    }
}

#[track_caller]
fn assert_imds_error(answer: &Answer, status: u16, error: &str, description: &str) {
    assert_eq!(answer.status.as_u16(), status, "{:#}", answer.body);
    assert_eq!(answer.body["error"], error, "{:#}", answer.body);
    let text = answer.body["error_description"]
        .as_str()
        .expect("description");
    assert!(text.contains(description), "{text:?} lacks {description:?}");
}

#[tokio::test]
async fn imds_issues_a_system_assigned_token_with_string_values_and_mi_claims() {
    let h = start().await;
    h.emu.freeze_clock();
    let now = h.emu.now().unix_timestamp();
    let system = identity(&h, "system");
    let answer = h.imds(&[IMDS_V1, ("resource", SAMPLE)]).await;
    assert_eq!(answer.status, 200, "{:#}", answer.body);
    assert_all_strings(
        &answer.body,
        &[
            "access_token",
            "refresh_token",
            "expires_in",
            "expires_on",
            "ext_expires_in",
            "not_before",
            "resource",
            "token_type",
            "client_id",
        ],
    );
    let b = &answer.body;
    assert_eq!(b["refresh_token"], "");
    assert_eq!(b["token_type"], "Bearer");
    assert_eq!(b["resource"], SAMPLE);
    assert_eq!(b["client_id"], system.client_id.as_str());
    assert_eq!(b["expires_in"], "86399");
    assert_eq!(b["expires_on"], (now + 86_399).to_string().as_str());
    assert_eq!(b["not_before"], (now - 300).to_string().as_str());

    let c = claims(b["access_token"].as_str().expect("token"));
    assert_eq!(c["idtyp"], "app");
    assert_eq!(c["oid"], system.object_id.as_str());
    assert_eq!(c["sub"], system.object_id.as_str());
    assert_eq!(c["appid"], system.client_id.as_str());
    assert_eq!(c["azp"], system.client_id.as_str());
    assert_eq!(c["xms_mirid"], system.resource_id.as_str());
    assert_eq!(c["tid"], system.tenant_id.as_str());
    assert_eq!(c["aud"], SAMPLE);
    assert_eq!(
        c["iss"],
        format!("{}/{}/v2.0", h.emu.base_url(), system.tenant_id).as_str()
    );
    assert_eq!(c["exp"].as_i64(), Some(now + 86_400));
    assert_eq!(c["roles"], serde_json::json!(["Users.Read.All"]));

    // Signed with the emulator's keys: the sample API accepts it.
    let users = format!("{}/users", h.emu.info().sample_api);
    let token = b["access_token"].as_str().expect("token");
    assert_eq!(h.get(&users, Some(token)).await.status, 200);
    assert_eq!(h.emu.stats().managed_identity("imds", "success"), 1);
}

#[tokio::test]
async fn imds_accepts_each_user_assigned_id_form_and_newer_api_versions() {
    let h = start().await;
    let user = identity(&h, "user");
    for (name, value) in [
        ("client_id", user.client_id.as_str()),
        ("object_id", user.object_id.as_str()),
        ("msi_res_id", user.resource_id.as_str()),
        ("mi_res_id", user.resource_id.as_str()),
    ] {
        for version in ["2018-02-01", "2019-08-01"] {
            let answer = h
                .imds(&[
                    ("api-version", version),
                    ("resource", SAMPLE),
                    (name, value),
                ])
                .await;
            assert_eq!(answer.status, 200, "{name} {version}: {:#}", answer.body);
            assert_eq!(answer.body["client_id"], user.client_id.as_str());
            let c = claims(answer.body["access_token"].as_str().expect("token"));
            assert_eq!(c["oid"], user.object_id.as_str(), "{name}");
            assert_eq!(c["xms_mirid"], user.resource_id.as_str(), "{name}");
        }
    }
    // A trailing '/' is kept in `resource` and `aud`, and still matches.
    let answer = h
        .imds(&[IMDS_V1, ("resource", "api://apptoken-sample-api/")])
        .await;
    assert_eq!(answer.status, 200, "{:#}", answer.body);
    assert_eq!(answer.body["resource"], "api://apptoken-sample-api/");
    let c = claims(answer.body["access_token"].as_str().expect("token"));
    assert_eq!(c["aud"], "api://apptoken-sample-api/");
}

#[tokio::test]
async fn imds_refusals_have_imds_error_shape() {
    let h = start().await;
    let user = identity(&h, "user");
    let no_header = h
        .mi_get(
            "/metadata/identity/oauth2/token",
            &[IMDS_V1, ("resource", SAMPLE)],
            &[],
        )
        .await;
    assert_imds_error(
        &no_header,
        400,
        "invalid_request",
        "Required metadata header not specified",
    );
    let false_header = h
        .mi_get(
            "/metadata/identity/oauth2/token",
            &[IMDS_V1, ("resource", SAMPLE)],
            &[("Metadata", "false")],
        )
        .await;
    assert_eq!(false_header.status, 400);
    let proxied = h
        .mi_get(
            "/metadata/identity/oauth2/token",
            &[IMDS_V1, ("resource", SAMPLE)],
            &[("Metadata", "true"), ("X-Forwarded-For", "10.0.0.1")],
        )
        .await;
    assert_imds_error(&proxied, 400, "invalid_request", "X-Forwarded-For");
    assert_imds_error(
        &h.imds(&[("resource", SAMPLE)]).await,
        400,
        "invalid_request",
        "api-version was not specified",
    );
    assert_imds_error(
        &h.imds(&[("api-version", "2017-01-01"), ("resource", SAMPLE)])
            .await,
        400,
        "invalid_request",
        "api-version '2017-01-01' is invalid",
    );
    assert_imds_error(
        &h.imds(&[
            IMDS_V1,
            ("resource", SAMPLE),
            ("client_id", &user.client_id),
            ("object_id", &user.object_id),
        ])
        .await,
        400,
        "invalid_request",
        "Only one of",
    );
    assert_imds_error(
        &h.imds(&[
            IMDS_V1,
            ("resource", SAMPLE),
            ("client_id", "00000000-0000-0000-0000-000000000000"),
        ])
        .await,
        400,
        "invalid_request",
        "Identity not found",
    );
    // The system-assigned identity's client id does not name a user-assigned one.
    let system = identity(&h, "system");
    assert_imds_error(
        &h.imds(&[
            IMDS_V1,
            ("resource", SAMPLE),
            ("client_id", &system.client_id),
        ])
        .await,
        400,
        "invalid_request",
        "Identity not found",
    );
    assert_imds_error(
        &h.imds(&[IMDS_V1]).await,
        400,
        "invalid_request",
        "Required audience",
    );
    assert_imds_error(
        &h.imds(&[IMDS_V1, ("resource", "https://vault.azure.net")])
            .await,
        400,
        "invalid_resource",
        "AADSTS500011",
    );
    assert_imds_error(
        &h.imds(&[IMDS_V1, ("resource", "api://apptoken-sample-api/.default")])
            .await,
        400,
        "invalid_resource",
        "without '/.default'",
    );
    assert_eq!(h.emu.stats().managed_identity("imds", "400"), 11);
}

#[tokio::test]
async fn app_service_answers_its_shape_for_each_id_form_and_checks_the_header() {
    let h = start().await;
    let secret = h.emu.info().identity_header.clone();
    assert!(secret.len() >= 16, "{secret:?}");
    assert_eq!(
        h.emu.info().identity_endpoint,
        format!("{}/msi/token", h.emu.base_url())
    );
    let v = ("api-version", "2019-08-01");
    let system = identity(&h, "system");
    let answer = h
        .app_service(&[v, ("resource", SAMPLE)], Some(&secret))
        .await;
    assert_eq!(answer.status, 200, "{:#}", answer.body);
    assert_all_strings(
        &answer.body,
        &[
            "access_token",
            "expires_on",
            "resource",
            "token_type",
            "client_id",
        ],
    );
    assert_eq!(answer.body["client_id"], system.client_id.as_str());
    assert!(
        answer.body["expires_on"]
            .as_str()
            .expect("s")
            .parse::<i64>()
            .is_ok()
    );

    let user = identity(&h, "user");
    for (name, value) in [
        ("client_id", user.client_id.as_str()),
        ("principal_id", user.object_id.as_str()),
        ("object_id", user.object_id.as_str()),
        ("mi_res_id", user.resource_id.as_str()),
    ] {
        let answer = h
            .app_service(&[v, ("resource", SAMPLE), (name, value)], Some(&secret))
            .await;
        assert_eq!(answer.status, 200, "{name}: {:#}", answer.body);
        let c = claims(answer.body["access_token"].as_str().expect("token"));
        assert_eq!(c["oid"], user.object_id.as_str(), "{name}");
    }

    let missing = h.app_service(&[v, ("resource", SAMPLE)], None).await;
    assert_eq!(missing.status, 401, "{:#}", missing.body);
    assert_eq!(missing.body["statusCode"], 401);
    assert!(missing.body["message"].is_string());
    let wrong = h
        .app_service(&[v, ("resource", SAMPLE)], Some("not-the-secret"))
        .await;
    assert_eq!(wrong.status, 403, "{:#}", wrong.body);
    assert_eq!(wrong.body["statusCode"], 403);
    let unknown = h
        .app_service(
            &[
                v,
                ("resource", SAMPLE),
                ("client_id", "00000000-0000-0000-0000-000000000000"),
            ],
            Some(&secret),
        )
        .await;
    assert_eq!(unknown.status, 400);
    assert_eq!(unknown.body["statusCode"], 400);
    assert_eq!(unknown.body["message"], "Identity not found");
    let old = h
        .app_service(
            &[("api-version", "2017-09-01"), ("resource", SAMPLE)],
            Some(&secret),
        )
        .await;
    assert_eq!(old.status, 400, "{:#}", old.body);
    let stats = h.emu.stats();
    assert_eq!(stats.managed_identity("app_service", "success"), 5);
    assert_eq!(stats.managed_identity("app_service", "401"), 1);
    assert_eq!(stats.managed_identity("app_service", "403"), 1);
}

#[tokio::test]
async fn arc_challenges_with_a_key_file_and_accepts_its_contents() {
    let keys = tempfile::tempdir().expect("key dir");
    let key_dir = keys.path().join("Tokens");
    let kd = key_dir.clone();
    let h = start_with(move |c, _| c.with_arc_key_dir(&kd)).await;
    assert_eq!(h.emu.info().arc_key_dir, key_dir);
    let path = "/arc/metadata/identity/oauth2/token";
    let v = ("api-version", "2020-06-01");
    let q = [v, ("resource", SAMPLE)];
    let meta = ("Metadata", "true");

    let first = h.mi_get(path, &q, &[meta]).await;
    assert_eq!(first.status, 401, "{:#}", first.body);
    let challenge = first.headers["www-authenticate"].to_str().expect("ascii");
    let file = challenge
        .strip_prefix("Basic realm=")
        .expect("Basic realm=");
    let file = std::path::Path::new(file);
    assert!(file.is_absolute() && file.starts_with(&key_dir), "{file:?}");
    assert_eq!(file.extension().and_then(|e| e.to_str()), Some("key"));
    let contents = std::fs::read_to_string(file).expect("key file");
    assert!(!contents.is_empty() && contents.len() <= 4096);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(file).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    let auth = format!("Basic {contents}");
    let ok = h.mi_get(path, &q, &[meta, ("Authorization", &auth)]).await;
    assert_eq!(ok.status, 200, "{:#}", ok.body);
    assert_eq!(
        ok.body["client_id"],
        identity(&h, "system").client_id.as_str()
    );
    assert!(ok.body["expires_on"].is_string() && ok.body["expires_in"].is_string());
    // MSAL and azure-identity send 2019-11-01.
    let older = h
        .mi_get(
            path,
            &[("api-version", "2019-11-01"), ("resource", SAMPLE)],
            &[meta, ("Authorization", &auth)],
        )
        .await;
    assert_eq!(older.status, 200, "{:#}", older.body);

    let wrong = h
        .mi_get(path, &q, &[meta, ("Authorization", "Basic 0000")])
        .await;
    assert_eq!(wrong.status, 401);
    let another = wrong.headers["www-authenticate"].to_str().expect("ascii");
    assert_ne!(another, challenge, "a fresh key file per challenge");
    let no_meta = h.mi_get(path, &q, &[("Authorization", &auth)]).await;
    assert_eq!(no_meta.status, 400);
    let user = identity(&h, "user");
    let by_user = h
        .mi_get(
            path,
            &[v, ("resource", SAMPLE), ("client_id", &user.client_id)],
            &[meta, ("Authorization", &auth)],
        )
        .await;
    assert_imds_error(&by_user, 400, "invalid_request", "system-assigned");
    let stats = h.emu.stats();
    assert_eq!(stats.managed_identity("arc", "401"), 2);
    assert_eq!(stats.managed_identity("arc", "success"), 2);
}

#[tokio::test]
async fn limits_mode_refuses_a_21st_request_within_a_second_of_the_emulators_clock() {
    let h = start_with(|c, _| c.with_imds_limits(true)).await;
    assert!(h.emu.info().imds_limits);
    h.emu.freeze_clock();
    for i in 0..20 {
        let answer = h.imds(&[IMDS_V1, ("resource", SAMPLE)]).await;
        assert_eq!(answer.status, 200, "request {i}: {:#}", answer.body);
    }
    let refused = h.imds(&[IMDS_V1, ("resource", SAMPLE)]).await;
    assert_imds_error(&refused, 429, "too_many_requests", "20 requests per second");
    h.emu.advance_clock(Duration::from_millis(999));
    assert_eq!(h.imds(&[IMDS_V1, ("resource", SAMPLE)]).await.status, 429);
    h.emu.advance_clock(Duration::from_millis(1));
    assert_eq!(h.imds(&[IMDS_V1, ("resource", SAMPLE)]).await.status, 200);
    assert_eq!(h.emu.stats().managed_identity("imds", "429"), 2);
}

#[tokio::test]
async fn limits_mode_refuses_a_sixth_concurrent_request() {
    let h = start_with(|c, _| c.with_imds_limits(true)).await;
    h.emu.hold_managed_identity();
    let url = format!("{}/metadata/identity/oauth2/token", h.emu.base_url());
    let held: Vec<_> = (0..5)
        .map(|_| {
            let request = h
                .http
                .get(&url)
                .query(&[IMDS_V1, ("resource", SAMPLE)])
                .header("Metadata", "true");
            tokio::spawn(async move { request.send().await.expect("send").status() })
        })
        .collect();
    // The timeouts are failure guards, never timing: a broken limit would
    // hold the sixth request forever instead of refusing it.
    let guard = Duration::from_secs(30);
    tokio::time::timeout(guard, h.emu.wait_held_managed_identity(5))
        .await
        .expect("five requests held");
    let sixth = tokio::time::timeout(guard, h.imds(&[IMDS_V1, ("resource", SAMPLE)]))
        .await
        .expect("the sixth request was held, not refused: the 5-concurrent limit is not enforced");
    assert_imds_error(&sixth, 429, "too_many_requests", "5 concurrent");
    h.emu.release_managed_identity();
    for task in held {
        assert_eq!(task.await.expect("join"), 200);
    }
    // Slots are released: the next one passes.
    assert_eq!(h.imds(&[IMDS_V1, ("resource", SAMPLE)]).await.status, 200);
}

#[tokio::test]
async fn without_limits_mode_held_requests_are_not_refused() {
    let h = start().await;
    h.emu.hold_managed_identity();
    let url = format!("{}/metadata/identity/oauth2/token", h.emu.base_url());
    let held: Vec<_> = (0..6)
        .map(|_| {
            let request = h
                .http
                .get(&url)
                .query(&[IMDS_V1, ("resource", SAMPLE)])
                .header("Metadata", "true");
            tokio::spawn(async move { request.send().await.expect("send").status() })
        })
        .collect();
    h.emu.wait_held_managed_identity(6).await;
    h.emu.release_managed_identity();
    for task in held {
        assert_eq!(task.await.expect("join"), 200);
    }
}

#[tokio::test]
async fn a_managed_identity_token_is_an_apps_federated_client_assertion() {
    let h = start().await;
    let user = identity(&h, "user");
    let mi = h
        .imds(&[
            IMDS_V1,
            ("resource", "api://AzureADTokenExchange"),
            ("client_id", &user.client_id),
        ])
        .await;
    assert_eq!(mi.status, 200, "{:#}", mi.body);
    let assertion = mi.body["access_token"].as_str().expect("token").to_string();
    assert_eq!(claims(&assertion)["aud"], "api://AzureADTokenExchange");
    let tenant = h.tenant();
    let form = |assertion: &str| {
        vec![
            ("grant_type", "client_credentials".to_string()),
            ("client_id", MI_FEDERATED_APP.to_string()),
            ("client_assertion_type", JWT_BEARER.to_string()),
            ("client_assertion", assertion.to_string()),
            ("scope", format!("{SAMPLE}/.default")),
        ]
    };
    let post = |form: Vec<(&'static str, String)>| {
        let url = h.token_url(&tenant);
        let http = h.http.clone();
        async move { Answer::read(http.post(url).form(&form).send().await.expect("send")).await }
    };
    let app = post(form(&assertion)).await;
    let token = app.access_token().to_string();
    let c = claims(&token);
    assert_eq!(c["azp"], MI_FEDERATED_APP);
    assert_eq!(c["azpacr"], "2");
    assert_eq!(c["roles"], serde_json::json!(["Users.Read.All"]));
    let users = format!("{}/users", h.emu.info().sample_api);
    assert_eq!(h.get(&users, Some(&token)).await.status, 200);

    // The system-assigned identity is not the credential's subject.
    let system = h
        .imds(&[IMDS_V1, ("resource", "api://AzureADTokenExchange")])
        .await;
    let other = post(form(system.body["access_token"].as_str().expect("token"))).await;
    other.assert_aad(
        401,
        "invalid_client",
        700213,
        "No matching federated identity record",
    );
    // A token for another audience is refused.
    let sample = h
        .imds(&[
            IMDS_V1,
            ("resource", SAMPLE),
            ("client_id", &user.client_id),
        ])
        .await;
    let wrong_aud = post(form(sample.body["access_token"].as_str().expect("token"))).await;
    assert_eq!(wrong_aud.status, 401, "{:#}", wrong_aud.body);
    assert_eq!(
        wrong_aud.body["error"], "invalid_client",
        "{:#}",
        wrong_aud.body
    );
    // A tampered signature is refused.
    let mut tampered = assertion.clone();
    tampered.truncate(tampered.len() - 4);
    tampered.push_str("AAAA");
    let bad = post(form(&tampered)).await;
    assert_eq!(bad.body["error"], "invalid_client", "{:#}", bad.body);
}

#[tokio::test]
async fn faults_apply_to_the_managed_identity_endpoints() {
    let h = start().await;
    let q = [IMDS_V1, ("resource", SAMPLE)];
    h.emu
        .add_fault(Fault::imds_updating(Target::ManagedIdentity).times(1));
    assert_imds_error(
        &h.imds(&q).await,
        410,
        "service_unavailable",
        "being updated",
    );
    h.emu
        .add_fault(Fault::imds_throttle(Target::ManagedIdentity).times(1));
    let throttled = h.imds(&q).await;
    assert_eq!(throttled.status, 429);
    assert_eq!(throttled.headers["retry-after"], "1");
    h.emu
        .add_fault(Fault::mi_numbers(Target::ManagedIdentity).times(1));
    let numbers = h.imds(&q).await;
    assert_eq!(numbers.status, 200);
    assert!(numbers.body["expires_on"].is_number(), "{:#}", numbers.body);
    h.emu
        .add_fault(Fault::mi_no_token(Target::ManagedIdentity).times(1));
    let no_token = h.imds(&q).await;
    assert_eq!(no_token.status, 200);
    assert!(no_token.body.get("access_token").is_none());
    h.emu
        .add_fault(Fault::html_page(Target::ManagedIdentity).times(1));
    let html = h.imds(&q).await;
    assert!(
        html.headers["content-type"]
            .to_str()
            .expect("ct")
            .starts_with("text/html")
    );
    h.emu.add_fault(
        Fault::on(Target::Path("/msi/token".into()))
            .status(500)
            .times(1),
    );
    let secret = h.emu.info().identity_header.clone();
    let app_service = h
        .app_service(
            &[("api-version", "2019-08-01"), ("resource", SAMPLE)],
            Some(&secret),
        )
        .await;
    assert_eq!(app_service.status, 500);
    h.emu
        .add_fault(Fault::on(Target::ManagedIdentity).status(404).times(1));
    assert_eq!(h.imds(&q).await.status, 404);
    // Faults used up: a normal answer, and every request counted.
    assert_eq!(h.imds(&q).await.status, 200);
    let stats = h.emu.stats();
    assert_eq!(stats.managed_identity("imds", "fault:410"), 1);
    assert_eq!(stats.managed_identity("imds", "fault:200"), 3);
    assert_eq!(stats.managed_identity("app_service", "fault:500"), 1);
    assert_eq!(stats.managed_identity("imds", "success"), 1);
}

#[tokio::test]
async fn info_lists_the_endpoints_and_identities() {
    let h = start().await;
    let info = h.emu.info();
    let base = h.emu.base_url();
    assert_eq!(info.imds_base_url, base);
    assert_eq!(
        info.arc_endpoint,
        format!("{base}/arc/metadata/identity/oauth2/token")
    );
    assert_eq!(info.arc_key_dir, h.dir.path().join("arc-tokens"));
    assert_eq!(info.managed_identities.len(), 2);
    assert_eq!(info.managed_identities[0].kind, "system");
    let json: Value = serde_json::from_slice(
        &std::fs::read(h.dir.path().join("emulator.json")).expect("emulator.json"),
    )
    .expect("json");
    assert_eq!(json["identity_header"], info.identity_header.as_str());
    assert_eq!(json["managed_identities"][1]["kind"], "user");
}
