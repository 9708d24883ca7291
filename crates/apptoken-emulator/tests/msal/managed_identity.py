"""MSAL Python's ManagedIdentityClient and azure-identity's
ManagedIdentityCredential against the apptoken emulator.

Driven by tests/it/msal_managed_identity.rs, which starts the emulator (plain
HTTP on 127.0.0.1) and runs, once per source,

    $APPTOKEN_PYTHON managed_identity.py PLAN.json

with a cleared environment holding only what selects the source: for IMDS
AZURE_POD_IDENTITY_AUTHORITY_HOST=<emulator base URL>; for App Service also
IDENTITY_ENDPOINT and IDENTITY_HEADER. PLAN.json:

    {"resource": "api://...", "scope": "api://.../.default",
     "client_id": "...", "object_id": "...", "resource_id": "/subscriptions/...",
     "object_id_param": "object_id" | "principal_id",
     "resource_id_param": "msi_res_id" | "mi_res_id"}

It prints one JSON object: {"msal": version, "azure_identity": version,
"results": {case: {"ok", "error", "claims", "expires_on"}}}.

Nothing here may leave the machine: name resolution (which every connection,
numeric addresses included, goes through) is restricted to loopback, so a
fall-back to 169.254.169.254 fails instead of sending a packet.
"""

import base64
import json
import socket
import sys

_real_getaddrinfo = socket.getaddrinfo
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def _guarded_getaddrinfo(host, *args, **kwargs):
    name = host.decode() if isinstance(host, bytes) else host
    if name in _LOOPBACK:
        return _real_getaddrinfo(name, *args, **kwargs)
    raise socket.gaierror(socket.EAI_NONAME, "blocked by the emulator test: %s" % name)


socket.getaddrinfo = _guarded_getaddrinfo

import msal  # noqa: E402
import requests  # noqa: E402
import azure.identity  # noqa: E402
from azure.identity import ManagedIdentityCredential  # noqa: E402


def claims_of(token):
    part = token.split(".")[1]
    part += "=" * (-len(part) % 4)
    return json.loads(base64.urlsafe_b64decode(part))


def run_msal(identity, resource):
    client = msal.ManagedIdentityClient(identity, http_client=requests.Session())
    result = client.acquire_token_for_client(resource=resource)
    if "access_token" not in result:
        return {"ok": False, "error": result}
    return {
        "ok": True,
        "claims": claims_of(result["access_token"]),
        "token_source": result.get("token_source"),
    }


def run_azure_identity(scope, **kwargs):
    try:
        token = ManagedIdentityCredential(**kwargs).get_token(scope)
    except Exception as e:  # noqa: BLE001 - reported to the Rust test
        return {"ok": False, "error": "%s: %s" % (type(e).__name__, e)}
    return {"ok": True, "claims": claims_of(token.token), "expires_on": token.expires_on}


def main():
    with open(sys.argv[1]) as f:
        plan = json.load(f)
    resource, scope = plan["resource"], plan["scope"]
    results = {
        "msal_system": run_msal(msal.SystemAssignedManagedIdentity(), resource),
        "msal_client_id": run_msal(
            msal.UserAssignedManagedIdentity(client_id=plan["client_id"]), resource
        ),
        "msal_object_id": run_msal(
            msal.UserAssignedManagedIdentity(object_id=plan["object_id"]), resource
        ),
        "msal_resource_id": run_msal(
            msal.UserAssignedManagedIdentity(resource_id=plan["resource_id"]), resource
        ),
        "azid_system": run_azure_identity(scope),
        "azid_client_id": run_azure_identity(scope, client_id=plan["client_id"]),
        "azid_object_id": run_azure_identity(
            scope, identity_config={plan["object_id_param"]: plan["object_id"]}
        ),
        "azid_resource_id": run_azure_identity(
            scope, identity_config={plan["resource_id_param"]: plan["resource_id"]}
        ),
    }
    print(json.dumps({
        "msal": msal.__version__,
        "azure_identity": azure.identity.__version__ if hasattr(azure.identity, "__version__") else "",
        "results": results,
    }))


if __name__ == "__main__":
    main()
