"""Run as the program of `apptoken exec` by tests/exec.rs: the third-party
clients, unchanged, get tokens from the endpoint apptoken gives them
(IDENTITY_ENDPOINT + IDENTITY_HEADER, the App Service protocol):

- MSAL Python's ManagedIdentityClient (system-assigned),
- azure-identity's ManagedIdentityCredential (it sends AZURE_CLIENT_ID as
  client_id when set),
- azure-identity's DefaultAzureCredential, which must pass over its
  environment and workload-identity steps (apptoken removed their
  variables) and reach the endpoint.

Prints one JSON object: {"msal", "azure_identity",
"results": {case: {"ok", "error", "claims", "expires_on"}}}. Argument 1 is
the scope. Name resolution is restricted to loopback, so nothing can leave
the machine (no fall-back to 169.254.169.254).
"""

import base64
import json
import os
import socket
import sys

_real_getaddrinfo = socket.getaddrinfo
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def _guarded_getaddrinfo(host, *args, **kwargs):
    name = host.decode() if isinstance(host, bytes) else host
    if name in _LOOPBACK:
        return _real_getaddrinfo(name, *args, **kwargs)
    raise socket.gaierror(socket.EAI_NONAME, "blocked by the exec test: %s" % name)


socket.getaddrinfo = _guarded_getaddrinfo

import msal  # noqa: E402
import requests  # noqa: E402
import azure.identity  # noqa: E402
from azure.identity import DefaultAzureCredential, ManagedIdentityCredential  # noqa: E402


def claims_of(token):
    part = token.split(".")[1]
    part += "=" * (-len(part) % 4)
    return json.loads(base64.urlsafe_b64decode(part))


def run_msal(resource):
    client = msal.ManagedIdentityClient(
        msal.SystemAssignedManagedIdentity(), http_client=requests.Session()
    )
    result = client.acquire_token_for_client(resource=resource)
    if "access_token" not in result:
        return {"ok": False, "error": result}
    return {"ok": True, "claims": claims_of(result["access_token"])}


def run_azure(credential, scope):
    try:
        token = credential().get_token(scope)
    except Exception as e:  # noqa: BLE001 - reported to the Rust test
        return {"ok": False, "error": "%s: %s" % (type(e).__name__, e)}
    return {"ok": True, "claims": claims_of(token.token), "expires_on": token.expires_on}


def main():
    scope = sys.argv[1]
    resource = scope[: -len("/.default")] if scope.endswith("/.default") else scope
    results = {
        "msal": run_msal(resource),
        "managed_identity_credential": run_azure(ManagedIdentityCredential, scope),
        "default_azure_credential": run_azure(DefaultAzureCredential, scope),
    }
    print(json.dumps({
        "msal": msal.__version__,
        "azure_identity": getattr(azure.identity, "__version__", ""),
        "results": results,
    }))


if __name__ == "__main__":
    main()
