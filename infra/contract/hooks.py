"""Schemathesis hooks for the ingest API contract run (loaded through SCHEMATHESIS_HOOKS by run.sh).

The fuzzer cannot know the stack's secrets, so without help it would only ever see the refusals of
the two operations whose credential is a signature. These hooks sign, deterministically, the way a
real caller would, so the 2xx answers are checked against the contract too:

- GET /v1/events/{id}: positive cases get a valid link (exp far in the future, sig with the stack's
  link key read from the emulator) to one of the events `seed` stored (200), to an id never
  stored (404) or to the generated id. Negative cases are sent as generated (403).
- POST /v1/webhooks/{source}: nine cases in ten are sent to the local stack's door that fits the
  payload's shape (Stripe event -> stripe, a string `type` -> demo, anything else -> github); one
  in four GitHub deliveries is a `ping`. The tenth keeps its generated source (mostly unknown:
  404). Cases addressed to a door are signed as that provider signs just before they are sent
  (timestamps must be fresh), except one in ten, sent as generated (401).
- POST /v1/events/batch: cases with CONTRACT_MAX_BATCH_EVENTS < n <= 500 events are skipped to
  keep the run bounded (the emulator takes about 20 s to store and queue 500 events); batches of
  more than 500 are still sent (413, answered before anything is stored).

Every choice is a function of the generated case (a digest of its data), so a derandomized run
sends the same requests every time, signatures aside (webhook timestamps must be now, and each
stack makes its own link key).

`python hooks.py seed` stores the events the GET cases link to (run.sh calls it before the run).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import sys
import time
import urllib.request

# Far in the future, fixed: links stay valid and the requests stay the same from run to run.
LINK_EXP = 4102444800  # 2100-01-01T00:00:00Z

# The local stack's webhook doors (infra/local/src/main.rs), keyed by source.
DOORS = {"demo": "standard-webhooks", "stripe": "stripe", "github": "github"}

SEED_EVENTS = [
    # (expected event id, method, path, headers, body): a client id comes back scoped to the
    # API key's source (`local`, the key make dev creates).
    (
        "local:contract-native",
        "/v1/events",
        {},
        {
            "name": "feature.used",
            "data": {"user_id": "u_42", "feature": "csv.export", "count": 1, "plan": "free"},
            "id": "contract-native",
            "time": "2026-11-27T09:30:00+05:30",
        },
    ),
    (
        "local:contract-idempotency-key",
        "/v1/events",
        {"Idempotency-Key": "contract-idempotency-key"},
        {"name": "user.signed_up", "data": {"user_id": "u_43", "plan": "free", "nested": {"a": [1, 2.5, None]}}},
    ),
    (
        "local:contract-cloudevent",
        "/v1/events",
        {},
        {
            "specversion": "1.0",
            "type": "feature.used",
            "id": "contract-cloudevent",
            "source": "/contract",
            "subject": "u_42",
            "time": "2026-11-27T09:30:00.123Z",
            "datacontenttype": "application/json",
            "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "data": {"user_id": "u_42", "feature": "api", "count": 3, "plan": "pro"},
        },
    ),
]
SEED_WEBHOOKS = [
    # (expected event id, source, extra headers, body): webhook:<source>:<delivery id>
    (
        "webhook:demo:contract-demo-1",
        "demo",
        {"webhook-id": "contract-demo-1"},
        {"type": "user.signed_up", "timestamp": "2026-11-27T09:30:00Z", "data": {"user_id": "u_44", "plan": "free"}},
    ),
    (
        "webhook:stripe:evt_contract_1",
        "stripe",
        {},
        {
            "id": "evt_contract_1",
            "object": "event",
            "type": "invoice.payment_failed",
            "created": 1795771800,
            "livemode": False,
            "data": {
                "object": {"id": "in_contract", "customer": "cus_contract", "amount_due": 4900, "currency": "usd"},
                "previous_attributes": {"attempt_count": 1},
            },
        },
    ),
    (
        None,  # GitHub deliveries are keyed by the body: webhook:github:sha256-<hex>, see expected_id
        "github",
        {"X-GitHub-Event": "workflow_run", "X-GitHub-Delivery": "contract-gh-1", "X-GitHub-Hook-ID": "4242"},
        {"action": "completed", "workflow_run": {"name": "CI", "conclusion": "failure"}, "repository": {"full_name": "yourco/app"}},
    ),
]


def webhooks_included() -> bool:
    return os.environ.get("CONTRACT_INCLUDE_WEBHOOKS", "1") != "0"


def expected_id(seed_id: str | None, source: str, body: object) -> str:
    """The event id a seeded webhook gets: GitHub's is the SHA-256 of the signed body."""
    if seed_id is not None:
        return seed_id
    return f"webhook:{source}:sha256-{hashlib.sha256(wire(body)).hexdigest()}"


def seed_ids() -> list[str]:
    """The ids of the events `seed` stores."""
    ids = [s[0] for s in SEED_EVENTS]
    if webhooks_included():
        ids += [expected_id(i, src, body) for i, src, _, body in SEED_WEBHOOKS]
    return ids


def env(name: str, default: str | None = None) -> str:
    value = os.environ.get(name, default)
    if value is None:
        raise RuntimeError(f"contract hooks: {name} is not set (run.sh sets it)")
    return value


def digest(*parts: object) -> int:
    """A stable number derived from generated data."""
    text = json.dumps(parts, sort_keys=True, default=repr)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def wire(body: object) -> bytes:
    """The bytes `requests` sends for a JSON body (what the signature must cover)."""
    return json.dumps(body, allow_nan=False).encode("utf-8")


# ---------------------------------------------------------------- secrets

_link_key: bytes | None = None


def link_key() -> bytes:
    """The stack's event-link signing key, read once from the emulator's Secrets Manager."""
    global _link_key
    if _link_key is None:
        request = urllib.request.Request(
            env("AWS_ENDPOINT_URL").rstrip("/") + "/",
            data=json.dumps({"SecretId": env("CONTRACT_PREFIX") + "/event-link-key"}).encode(),
            headers={
                "X-Amz-Target": "secretsmanager.GetSecretValue",
                "Content-Type": "application/x-amz-json-1.1",
                # The emulator routes by the credential scope; it does not check signatures.
                "Authorization": "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/secretsmanager/aws4_request, "
                "SignedHeaders=host, Signature=0",
            },
        )
        with urllib.request.urlopen(request, timeout=10) as r:
            secret = json.load(r)["SecretString"]
        try:
            key = json.loads(secret)["key"]
        except (ValueError, KeyError, TypeError):
            key = secret.strip()
        _link_key = key.encode()
    return _link_key


def link_sig(event_id: str, exp: int) -> str:
    return hmac.new(link_key(), f"{event_id}\n{exp}".encode(), hashlib.sha256).hexdigest()


def sign_webhook(source: str, headers: dict, body: bytes) -> None:
    """Adds the provider's signature headers for `source` (a local door) to `headers`."""
    provider = DOORS[source]
    now = str(int(time.time()))
    if provider == "standard-webhooks":
        secret = env("INGESTLAYER_WEBHOOK_SECRET")
        key = base64.b64decode(secret.removeprefix("whsec_"))
        msg_id = get_header(headers, "webhook-id") or f"contract-{hashlib.sha256(body).hexdigest()[:16]}"
        mac = hmac.new(key, f"{msg_id}.{now}.".encode() + body, hashlib.sha256).digest()
        set_header(headers, "webhook-id", msg_id)
        set_header(headers, "webhook-timestamp", now)
        set_header(headers, "webhook-signature", "v1," + base64.b64encode(mac).decode())
    elif provider == "stripe":
        secret = env("STRIPE_WEBHOOK_SECRET").encode()
        mac = hmac.new(secret, now.encode() + b"." + body, hashlib.sha256).hexdigest()
        set_header(headers, "Stripe-Signature", f"t={now},v1={mac}")
    else:
        secret = env("GITHUB_WEBHOOK_SECRET").encode()
        set_header(headers, "X-Hub-Signature-256", "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest())


def set_header(headers: dict, name: str, value: str) -> None:
    """Sets `name`, dropping any differently-cased copy."""
    for existing in [k for k in headers if k.lower() == name.lower()]:
        del headers[existing]
    headers[name] = value


def get_header(headers: dict, name: str) -> str | None:
    for k, v in headers.items():
        if k.lower() == name.lower():
            return v
    return None


# ---------------------------------------------------------------- seeding


def seed() -> int:
    """Stores the events the GET cases link to; fails when any is not accepted."""
    base = env("CONTRACT_API_URL").rstrip("/")
    key = env("INGESTLAYER_API_KEY")

    def post(path: str, headers: dict, body: object) -> tuple[int, dict]:
        data = wire(body)
        request = urllib.request.Request(base + path, data=data, method="POST")
        request.add_header("Content-Type", "application/json")
        for k, v in headers.items():
            request.add_header(k, v)
        try:
            with urllib.request.urlopen(request, timeout=30) as r:
                return r.status, json.load(r)
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    failed = False
    for event_id, path, headers, body in SEED_EVENTS:
        status, answer = post(path, {"Authorization": f"Bearer {key}", **headers}, body)
        ok = status == 202 and answer.get("id") == event_id
        failed |= not ok
        print(f"  seed {event_id}: {status} {json.dumps(answer)}")
    for seed_id, source, extra, body in SEED_WEBHOOKS if webhooks_included() else []:
        event_id = expected_id(seed_id, source, body)
        headers = dict(extra)
        sign_webhook(source, headers, wire(body))
        status, answer = post(f"/v1/webhooks/{source}", headers, body)
        ok = status == 202 and answer.get("id") == event_id
        failed |= not ok
        print(f"  seed {event_id}: {status} {json.dumps(answer)}")
        message = str((answer or {}).get("error", {}).get("message", "")) if isinstance(answer, dict) else ""
        if status == 404 and message.startswith("no route"):
            print(
                "contract: this binary has no POST /v1/webhooks/{source}: rebuild it "
                "(cargo build -p ingestlayer-local) or run with CONTRACT_INCLUDE_WEBHOOKS=0",
                file=sys.stderr,
            )
    if failed:
        print("contract: seeding the stored events failed (expected 202 with the seeded id)", file=sys.stderr)
        return 1
    return 0


# ---------------------------------------------------------------- schemathesis hooks


def _is_negative(case) -> bool:
    meta = getattr(case, "meta", None)
    return bool(meta is not None and meta.generation.mode.is_negative)


def _max_batch_events() -> int:
    return int(os.environ.get("CONTRACT_MAX_BATCH_EVENTS", "25"))


def _batch_len(body: object) -> int | None:
    if isinstance(body, list):
        return len(body)
    if isinstance(body, dict) and isinstance(body.get("events"), list):
        return len(body["events"])
    return None


def _filter_case(ctx, case) -> bool:
    if case.path == "/v1/events/batch" and case.method.upper() == "POST":
        n = _batch_len(case.body)
        if n is not None and _max_batch_events() < n <= 500:
            return False
    return True


def _map_case(ctx, case):
    if case.path == "/v1/events/{id}" and case.method.upper() == "GET" and not _is_negative(case):
        generated = (case.path_parameters or {}).get("id")
        choices = seed_ids() + ["contract-never-stored", generated]
        event_id = choices[digest("get", generated, case.query) % len(choices)]
        if not isinstance(event_id, str) or not event_id:
            return case
        case.path_parameters = {**(case.path_parameters or {}), "id": event_id}
        case.query = {**(case.query or {}), "exp": LINK_EXP, "sig": link_sig(event_id, LINK_EXP)}
    elif case.path == "/v1/webhooks/{source}" and case.method.upper() == "POST":
        try:
            wire(case.body)
        except (TypeError, ValueError):
            return case
        d = digest("webhook", case.path_parameters, case.headers, case.body)
        if d % 10 == 0:
            return case  # sent as generated: unsigned
        body = case.body
        if (
            isinstance(body, dict)
            and isinstance(body.get("id"), str)
            and isinstance(body.get("type"), str)
            and isinstance(body.get("data"), dict)
            and isinstance(body["data"].get("object"), dict)
        ):
            source = "stripe"
        elif isinstance(body, dict) and isinstance(body.get("type"), str):
            source = "demo"
        else:
            source = "github"
        case.path_parameters = {**(case.path_parameters or {}), "source": source}
        headers = dict(case.headers or {})
        if source == "demo" and not get_header(headers, "webhook-id"):
            set_header(headers, "webhook-id", f"contract-{d % 10**12:012d}")
        if source == "github":
            if (d >> 8) % 4 == 0:
                set_header(headers, "X-GitHub-Event", "ping")
            elif get_header(headers, "X-GitHub-Event") is None:
                set_header(headers, "X-GitHub-Event", "workflow_run")
            if not get_header(headers, "X-GitHub-Delivery"):
                set_header(headers, "X-GitHub-Delivery", f"contract-{d % 10**12:012d}")
        case.headers = headers
    return case


def _before_call(ctx, case, kwargs) -> None:
    if case.path == "/v1/webhooks/{source}" and case.method.upper() == "POST":
        source = (case.path_parameters or {}).get("source")
        if source in DOORS:
            try:
                body = wire(case.body)
            except (TypeError, ValueError):
                return
            if digest("unsigned", case.body) % 10 == 0:
                return  # sent with the generated headers: 401
            headers = dict(case.headers or {})
            sign_webhook(source, headers, body)
            case.headers = headers


def _register() -> None:
    import schemathesis

    schemathesis.hook("filter_case")(_filter_case)
    schemathesis.hook("map_case")(_map_case)
    schemathesis.hook("before_call")(_before_call)


if __name__ == "__main__":
    if sys.argv[1:] == ["seed"]:
        sys.exit(seed())
    print("usage: hooks.py seed", file=sys.stderr)
    sys.exit(2)
else:
    _register()
