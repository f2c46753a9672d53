"""POSTs bodies that the gateway refuses before reading them, with a real
Python client, and reports what the client saw (tests/early_answers.rs).

usage: early_answers.py CLIENT URL CA USER PASS SIZE TRIES
CLIENT: "requests" (HTTP/1.1) or "httpx-h2" (HTTP/2 by ALPN);
USER "-": no credentials. Prints one JSON object:
{"statuses": {"403": 20}, "codes": {"missing_permission:...": 20},
 "errors": ["ConnectionError: ..."], "versions": ["HTTP/2"]}
"""
import json
import sys
from collections import Counter


def main():
    client, url, ca, user, password, size, tries = sys.argv[1:8]
    size, tries = int(size), int(tries)
    auth = None if user == "-" else (user, password)
    body = b"x" * size
    headers = {"Content-Type": "application/json"}
    statuses, codes, errors, versions = Counter(), Counter(), [], set()
    if client == "requests":
        import requests
        for _ in range(tries):
            try:
                # a new connection per try: the gateway closes after an early answer
                with requests.Session() as s:
                    r = s.post(url, data=body, auth=auth, verify=ca, headers=headers, timeout=30)
                statuses[str(r.status_code)] += 1
                codes[r.json().get("error_code", "")] += 1
                versions.add("HTTP/1.1" if r.raw.version == 11 else str(r.raw.version))
            except Exception as e:  # a transport error is what the test counts
                errors.append(f"{type(e).__name__}: {e}"[:300])
    elif client == "httpx-h2":
        import httpx
        with httpx.Client(http2=True, verify=ca, timeout=30) as c:
            for _ in range(tries):
                try:
                    r = c.post(url, content=body, auth=auth, headers=headers)
                    statuses[str(r.status_code)] += 1
                    codes[r.json().get("error_code", "")] += 1
                    versions.add(r.http_version)
                except Exception as e:
                    errors.append(f"{type(e).__name__}: {e}"[:300])
    else:
        sys.exit(f"unknown client {client}")
    print(json.dumps({"statuses": statuses, "codes": codes, "errors": errors,
                      "versions": sorted(versions)}))


if __name__ == "__main__":
    main()
