"""MSAL Python against the apptoken emulator: the client credentials grant.

Driven by tests/it/msal.rs, which starts the emulator with TLS and runs

    $APPTOKEN_PYTHON client_credentials.py PLAN.json

with REQUESTS_CA_BUNDLE pointing at the emulator's CA. PLAN.json:

    {"base": "https://127.0.0.1:PORT", "port": PORT, "tenant": "...",
     "client_id": "...", "secret": "...", "scope": "api://.../.default",
     "private_key": "PEM", "certificate": "PEM", "thumbprint": "SHA-1 hex",
     "cases": ["secret", ...]}

It prints one JSON object: {"msal": version, "results": {case: {...}}}. Each
result has "ok", "error", "error_description", "token_source", "claims" (the
access token's payload, decoded without verification) and, for the cache case,
the emulator's token request counters before and after the cached call.

Nothing here may leave the machine: name resolution is restricted to loopback
(and login.microsoftonline.com, mapped to 127.0.0.1 for the known-host case).
"""

import base64
import json
import socket
import sys

_real_getaddrinfo = socket.getaddrinfo
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}
_MAPPED = {"login.microsoftonline.com": "127.0.0.1"}


def _guarded_getaddrinfo(host, *args, **kwargs):
    name = host.decode() if isinstance(host, bytes) else host
    if name in _MAPPED:
        return _real_getaddrinfo(_MAPPED[name], *args, **kwargs)
    if name in _LOOPBACK:
        return _real_getaddrinfo(name, *args, **kwargs)
    raise socket.gaierror(socket.EAI_NONAME, "blocked by the emulator test: %s" % name)


socket.getaddrinfo = _guarded_getaddrinfo

import msal  # noqa: E402  (after the resolver guard on purpose)
import requests  # noqa: E402


def claims_of(token):
    payload = token.split(".")[1]
    payload += "=" * (-len(payload) % 4)
    return json.loads(base64.urlsafe_b64decode(payload))


def token_requests(plan):
    stats = requests.get(plan["base"] + "/_emulator/stats", timeout=10).json()
    return stats["token_requests_total"]


def acquire(plan, credential, authority=None, **app_kwargs):
    app = msal.ConfidentialClientApplication(
        plan["client_id"],
        client_credential=credential,
        authority=authority or "%s/%s" % (plan["base"], plan["tenant"]),
        **app_kwargs
    )
    return app, app.acquire_token_for_client(scopes=[plan["scope"]])


def summary(result):
    out = {
        "ok": "access_token" in result,
        "error": result.get("error"),
        "error_description": result.get("error_description"),
        "error_codes": result.get("error_codes"),
        "token_source": result.get("token_source"),
        "expires_in": result.get("expires_in"),
    }
    if "access_token" in result:
        out["claims"] = claims_of(result["access_token"])
    return out


def run_case(plan, case):
    no_discovery = {"instance_discovery": False}
    cert = {"private_key": plan["private_key"], "thumbprint": plan["thumbprint"]}
    if case == "secret":
        return summary(acquire(plan, plan["secret"], **no_discovery)[1])
    if case == "certificate":
        return summary(acquire(plan, cert, **no_discovery)[1])
    if case == "certificate_x5c":
        with_x5c = dict(cert, public_certificate=plan["certificate"])
        return summary(acquire(plan, with_x5c, **no_discovery)[1])
    if case == "certificate_sha256":
        # No thumbprint: MSAL >= 1.35 computes x5t#S256, signs PS256 and sends x5c.
        sha256 = {"private_key": plan["private_key"], "public_certificate": plan["certificate"]}
        return summary(acquire(plan, sha256, **no_discovery)[1])
    if case == "cache":
        app, first = acquire(plan, plan["secret"], **no_discovery)
        before = token_requests(plan)
        second = app.acquire_token_for_client(scopes=[plan["scope"]])
        after = token_requests(plan)
        out = summary(second)
        out["first"] = summary(first)
        out["token_requests_before"] = before
        out["token_requests_after"] = after
        return out
    if case == "instance_discovery":
        # Validation on: MSAL asks our /common/discovery/instance (given as
        # the endpoint; MSAL's default would be login.microsoftonline.com).
        endpoint = plan["base"] + "/common/discovery/instance"
        return summary(acquire(plan, plan["secret"], instance_discovery=endpoint)[1])
    if case == "known_host":
        # https://login.microsoftonline.com:PORT is "known to Microsoft":
        # MSAL skips instance discovery and reads our OpenID configuration.
        authority = "https://login.microsoftonline.com:%d/%s" % (plan["port"], plan["tenant"])
        return summary(acquire(plan, cert, authority=authority)[1])
    if case == "wrong_secret":
        return summary(acquire(plan, "not-the-secret", **no_discovery)[1])
    if case == "cp1":
        return summary(acquire(plan, plan["secret"], client_capabilities=["cp1"], **no_discovery)[1])
    raise ValueError("unknown case %r" % case)


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        plan = json.load(f)
    results = {}
    for case in plan["cases"]:
        try:
            results[case] = run_case(plan, case)
        except Exception as e:  # reported to the Rust test, which fails on it
            results[case] = {"ok": False, "exception": "%s: %s" % (type(e).__name__, e)}
    json.dump({"msal": msal.__version__, "results": results}, sys.stdout)


if __name__ == "__main__":
    main()
