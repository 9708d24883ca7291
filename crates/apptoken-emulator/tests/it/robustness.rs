//! Bad input never yields a 5xx or a panic: property tests over the token
//! endpoint's request parsing and every route, in-process (no socket); and
//! extreme numbers (dates, lifetimes, clock moves) where the emulator does
//! arithmetic on them, including signed client assertions against a running
//! emulator on 127.0.0.1.

use std::sync::OnceLock;

use apptoken_emulator::fuzzing::Harness;
use base64::Engine as _;
use proptest::prelude::*;
use serde_json::{Value, json};

use crate::support::{self, Alg, sign};

fn harness() -> &'static Harness {
    static H: OnceLock<Harness> = OnceLock::new();
    H.get_or_init(|| Harness::new().expect("harness"))
}

const CLIENT: &str = "33333333-3333-3333-3333-333333333333";
const FORM: &str = "application/x-www-form-urlencoded";

fn tenant() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("11111111-1111-1111-1111-111111111111".to_string()),
        Just("fuzz.example.com".to_string()),
        Just("common".to_string()),
        Just("00000000-0000-0000-0000-000000000000".to_string()),
        any::<String>(),
    ]
}

/// A JWT-looking value: random parts, some valid base64 JSON.
fn garbage_jwt() -> impl Strategy<Value = String> {
    let part = prop_oneof![
        any::<String>(),
        "[A-Za-z0-9_-]{0,40}",
        prop::collection::vec(any::<u8>(), 0..64).prop_map(|b| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
        }),
        Just("eyJhbGciOiJSUzI1NiIsIng1dCI6ImFiYyJ9".to_string()),
        Just("eyJpc3MiOiJodHRwOi8vMTI3LjAuMC4xOjkvX2VtdWxhdG9yL2ZlZGVyYXRpb24vZnV6eiIsImV4cCI6IjEifQ".to_string()),
    ];
    prop::collection::vec(part, 1..5).prop_map(|p| p.join("."))
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("client_credentials".to_string()),
        Just(CLIENT.to_string()),
        Just("pw".to_string()),
        Just("api://fuzz/.default".to_string()),
        Just("urn:ietf:params:oauth:client-assertion-type:jwt-bearer".to_string()),
        Just("{\"access_token\":{\"xms_cc\":{\"values\":[\"cp1\"]}}}".to_string()),
        garbage_jwt(),
        any::<String>(),
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("grant_type"),
        Just("client_id"),
        Just("client_secret"),
        Just("scope"),
        Just("client_assertion"),
        Just("client_assertion_type"),
        Just("claims"),
    ]
    .prop_map(str::to_string)
    .boxed()
    .prop_union(any::<String>().boxed())
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec((key(), value()), 0..8).prop_map(|pairs| {
            url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(pairs)
                .finish()
                .into_bytes()
        }),
        prop::collection::vec(any::<u8>(), 0..512),
        Just(b"grant_type=client_credentials&client_id=%FF%FE&scope=%C3%28".to_vec()),
        Just(b"{\"grant_type\":\"client_credentials\"}".to_vec()),
    ]
}

fn headers() -> impl Strategy<Value = Vec<(Vec<u8>, Vec<u8>)>> {
    let content_type = prop_oneof![
        Just(FORM.as_bytes().to_vec()),
        Just(b"application/x-www-form-urlencoded; charset=utf-8".to_vec()),
        Just(b"application/json".to_vec()),
        Just(b"text/plain".to_vec()),
        prop::collection::vec(any::<u8>(), 0..40),
    ];
    let authorization = prop_oneof![
        any::<String>().prop_map(|s| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(s)
            )
            .into_bytes()
        }),
        Just(
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{CLIENT}:pw"))
            )
            .into_bytes()
        ),
        prop::collection::vec(any::<u8>(), 0..60),
    ];
    (
        prop::option::of(content_type),
        prop::option::of(authorization),
        prop::option::of(prop::collection::vec(any::<u8>(), 0..40)),
        prop::option::of(prop::collection::vec(any::<u8>(), 0..40)),
    )
        .prop_map(|(ct, auth, crid, host)| {
            let mut h = Vec::new();
            if let Some(v) = ct {
                h.push((b"content-type".to_vec(), v));
            }
            if let Some(v) = auth {
                h.push((b"authorization".to_vec(), v));
            }
            if let Some(v) = crid {
                h.push((b"client-request-id".to_vec(), v));
            }
            if let Some(v) = host {
                h.push((b"host".to_vec(), v));
            }
            h
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn token_endpoint_answers_4xx_in_entra_shape(t in tenant(), h in headers(), b in body()) {
        let (status, body) = harness().token_request(&t, &h, b);
        prop_assert!(status < 500, "status {status}: {}", String::from_utf8_lossy(&body));
        if status != 200 {
            let v: Value = serde_json::from_slice(&body).expect("JSON error body");
            prop_assert!(v["error"].is_string(), "{v}");
            prop_assert!(v["error_codes"].is_array(), "{v}");
        }
    }

    #[test]
    fn every_route_survives_garbage(
        method in prop_oneof![Just("GET"), Just("POST"), Just("DELETE"), Just("PUT"), Just("OPTIONS")],
        path in prop_oneof![
            Just("/common/discovery/instance?authorization_endpoint=%ZZ".to_string()),
            Just("/x/v2.0/.well-known/openid-configuration".to_string()),
            Just("/fuzz.example.com/discovery/v2.0/keys".to_string()),
            Just("/fuzz.example.com/adminconsent?client_id=x&redirect_uri=y".to_string()),
            Just("/v1.0/users?$top=abc&$skiptoken=%FF".to_string()),
            Just("/v1.0/users/%00".to_string()),
            Just("/_emulator/consent".to_string()),
            Just("/_emulator/revoke".to_string()),
            Just("/_emulator/faults".to_string()),
            Just("/_emulator/clock".to_string()),
            Just("/_emulator/token-lifetimes".to_string()),
            Just("/_emulator/federation/x/token".to_string()),
            Just("/_emulator/federation/%2E%2E/jwks".to_string()),
            "/[a-z0-9%/._-]{0,40}",
        ],
        h in headers(),
        b in body(),
    ) {
        let mut h = h;
        h.push((b"authorization".to_vec(), b"Bearer e30.e30.".to_vec()));
        let (status, body) = harness().request(method.as_bytes(), &path, &h, b);
        prop_assert!(status < 500, "{method} {path}: {status}: {}", String::from_utf8_lossy(&body));
    }
}

/// A managed-identity query: known and garbage names, known and garbage values.
fn mi_query() -> impl Strategy<Value = String> {
    let name = prop_oneof![
        Just("api-version".to_string()),
        Just("resource".to_string()),
        Just("client_id".to_string()),
        Just("object_id".to_string()),
        Just("principal_id".to_string()),
        Just("msi_res_id".to_string()),
        Just("mi_res_id".to_string()),
        key(),
    ];
    let val = prop_oneof![
        Just("2018-02-01".to_string()),
        Just("2019-08-01".to_string()),
        Just("api://fuzz".to_string()),
        Just("api://AzureADTokenExchange".to_string()),
        Just("77777777-7777-7777-7777-777777777777".to_string()),
        Just("88888888-8888-8888-8888-888888888888".to_string()),
        Just("/subscriptions/66666666-6666-6666-6666-666666666666/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id".to_string()),
        value(),
    ];
    prop::collection::vec((name, val), 0..6).prop_map(|pairs| {
        pairs
            .into_iter()
            .map(|(k, v)| {
                let enc = |t: &str| {
                    url::form_urlencoded::byte_serialize(t.as_bytes()).collect::<String>()
                };
                format!("{}={}", enc(&k), enc(&v))
            })
            .collect::<Vec<_>>()
            .join("&")
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// IMDS and App Service: never a 5xx, never a panic; a refusal is in
    /// the source's error shape, a success has only string values.
    #[test]
    fn managed_identity_endpoints_answer_in_their_shapes(
        app_service in any::<bool>(),
        q in mi_query(),
        h in headers(),
        metadata in any::<bool>(),
        secret in prop_oneof![Just(None), Just(Some("wrong".to_string())), value().prop_map(Some)],
    ) {
        let mut h = h;
        if metadata {
            h.push((b"metadata".to_vec(), b"true".to_vec()));
        }
        if let Some(s) = secret {
            h.push((b"x-identity-header".to_vec(), s.into_bytes()));
        }
        let path = if app_service { "/msi/token" } else { "/metadata/identity/oauth2/token" };
        let (status, body) = harness().request(b"GET", &format!("{path}?{q}"), &h, Vec::new());
        prop_assert!(status < 500, "{path}?{q}: {status}: {}", String::from_utf8_lossy(&body));
        let v: Value = serde_json::from_slice(&body).expect("JSON body");
        let object = v.as_object().expect("object");
        if status == 200 {
            prop_assert!(object.values().all(Value::is_string), "{v}");
        } else if app_service {
            prop_assert!(v["statusCode"].as_u64() == Some(u64::from(status)), "{v}");
            prop_assert!(v["message"].is_string(), "{v}");
        } else {
            prop_assert!(v["error"].is_string() && v["error_description"].is_string(), "{v}");
        }
    }
}

#[test]
fn huge_and_binary_bodies_answer_4xx() {
    let form = vec![(b"content-type".to_vec(), FORM.as_bytes().to_vec())];
    let (status, body) = harness().token_request("fuzz.example.com", &form, vec![b'a'; 70_000]);
    assert_eq!(status, 413);
    let v: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(v["error"], "invalid_request");
    let (status, _) = harness().token_request("fuzz.example.com", &form, vec![0xff; 1000]);
    assert_eq!(status, 400);
    // The valid request through the same entry point succeeds (the harness works).
    let ok = format!(
        "grant_type=client_credentials&client_id={CLIENT}&client_secret=pw&scope=api%3A%2F%2Ffuzz%2F.default"
    );
    let (status, body) = harness().token_request("fuzz.example.com", &form, ok.into_bytes());
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
}

// ---------------------------------------------------------------------------
// Extreme numbers where the emulator computes with them.
// ---------------------------------------------------------------------------

/// A running emulator (127.0.0.1:0) with its clock frozen, on a runtime of
/// its own: client assertions must be correctly signed to reach the date
/// checks, which only a certificate the test holds the key of allows.
fn signed() -> &'static (tokio::runtime::Runtime, support::Harness) {
    static S: OnceLock<(tokio::runtime::Runtime, support::Harness)> = OnceLock::new();
    S.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let h = runtime.block_on(support::start());
        h.emu.freeze_clock();
        (runtime, h)
    })
}

/// A date claim: an absolute value (the ends of i64 and around them) or one
/// relative to the emulator's frozen "now".
#[derive(Debug, Clone, Copy)]
enum Date {
    Abs(i64),
    Rel(i64),
}

impl Date {
    fn at(self, now: i64) -> i64 {
        match self {
            Date::Abs(v) => v,
            Date::Rel(d) => now + d,
        }
    }
}

fn date() -> impl Strategy<Value = Date> {
    prop_oneof![
        prop_oneof![
            Just(i64::MIN),
            Just(i64::MAX),
            Just(0),
            Just(-1),
            Just(253_402_300_799),
            Just(-62_135_596_800),
            (0i64..=600).prop_map(|d| i64::MIN + d),
            (0i64..=600).prop_map(|d| i64::MAX - d),
            any::<i64>(),
        ]
        .prop_map(Date::Abs),
        (-1_000i64..=1_000).prop_map(Date::Rel),
    ]
}

/// Any shape a NumericDate claim can be sent in.
fn date_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(|v| json!(v)),
        any::<u64>().prop_map(|v| json!(v)),
        Just(json!(u64::MAX)),
        any::<f64>().prop_map(|v| json!(v)),
        "-?[0-9]{0,25}(\\.[0-9]{0,6})?".prop_map(|v| json!(v)),
        Just(json!(null)),
        Just(json!(true)),
        Just(json!([1])),
    ]
}

fn client_assertion(exp: Value, nbf: Option<Value>, iat: Option<Value>) -> (u16, Value) {
    let (runtime, h) = signed();
    let tid = h.tenant();
    let id = h.client_id();
    let mut c = json!({"aud": h.token_url(&tid), "iss": id, "sub": id, "jti": "j", "exp": exp});
    if let Some(v) = nbf {
        c["nbf"] = v;
    }
    if let Some(v) = iat {
        c["iat"] = v;
    }
    let assertion = sign(&h.key_pem_path(), Alg::Rs256, &h.x5t_header(), &c);
    // A handler that panics drops the connection: `assertion_grant` panics
    // on the send error and proptest reports (and shrinks) the input.
    let answer = runtime.block_on(h.assertion_grant(&tid, &assertion));
    (answer.status.as_u16(), answer.body)
}

/// Its own router: these move its clock to the ends of time.
fn clock_harness() -> &'static Harness {
    static H: OnceLock<Harness> = OnceLock::new();
    H.get_or_init(|| Harness::new().expect("harness"))
}

/// One request to the in-process router with a JSON body.
#[derive(Debug, Clone)]
enum Op {
    Post(&'static str, Value),
    Mint(String, Value),
    Rotate,
    /// A token with the secret, then the sample API with it.
    TokenAndApi,
}

fn admin_op() -> impl Strategy<Value = Op> {
    let int = || {
        prop_oneof![
            Just(i64::MIN),
            Just(i64::MAX),
            Just(0i64),
            Just(-1),
            Just(1),
            any::<i64>(),
        ]
    };
    let big = || prop_oneof![Just(u64::MAX), Just(0u64), Just(1), any::<u64>()];
    let instant = prop_oneof![
        Just("9999-12-31T23:59:59Z".to_string()),
        Just("9999-12-31T23:59:59-23:59".to_string()),
        Just("0000-01-01T00:00:00Z".to_string()),
        Just("0000-01-01T00:00:00+23:59".to_string()),
        Just("1969-12-31T23:59:59Z".to_string()),
        Just("1970-01-01T00:00:00Z".to_string()),
        "[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-6][0-9](\\.[0-9]{1,9})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])",
    ];
    prop_oneof![
        int().prop_map(|n| Op::Post("/_emulator/clock", json!({"advance_secs": n}))),
        instant.prop_map(|s| Op::Post("/_emulator/clock", json!({"set": s}))),
        Just(Op::Post("/_emulator/clock", json!({"freeze": true}))),
        Just(Op::Post("/_emulator/clock", json!({"resume": true}))),
        (big(), big(), big()).prop_map(|(e, x, r)| Op::Post(
            "/_emulator/token-lifetimes",
            json!({"expires_in": e, "ext_expires_in": x, "refresh_in": r})
        )),
        int().prop_map(|n| Op::Post("/_emulator/token-lifetimes", json!({"expires_in": n}))),
        ("[a-z]{1,3}", big())
            .prop_map(|(name, l)| Op::Mint(name, json!({"subject": "fuzz", "lifetime_secs": l}))),
        (big(), big(), any::<f64>(), any::<u16>(), any::<String>()).prop_map(
            |(delay, times, share, status, retry)| Op::Post(
                "/_emulator/faults",
                json!({"path": "/never-requested", "delay_ms": delay, "times": times,
                       "share": share, "status": status, "retry_after": retry})
            )
        ),
        Just(Op::Post("/_emulator/revoke", json!({"client_id": CLIENT}))),
        Just(Op::Rotate),
        Just(Op::TokenAndApi),
    ]
}

/// Back to a running clock at the real time, the configured lifetimes and
/// no faults, so that each case starts alike (and shrinks to its own cause).
fn reset_clock_harness() {
    let h = clock_harness();
    let json = vec![(b"content-type".to_vec(), b"application/json".to_vec())];
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .expect("format");
    for (method, path, body) in [
        ("DELETE", "/_emulator/faults", String::new()),
        ("POST", "/_emulator/token-lifetimes", "{}".to_string()),
        (
            "POST",
            "/_emulator/clock",
            json!({"freeze": true}).to_string(),
        ),
        ("POST", "/_emulator/clock", json!({"set": now}).to_string()),
        (
            "POST",
            "/_emulator/clock",
            json!({"resume": true}).to_string(),
        ),
    ] {
        let (status, body) = h.request(method.as_bytes(), path, &json, body.into_bytes());
        assert!(
            status < 300,
            "{method} {path}: {status} {}",
            String::from_utf8_lossy(&body)
        );
    }
}

fn run(op: &Op) -> Vec<(u16, Vec<u8>)> {
    let h = clock_harness();
    let json = vec![(b"content-type".to_vec(), b"application/json".to_vec())];
    match op {
        Op::Post(path, body) => {
            vec![h.request(b"POST", path, &json, body.to_string().into_bytes())]
        }
        Op::Mint(name, body) => vec![h.request(
            b"POST",
            &format!("/_emulator/federation/{name}/token"),
            &json,
            body.to_string().into_bytes(),
        )],
        Op::Rotate => vec![h.request(b"POST", "/_emulator/keys/rotate", &[], Vec::new())],
        Op::TokenAndApi => {
            let form = vec![(b"content-type".to_vec(), FORM.as_bytes().to_vec())];
            let body = format!(
                "grant_type=client_credentials&client_id={CLIENT}&client_secret=pw&scope=api%3A%2F%2Ffuzz%2F.default"
            );
            let token = h.token_request("fuzz.example.com", &form, body.into_bytes());
            let bearer = serde_json::from_slice::<Value>(&token.1)
                .ok()
                .and_then(|v| v["access_token"].as_str().map(str::to_string))
                .unwrap_or_default();
            let auth = vec![(
                b"authorization".to_vec(),
                format!("Bearer {bearer}").into_bytes(),
            )];
            let api = h.request(b"GET", "/v1.0/users?$top=999", &auth, Vec::new());
            let clock = h.request(b"GET", "/_emulator/clock", &[], Vec::new());
            vec![token, api, clock]
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Correctly signed assertions with `exp`/`nbf` anywhere in i64: the
    /// answer is exactly the one exact arithmetic gives (5 minutes of skew
    /// each way), never a panic or a wrapped-around comparison.
    #[test]
    fn assertion_date_checks_never_overflow(
        exp in date(),
        nbf in prop::option::of(date()),
        iat in prop::option::of(date()),
    ) {
        let now = signed().1.emu.now().unix_timestamp();
        let (exp, nbf, iat) = (exp.at(now), nbf.map(|d| d.at(now)), iat.map(|d| d.at(now)));
        let (status, body) = client_assertion(json!(exp), nbf.map(|v| json!(v)), iat.map(|v| json!(v)));
        let (now, skew) = (i128::from(now), 300);
        let in_range = i128::from(exp) + skew > now && nbf.is_none_or(|n| i128::from(n) - skew <= now);
        if in_range {
            prop_assert_eq!(status, 200, "{:#}", body);
        } else {
            prop_assert_eq!(status, 401, "{:#}", body);
            prop_assert_eq!(&body["error_codes"], &json!([700024]), "{:#}", body);
        }
    }

    /// Date claims of any JSON shape: 200, or 401 with AADSTS50027 (not a
    /// date) or AADSTS700024 (outside the time range).
    #[test]
    fn assertion_dates_of_any_shape_answer_like_entra(
        exp in date_value(),
        nbf in prop::option::of(date_value()),
        iat in prop::option::of(date_value()),
    ) {
        let (status, body) = client_assertion(exp, nbf, iat);
        prop_assert!(status == 200 || status == 401, "{status}: {body:#}");
        if status == 401 {
            let code = body["error_codes"][0].as_u64();
            prop_assert!(code == Some(50027) || code == Some(700024), "{body:#}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Clock moves, lifetimes, federated token lifetimes and fault numbers
    /// at their extremes, in any order, followed by key rotation, token
    /// issuance and the sample API: never a 5xx or a panic.
    #[test]
    fn extreme_admin_numbers_never_break_an_endpoint(ops in prop::collection::vec(admin_op(), 1..8)) {
        reset_clock_harness();
        for op in &ops {
            for (status, body) in run(op) {
                prop_assert!(status < 500, "{op:?}: {status}: {}", String::from_utf8_lossy(&body));
            }
        }
    }
}
