#!/usr/bin/env python3
"""Writes the committed seed corpus, fuzz/seeds/<target>/<name> (docs/FUZZING.md).

Run from anywhere: python3 fuzz/make_seeds.py. It rewrites every seed it
knows and leaves other files alone. Answer shapes follow
shared/reference/entra-errors.tsv (copied in below, no file is read from
outside the repository); certificates are crates/apptoken/tests/fixtures;
daemon configurations follow docs/DAEMON.md.
"""

import base64
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
FIXTURES = os.path.join(ROOT, "crates", "apptoken", "tests", "fixtures")


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def write(target, name, data):
    d = os.path.join(HERE, "seeds", target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def fake_jwt(header, claims, sig_len=256):
    # A deterministic stand-in for a signature: the shape, not the value.
    sig = bytes((i * 37 + 11) % 256 for i in range(sig_len))
    return ".".join(
        [
            b64url(json.dumps(header, separators=(",", ":")).encode()),
            b64url(json.dumps(claims, separators=(",", ":")).encode()),
            b64url(sig) if sig_len else "",
        ]
    )


TENANT = "7c1e3a52-9c4b-4d8e-a0f1-3b2d5e6f7a81"
CLIENT = "5d8b0e7a-6c3f-4a1b-9e2d-7f4c8a1b3e5d"
ENDPOINT = f"https://login.microsoftonline.com/{TENANT}/oauth2/v2.0/token"

ACCESS_TOKEN = fake_jwt(
    {"typ": "JWT", "alg": "RS256", "x5t": "JYhAcTPMZ_LX6DBlOWQ7Hn0NeXE", "kid": "JYhAcTPMZ_LX6DBlOWQ7Hn0NeXE"},
    {
        "aud": "https://graph.microsoft.com",
        "iss": f"https://sts.windows.net/{TENANT}/",
        "iat": 1767225600,
        "nbf": 1767225600,
        "exp": 1767229500,
        "aio": "k2BgYDi4rWx9",
        "app_displayname": "contoso-daemon",
        "appid": CLIENT,
        "appidacr": "2",
        "idp": f"https://sts.windows.net/{TENANT}/",
        "idtyp": "app",
        "oid": "a1b2c3d4-0000-4000-8000-000000000001",
        "roles": ["User.Read.All"],
        "sub": "a1b2c3d4-0000-4000-8000-000000000001",
        "tid": TENANT,
        "ver": "1.0",
        "xms_tcdt": 1600000000,
    },
)

# --- token_answer: successful answers -------------------------------------
answers = {
    "entra-v2": {"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": ACCESS_TOKEN},
    "entra-v2-refresh-in": {"token_type": "Bearer", "expires_in": 86399, "ext_expires_in": 86399, "refresh_in": 43199, "access_token": ACCESS_TOKEN},
    "entra-v1-strings": {"token_type": "Bearer", "expires_in": "3599", "ext_expires_in": "3599", "expires_on": "1767229199", "not_before": "1767225300", "resource": "https://graph.microsoft.com", "access_token": ACCESS_TOKEN},
    "managed-identity": {"access_token": ACCESS_TOKEN, "refresh_token": "", "expires_in": "86399", "expires_on": "1767311999", "ext_expires_in": "86399", "not_before": "1767225300", "resource": "https://management.azure.com/", "token_type": "Bearer"},
    "adfs-lowercase-bearer": {"access_token": "eyJhbGciOiJSUzI1NiJ9.e30.c2ln", "token_type": "bearer", "expires_in": 3600},
    "no-token-type": {"access_token": "opaque-token-value", "expires_in": 60},
    "pop": {"access_token": "opaque", "token_type": "pop", "expires_in": 3599},
    "float-expiry": {"access_token": "a", "token_type": "Bearer", "expires_in": 3599.5, "ext_expires_in": None},
}
for name, body in answers.items():
    write("token_answer", name, json.dumps(body))
write("token_answer", "expires-zero", '{"access_token":"a","expires_in":0}')
write("token_answer", "expires-negative", '{"access_token":"a","expires_in":-1}')
write("token_answer", "expires-ten-years", '{"access_token":"a","expires_in":315360001}')
write("token_answer", "expires-spaces", '{"access_token":"a","expires_in":" 3600 "}')
write("token_answer", "nested", '{"access_token":{"a":[1,2,{"b":null}]},"expires_in":[3600]}')
write("token_answer", "not-object", '["access_token", 3600]')

# --- error_answer: status, Retry-After, body ----------------------------------
def error_seed(status, body, retry_after=None):
    ra = b"\x00\x00\x00" if retry_after is None else b"\x01" + struct.pack("<H", retry_after)
    return struct.pack("<H", status - 100) + ra + (body.encode() if isinstance(body, str) else body)


# (case, status, error, AADSTS code, description start) from entra-errors.tsv
ENTRA_ERRORS = [
    ("unknown-tenant", 400, "invalid_request", 90002, "Tenant '11111111-2222-3333-4444-555555555555' not found. This may happen if there are no active subscriptions for the tenant. Check to make sure you have the correct tenant ID. Check with your subscription administrator."),
    ("malformed-tenant", 400, "invalid_request", 900023, "Specified tenant identifier 'not a tenant' is neither a valid DNS name, nor a valid external domain."),
    ("unknown-client", 400, "unauthorized_client", 700016, f"Application with identifier '{CLIENT}' was not found in the directory 'Contoso'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant."),
    ("bad-secret", 401, "invalid_client", 7000215, "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '5d8b0e7a-6c3f-4a1b-9e2d-7f4c8a1b3e5d'."),
    ("expired-secret", 401, "invalid_client", 7000222, "The provided client secret keys for app '5d8b0e7a-6c3f-4a1b-9e2d-7f4c8a1b3e5d' are expired. Visit the Azure portal to create new keys for your app."),
    ("no-credential", 401, "invalid_client", 7000218, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'."),
    ("unknown-key", 401, "invalid_client", 700027, "The certificate with identifier used to sign the client assertion is not registered on application."),
    ("bad-scope", 400, "invalid_scope", 1002012, "The provided value for scope User.Read is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."),
    ("unknown-resource", 400, "invalid_resource", 500011, "The resource principal named api://unknown was not found in the tenant named Contoso. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant."),
    ("wrong-grant", 400, "unsupported_grant_type", 70003, "The app requested an unsupported grant type 'password'."),
    ("missing-grant", 400, "invalid_request", 900144, "The request body must contain the following parameter: 'grant_type'."),
    ("disabled-app", 400, "unauthorized_client", 7000112, "Application '5d8b0e7a-6c3f-4a1b-9e2d-7f4c8a1b3e5d'(contoso-daemon) is disabled."),
]
for case, status, error, code, text in ENTRA_ERRORS:
    trace, corr = "0d5f4c2e-7a1b-4c3d-9e8f-1a2b3c4d5e00", "8a7b6c5d-4e3f-4a1b-9c8d-7e6f5a4b3c2d"
    stamp = "2026-01-01 12:00:00Z"
    body = {
        "error": error,
        "error_description": f"AADSTS{code}: {text} Trace ID: {trace} Correlation ID: {corr} Timestamp: {stamp}",
        "error_codes": [code],
        "timestamp": stamp,
        "trace_id": trace,
        "correlation_id": corr,
        "error_uri": f"https://login.microsoftonline.com/error?code={code}",
    }
    write("error_answer", case, error_seed(status, json.dumps(body)))
write("error_answer", "crlf-description", error_seed(401, '{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided.\\r\\nTrace ID: t\\r\\nCorrelation ID: c\\r\\nTimestamp: 2026-01-01 00:00:00Z","error_codes":[7000215],"suberror":"bad_token"}'))
write("error_answer", "string-codes", error_seed(400, '{"error":"invalid_request","error_codes":["90002","x",9.5,null]}'))
write("error_answer", "throttled-plain", error_seed(429, "Too many requests\n", 60))
write("error_answer", "unavailable-html", error_seed(503, "<html><head><title>503</title></head>\r\n<body>\tService Unavailable\x00\x1b[31m</body></html>", 5))
write("error_answer", "empty", error_seed(500, ""))
write("error_answer", "no-error-field", error_seed(400, '{"error_description":"no error field"}'))
write("error_answer", "adfs", error_seed(400, '{"error":"invalid_client","error_description":"MSIS9607: The \'client_assertion\' parameter value is not a valid JWT."}'))

# --- discovery_document -------------------------------------------------------
discovery = {
    "token_endpoint": ENDPOINT,
    "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
    "jwks_uri": f"https://login.microsoftonline.com/{TENANT}/discovery/v2.0/keys",
    "response_modes_supported": ["query", "fragment", "form_post"],
    "subject_types_supported": ["pairwise"],
    "id_token_signing_alg_values_supported": ["RS256"],
    "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
    "scopes_supported": ["openid", "profile", "email", "offline_access"],
    "issuer": f"https://login.microsoftonline.com/{TENANT}/v2.0",
    "request_uri_parameter_supported": False,
    "userinfo_endpoint": "https://graph.microsoft.com/oidc/userinfo",
    "authorization_endpoint": f"https://login.microsoftonline.com/{TENANT}/oauth2/v2.0/authorize",
    "device_authorization_endpoint": f"https://login.microsoftonline.com/{TENANT}/oauth2/v2.0/devicecode",
    "http_logout_supported": True,
    "frontchannel_logout_supported": True,
    "end_session_endpoint": f"https://login.microsoftonline.com/{TENANT}/oauth2/v2.0/logout",
    "claims_supported": ["sub", "iss", "cloud_instance_name", "cloud_instance_host_name", "cloud_graph_host_name", "msgraph_host", "aud", "exp", "iat", "auth_time", "acr", "nonce", "preferred_username", "name", "tid", "ver", "at_hash", "c_hash", "email"],
    "kerberos_endpoint": f"https://login.microsoftonline.com/{TENANT}/kerberos",
    "tenant_region_scope": "EU",
    "cloud_instance_name": "microsoftonline.com",
    "cloud_graph_host_name": "graph.windows.net",
    "msgraph_host": "graph.microsoft.com",
    "rbac_url": "https://pas.windows.net",
}
write("discovery_document", "entra", json.dumps(discovery))
write("discovery_document", "emulator-loopback", json.dumps({"issuer": "http://127.0.0.1:8400/contoso.onmicrosoft.com/v2.0", "token_endpoint": "http://127.0.0.1:8400/contoso.onmicrosoft.com/oauth2/v2.0/token"}))
write("discovery_document", "not-https", json.dumps({"issuer": "x", "token_endpoint": "http://login.example.com/token"}))
write("discovery_document", "tenant-not-found", json.dumps({"error": "invalid_tenant", "error_description": "AADSTS90002: Tenant 'x' not found.", "error_codes": [90002]}))
write("discovery_document", "ipv6-loopback", json.dumps({"token_endpoint": "http://[::1]:9/t/oauth2/v2.0/token", "issuer": None}))

# --- retry_after: now (8 bytes), then the value --------------------------------
DATE_MIN = -377705116800  # -9999-01-01T00:00:00Z, time::Date::MIN


def now_bytes(unix):
    return struct.pack("<Q", unix - DATE_MIN)


for i, v in enumerate(["60", "0", " 120 ", "18446744073709551615", "18446744073709551616", "-5", "1.5", "soon", "",
                       "Sun, 06 Nov 1994 08:49:37 GMT", "Thu, 01 Jan 2026 12:01:00 GMT", "Sunday, 06-Nov-94 08:49:37 GMT",
                       "Sun Nov  6 08:49:37 1994", "Fri, 31 Dec 9999 23:59:59 GMT", "Thu, 01 Jan 1970 00:00:00 GMT"]):
    write("retry_after", f"value-{i:02}", now_bytes(1767268800) + v.encode())
write("retry_after", "now-at-year-9999", struct.pack("<Q", 253402300799 - DATE_MIN - 1) + b"Sun, 06 Nov 1994 08:49:37 GMT")
write("retry_after", "now-at-year-minus-9999", struct.pack("<Q", 0) + b"Fri, 31 Dec 9999 23:59:59 GMT")

# --- claims_challenge ----------------------------------------------------------
claims = '{"access_token":{"nbf":{"essential":true,"value":"1767225600"}}}'
b64 = base64.b64encode(claims.encode()).decode()
write("claims_challenge", "graph-cae", f'Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", client_id="00000003-0000-0000-c000-000000000000", error="insufficient_claims", claims="{b64}"')
write("claims_challenge", "docs-example", 'Bearer realm="", error="insufficient_claims", claims="eyJhY2Nlc3NfdG9rZW4iOnsibmJmIjp7ImVzc2VudGlhbCI6dHJ1ZX19fQ=="')
write("claims_challenge", "url-safe-unpadded", f'Bearer error=insufficient_claims, claims={b64url(claims.encode())}')
write("claims_challenge", "escaped-quotes", 'Bearer error="insufficient_claims", claims="eyJ\\"hY2Nlc3NfdG9rZW4iOnt9fQ==", realm="a\\\\b"')
write("claims_challenge", "invalid-token", 'Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", error="invalid_token", error_description="Lifetime validation failed, the token is expired."')
write("claims_challenge", "two-challenges", f'PoP realm="", nonce="abc", Bearer error="insufficient_claims", claims="{b64}"')
write("claims_challenge", "not-object", 'Bearer error="insufficient_claims", claims="WzFd"')
write("claims_challenge", "unterminated", 'Bearer error="insufficient_claims", claims="eyJhY2')

# --- certificate: mode byte (password choice, bit 2: read as PKCS#12), then the file
def fixture(name):
    with open(os.path.join(FIXTURES, name), "rb") as f:
        return f.read()


for name, mode, data in [
    ("combined-pem", 0, fixture("leaf.combined.pem")),
    ("chain-pem", 0, fixture("leaf.chain.pem")),
    ("pkcs1-pem", 0, fixture("leaf.cert.pem") + b"\n" + fixture("leaf.pkcs1.pem")),
    ("encrypted-pkcs8-pem", 2, fixture("leaf.cert.pem") + b"\n" + fixture("leaf.encrypted.pem")),
    ("encrypted-no-password", 0, fixture("leaf.cert.pem") + b"\n" + fixture("leaf.encrypted.pem")),
    ("ec-pem", 0, fixture("ec.combined.pem")),
    ("key-mismatch", 0, fixture("ca.cert.pem") + fixture("leaf.pkcs8.pem")),
    ("cert-only", 0, fixture("leaf.cert.pem")),
    ("pfx", 2, fixture("leaf.pfx")),
    ("pfx-legacy", 2, fixture("leaf.legacy.pfx")),
    ("pfx-wrong-password", 3, fixture("leaf.pfx")),
]:
    write("certificate", name, bytes([mode]) + data)

# --- daemon_config: docs/DAEMON.md and smaller files ------------------------------
write("daemon_config", "docs-example", """\
[identity]
authority_host = "https://login.microsoftonline.com"
tenant_id = "contoso.onmicrosoft.com"
client_id = "00000000-0000-0000-0000-000000000001"
client_secret_file = "${CREDENTIALS_DIRECTORY}/client-secret"

[apis.graph]
base_url = "https://graph.microsoft.com/v1.0"
scopes = ["https://graph.microsoft.com/.default"]
headers = { ConsistencyLevel = "eventual" }
timeout = "60s"
max_concurrency = 4
max_retries = 3
max_retry_wait = "5m"

[[jobs]]
name = "users"
api = "graph"
method = "GET"
path = "users?$select=id,displayName&$top=999"
every = "15m"
run_at_start = true
paging = true
max_items = 10000
max_pages = 1000
output = { type = "file", path = "out/users.jsonl" }
tenants = ["contoso.onmicrosoft.com", "fabrikam.onmicrosoft.com"]
tenant_concurrency = 4

[daemon]
grace_period = "30s"
listen = "127.0.0.1:9464"
log_format = "json"
credential_poll = "60s"
certificate_warning = "30d"
job_lease = "60s"

[cache]
redis = "rediss://redis.internal:6380/0"
redis_ca_file = "ca.pem"
key_file = "${CREDENTIALS_DIRECTORY}/cache-key"
""")
write("daemon_config", "certificate-cron-stdout", """\
[identity]
authority_host = "AzureUsGovernment"
tenant_id = "7c1e3a52-9c4b-4d8e-a0f1-3b2d5e6f7a81"
client_id = "5d8b0e7a-6c3f-4a1b-9e2d-7f4c8a1b3e5d"
certificate_path = "cert.pem"
send_certificate_chain = true
ca_file = "ca.pem"

[apis.sample]
base_url = "http://127.0.0.1:8400/v1.0"
scopes = ["api://apptoken-sample-api/.default"]

[[jobs]]
name = "users"
api = "sample"
method = "POST"
path = "users"
body = { requests = [{ id = "1", method = "GET", url = "/users" }] }
cron = "0 */5 * * * *"
output = { type = "stdout" }

[daemon]
client_secret_credential = "client-secret"
""")
write("daemon_config", "file-cache", """\
[identity]
authority_host = "http://127.0.0.1:9"
tenant_id = "contoso.example"
client_id = "cid"
client_secret_file = "client-secret"

[apis.sample]
base_url = "http://127.0.0.1:9/v1.0"
scopes = ["api://sample/.default"]
headers = { ConsistencyLevel = "eventual" }

[[jobs]]
name = "users"
api = "sample"
path = "users?$top=5"
every = "15m"
tenants = ["a.example", "b.example"]

[cache]
file = "out/tokens.json"
timeout = "250ms"
""")
write("daemon_config", "problems", """\
[identity]
tenant_id = "common"
client_id = ""
client_secret_file = "${NOT_SET}/secret"
certificate_path = "missing.pem"

[apis.x]
base_url = "http://example.com"
scopes = ["User.Read"]

[[jobs]]
name = "a"
api = "nope"
path = "https://other.example/x"
cron = "every day"
output = { type = "file", path = "no/such/dir/a.jsonl" }

[[jobs]]
name = "a"
api = "x"
path = "y"
every = "0s"

[daemon]
listen = "not an address"
grace_period = "forever"
unknown = 1
""")
write("daemon_config", "syntax-error", "[identity]\ntenant_id = \"contoso\nclient_id = 'x'\n[[jobs]\nname = \"é\"\n")
write("daemon_config", "empty", "")

# --- emulator_form: bodies and query strings the emulator reads ------------------
write("emulator_form", "secret-post", f"grant_type=client_credentials&client_id={CLIENT}&client_secret=abc8Q~xyz&scope=api%3A%2F%2Fapptoken-sample-api%2F.default")
ASSERTION = fake_jwt(
    {"alg": "PS256", "typ": "JWT", "x5t#S256": b64url(bytes(range(32)))},
    {"aud": ENDPOINT, "exp": 1767226200, "iss": CLIENT, "jti": "0b1c2d3e-4f5a-4b6c-8d7e-9f0a1b2c3d4e", "nbf": 1767225600, "sub": CLIENT, "iat": 1767225600},
)
write("emulator_form", "assertion", f"client_id={CLIENT}&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion={ASSERTION}&scope=https%3A%2F%2Fgraph.microsoft.com%2F.default&grant_type=client_credentials")
write("emulator_form", "claims", "grant_type=client_credentials&client_id=x&client_secret=y&scope=api://fuzz/.default&claims=%7B%22access_token%22%3A%7B%22xms_cc%22%3A%7B%22values%22%3A%5B%22cp1%22%5D%7D%7D%7D")
write("emulator_form", "consent-query", f"client_id={CLIENT}&redirect_uri=http%3A%2F%2Flocalhost%2Fconsent-done&state=12345")
write("emulator_form", "odata-query", "$top=10&$select=id,displayName&$skiptoken=X%27abc%27")
write("emulator_form", "repeated-and-blank", "scope=&scope=a+b&client_id&=v&&grant_type=%ZZ%C3%28")

# --- emulator_jwt: client assertions and federated tokens -------------------------
write("emulator_jwt", "assertion-ps256", ASSERTION)
write("emulator_jwt", "assertion-rs256-x5t", fake_jwt({"alg": "RS256", "typ": "JWT", "x5t": b64url(bytes(range(20)))}, {"aud": ENDPOINT, "exp": "1767226200", "iss": CLIENT, "jti": "j", "nbf": 1767225600.25, "sub": CLIENT}))
x5c = base64.b64encode(bytes(range(256)) * 3).decode()
x5c = "\n".join(x5c[i:i + 64] for i in range(0, len(x5c), 64))
write("emulator_jwt", "assertion-x5c-msal-python", fake_jwt({"alg": "RS256", "typ": "JWT", "x5t": b64url(bytes(20)), "x5c": [x5c]}, {"aud": [ENDPOINT, "https://login.microsoftonline.com/x"], "exp": 1767226200, "iss": CLIENT, "sub": CLIENT, "jti": "k"}))
write("emulator_jwt", "federated-kubernetes", fake_jwt({"alg": "RS256", "kid": "abc"}, {"aud": ["api://AzureADTokenExchange"], "exp": 1767229200, "iat": 1767225600, "iss": "https://oidc.prod-aks.azure.com/00000000-0000-0000-0000-000000000000/", "kubernetes.io": {"namespace": "default", "serviceaccount": {"name": "apptoken"}}, "nbf": 1767225600, "sub": "system:serviceaccount:default:apptoken"}))
write("emulator_jwt", "unsigned", fake_jwt({"alg": "none"}, {"exp": None, "nbf": "x"}, sig_len=0))
write("emulator_jwt", "padded-standard-base64", "  " + base64.b64encode(b'{"alg":"RS256"}').decode() + "." + base64.b64encode(b'{"aud":1}').decode() + ".AAAA==\n")

# --- managed_identity_answer: 0 + body (a 200), or 1 + status + body -----------
def mi_seed(status, body):
    assert status == 200
    return b"\x00" + body.encode()


def mi_status(status, body):
    return b"\x01" + struct.pack("<H", status - 100) + body.encode()


MI_NOW = 1767225600
write("managed_identity_answer", "imds-strings", mi_seed(200, json.dumps({"access_token": ACCESS_TOKEN, "client_id": CLIENT, "expires_in": "86399", "expires_on": str(MI_NOW + 86399), "ext_expires_in": "86399", "not_before": str(MI_NOW), "resource": "https://management.azure.com/", "token_type": "Bearer"})))
write("managed_identity_answer", "app-service-numbers", mi_seed(200, json.dumps({"access_token": ACCESS_TOKEN, "expires_on": MI_NOW + 3600, "resource": "https://vault.azure.net", "token_type": "Bearer", "client_id": CLIENT})))
write("managed_identity_answer", "no-token-type", mi_seed(200, json.dumps({"access_token": "t", "expires_in": 3600})))
write("managed_identity_answer", "float-and-refresh-in", mi_seed(200, '{"access_token":"t","expires_in":3599.5,"refresh_in":"1800","token_type":"bearer"}'))
write("managed_identity_answer", "expired", mi_seed(200, json.dumps({"access_token": "t", "expires_on": str(MI_NOW - 1)})))
write("managed_identity_answer", "no-token", mi_seed(200, '{"expires_in":"86399","token_type":"Bearer"}'))
write("managed_identity_answer", "captive-portal", mi_seed(200, "\r\n<!DOCTYPE html><html><body>Sign in to the hotel Wi-Fi</body></html>"))
write("managed_identity_answer", "wrong-types", mi_seed(200, '{"access_token":["t"],"expires_on":{"s":1},"token_type":7}'))
write("managed_identity_answer", "imds-identity-not-found", mi_status(400, '{"error":"invalid_request","error_description":"Identity not found"}'))
write("managed_identity_answer", "imds-gone", mi_status(410, ""))
write("managed_identity_answer", "app-service-refusal", mi_status(400, '{"statusCode":400,"message":"No managed identity found for specified ClientId/ResourceId/PrincipalId.","correlationId":"c"}'))
write("managed_identity_answer", "app-service-string-status", mi_status(500, '{"statusCode":"500","message":"Internal\u0000error\r\n"}'))
write("managed_identity_answer", "throttled-html", mi_status(429, "<html>Too many requests</html>"))

# --- arc_challenge: the WWW-Authenticate value --------------------------------
ARC_DIR = "$DIR"  # the target puts its token directory's path here
write("arc_challenge", "agent", f"Basic realm={ARC_DIR}/agent.key")
write("arc_challenge", "quoted", f'basic  REALM="{ARC_DIR}/agent.key"')
write("arc_challenge", "traversal", f"Basic realm={ARC_DIR}/../outside.key")
write("arc_challenge", "outside", "Basic realm=/etc/passwd")
write("arc_challenge", "real-agent-directory", "Basic realm=/var/opt/azcmagent/tokens/agent.key")
write("arc_challenge", "big", f"Basic realm={ARC_DIR}/big.key")
write("arc_challenge", "link", f"Basic realm={ARC_DIR}/link.key")
write("arc_challenge", "directory", f"Basic realm={ARC_DIR}/dir.key")
write("arc_challenge", "not-key", f"Basic realm={ARC_DIR}/other.txt")
write("arc_challenge", "relative", "Basic realm=tokens/agent.key")
write("arc_challenge", "bearer", 'Bearer realm="x", error="invalid_token"')
write("arc_challenge", "no-realm", "Basic")

# --- token_request: content type byte, tenant length, tenant, Authorization NUL body
def request(ct, tenant, body, auth=None):
    t = tenant.encode()
    return bytes([ct]) + struct.pack("<H", len(t)) + t + ((auth.encode() + b"\x00") if auth else b"") + body.encode()


FUZZ_CLIENT = "33333333-3333-3333-3333-333333333333"
FUZZ_SCOPE = "api%3A%2F%2Ffuzz%2F.default"
write("token_request", "secret-post", request(0, "fuzz.example.com", f"grant_type=client_credentials&client_id={FUZZ_CLIENT}&client_secret=pw&scope={FUZZ_SCOPE}"))
write("token_request", "secret-basic", request(0, "11111111-1111-1111-1111-111111111111", f"grant_type=client_credentials&scope={FUZZ_SCOPE}",
                                               auth="Basic " + base64.b64encode(f"{FUZZ_CLIENT}:pw".encode()).decode()))
write("token_request", "assertion", request(0, "fuzz.example.com", f"grant_type=client_credentials&client_id={FUZZ_CLIENT}&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion={ASSERTION}&scope={FUZZ_SCOPE}"))
write("token_request", "claims", request(0, "fuzz.example.com", f"grant_type=client_credentials&client_id={FUZZ_CLIENT}&client_secret=pw&scope={FUZZ_SCOPE}&claims=%7B%22access_token%22%3A%7B%22xms_cc%22%3A%7B%22values%22%3A%5B%22cp1%22%5D%7D%7D%7D"))
write("token_request", "json-body", request(1, "fuzz.example.com", json.dumps({"grant_type": "client_credentials", "client_id": FUZZ_CLIENT})))
write("token_request", "common-tenant", request(0, "common", f"grant_type=client_credentials&client_id={FUZZ_CLIENT}&client_secret=pw&scope={FUZZ_SCOPE}"))
write("token_request", "wrong-grant", request(0, "organizations", "grant_type=password&username=a&password=b"))
print("seeds written to", os.path.join(HERE, "seeds"))
