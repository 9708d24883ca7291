"""MSAL Python and apptoken sharing a token cache (MSAL's JSON format).
Reads a plan (JSON) and prints a result (JSON). Run by tests/it/msal_cache.rs."""

import json
import socket
import sys

import msal

# Nothing here may reach the internet: only loopback names resolve.
_real = socket.getaddrinfo
def _loopback_only(host, *args, **kwargs):
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise OSError("test: %s is not loopback" % host)
    return _real(host, *args, **kwargs)
socket.getaddrinfo = _loopback_only

plan = json.load(open(sys.argv[1]))
result = {}

def app(tenant, cache):
    return msal.ConfidentialClientApplication(
        plan["client_id"], client_credential=plan["secret"],
        authority=plan["authority_host"] + "/" + tenant,
        token_cache=cache, validate_authority=False, instance_discovery=False)

# A: apptoken's export, read by MSAL: served from MSAL's cache.
cache = msal.SerializableTokenCache()
cache.deserialize(open(plan["exported"]).read())
r = app(plan["tenant"], cache).acquire_token_for_client(scopes=[plan["scope"]])
result["a_token"] = r.get("access_token")
result["a_source"] = r.get("token_source")
result["a_error"] = r.get("error")

# B: MSAL's own cache for another tenant, written for apptoken to import.
cache = msal.SerializableTokenCache()
r = app(plan["other_tenant"], cache).acquire_token_for_client(scopes=[plan["scope"]])
result["b_token"] = r.get("access_token")
result["b_error"] = r.get("error")
open(plan["msal_cache"], "w").write(cache.serialize())
print(json.dumps(result))
