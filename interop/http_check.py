"""The HTTP API of a running `smsroute serve` against docs/openapi.yaml: submits, a batch,
a lookup, a cancel, bad requests; every JSON answer must match the documented schema.

Usage: python http_check.py PORT API_KEY   (needs openapi-spec-validator installed)
"""
import json
import sys
import time
import urllib.error
import urllib.request

from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import validate
from openapi_spec_validator.readers import read_from_filename

port, key = int(sys.argv[1]), sys.argv[2]
spec_dict, _ = read_from_filename("docs/openapi.yaml")
validate(spec_dict)


def check(path, method, status, body):
    """Validates `body` against the documented answer `status` of `method path`."""
    answer = spec_dict["paths"][path][method]["responses"][str(status)]
    if "$ref" in answer:
        answer = spec_dict["components"]["responses"][answer["$ref"].split("/")[-1]]
    schema = dict(answer["content"]["application/json"]["schema"])
    schema["components"] = spec_dict["components"]
    OAS31Validator(schema).validate(body)


def call(method, path, body=None, auth=True):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if auth:
        req.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


status, body = call("POST", "/v1/messages", {"to": "+44 7700 900123", "from": "ACME", "text": "hello", "client_ref": "c1"})
assert status == 202, (status, body)
check("/v1/messages", "post", 202, body)
mid = body["id"]

for _ in range(200):
    status, body = call("GET", f"/v1/messages/{mid}")
    check("/v1/messages/{id}", "get", status, body)
    if body.get("state") in ("delivered", "sent", "failed", "expired"):
        break
    time.sleep(0.05)
assert status == 200 and body["state"] == "delivered" and body["client_ref"] == "c1", body

later = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
status, body = call("POST", "/v1/messages", {"to": "447700900124", "from": "ACME", "text": "later", "send_at": later})
assert status == 202, (status, body)
status, body = call("DELETE", f"/v1/messages/{body['id']}")
assert status == 200, (status, body)
check("/v1/messages/{id}", "delete", 200, body)

status, body = call("POST", "/v1/messages/batch", {"messages": [
    {"to": "447700900125", "from": "ACME", "text": "one"},
    {"to": "12", "from": "ACME", "text": "bad"},
]})
assert status == 200, (status, body)
check("/v1/messages/batch", "post", 200, body)
assert "id" in body["results"][0] and body["results"][1]["field"] == "to", body

for method, path, payload, auth, want in [
    ("POST", "/v1/messages", {"to": "447700900123", "from": "ACME", "text": "x"}, False, 401),
    ("POST", "/v1/messages", {"to": "447700900123", "text": "x"}, True, 400),
    ("POST", "/v1/messages", {"to": "33612345678", "from": "ACME", "text": "x"}, True, 422),
    ("GET", "/v1/messages/999999999", None, True, 404),
    ("GET", "/v1/messages/abc", None, True, 400),
]:
    status, body = call(method, path, payload, auth)
    assert status == want, (method, path, status, body)
    template = "/v1/messages/{id}" if path.startswith("/v1/messages/") and path != "/v1/messages/batch" else path
    check(template, method.lower(), status, body)

print("http interop: every answer matches docs/openapi.yaml")
