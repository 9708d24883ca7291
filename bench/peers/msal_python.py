"""MSAL Python against the apptoken emulator: cache-hit cost of
acquire_token_for_client, and token requests made by 1,000 concurrent cold
callers. Prints one JSON object. Run by bench/peers/run.sh."""

import json
import sys
import threading
import time
import urllib.request
import ssl

import msal


def stats_requests(info, ctx):
    with urllib.request.urlopen(info["authority_host"] + "/_emulator/stats", context=ctx) as r:
        stats = json.load(r)
    return sum(row["count"] for row in stats["token_requests"] if row["client_id"] == info["client_id"])


def app(info):
    return msal.ConfidentialClientApplication(
        info["client_id"],
        client_credential=info["client_secret"],
        authority=info["authority_host"] + "/" + info["tenant_id"],
        validate_authority=False,
        instance_discovery=False,
    )


def main():
    info = json.load(open(sys.argv[1]))
    hits = int(sys.argv[2]) if len(sys.argv) > 2 else 20000
    callers = int(sys.argv[3]) if len(sys.argv) > 3 else 1000
    ctx = ssl.create_default_context(cafile=info["ca_certificate_path"])
    scopes = [info["sample_scope"]]

    a = app(info)
    first = a.acquire_token_for_client(scopes=scopes)
    assert "access_token" in first, first
    second = a.acquire_token_for_client(scopes=scopes)
    assert second.get("token_source") == "cache", second
    start = time.perf_counter()
    for _ in range(hits):
        a.acquire_token_for_client(scopes=scopes)
    hit_ns = (time.perf_counter() - start) / hits * 1e9

    before = stats_requests(info, ctx)
    cold = app(info)
    barrier = threading.Barrier(callers)
    errors = []

    def call():
        barrier.wait()
        r = cold.acquire_token_for_client(scopes=scopes)
        if "access_token" not in r:
            errors.append(r)

    threads = [threading.Thread(target=call) for _ in range(callers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    cold_requests = stats_requests(info, ctx) - before
    print(json.dumps({"client": "msal-python " + msal.__version__, "hit_ns": hit_ns,
                      "cold_callers": callers, "cold_requests": cold_requests, "errors": len(errors)}))


if __name__ == "__main__":
    main()
