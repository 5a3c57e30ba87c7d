"""Log redaction, checked on the final JSON lines the real logging configuration writes."""

from __future__ import annotations

import json
import logging

import pytest

from mintpipe.log import get_logger, is_secret_key, scrub

pytestmark = pytest.mark.unit

# A JWT-shaped value (header {"alg":"HS256","typ":"JWT"}); nothing signs with it.
JWT = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJtaW50cGlwZS10ZXN0In0.c2lnbmF0dXJlLW5vdC1yZWFs"
BEARER = "adm1n-Bearer-Value.42"
PASSWORD = "hunter2-amqp-pw"
SECRETS = (JWT, BEARER, PASSWORD)


def test_public_token_fields_are_kept_and_secret_names_redacted(lines):
    get_logger("t").info(
        "pinned", token_uri="ipfs://bafkreiexample", token_id=7, tokens_used=3,
        jwt=JWT, password="p", secret="s", authorization="Bearer x", admin_token="a", api_key="k",
        pinata_jwt="j", access_token="t", client_secret="c", Api_Key="k2",
        request={"headers": {"Authorization": "Basic Zm9vOmJhcg==", "accept": "*/*"}, "token_uri": "ipfs://x"},
    )
    (line,) = lines()
    assert line["token_uri"] == "ipfs://bafkreiexample"
    assert line["token_id"] == 7 and line["tokens_used"] == 3
    for key in ("jwt", "password", "secret", "authorization", "admin_token", "api_key", "pinata_jwt",
                "access_token", "client_secret", "Api_Key"):
        assert line[key] == "***", key
    assert line["request"] == {"headers": {"Authorization": "***", "accept": "*/*"}, "token_uri": "ipfs://x"}


@pytest.mark.parametrize("key", ["token_uri", "token_id", "tokenizer", "keys_deleted", "idempotency_key_hours"])
def test_public_names_are_not_secret(key):
    assert not is_secret_key(key)


@pytest.mark.parametrize("key", ["token", "JWT", "x-api-key", "pinata_api_key", "refresh_token", "db_password"])
def test_secret_names_are_secret(key):
    assert is_secret_key(key)


def _boom() -> None:
    raise ConnectionError(f"cannot reach amqp://mintpipe:{PASSWORD}@rabbit:5672/prod with "
                          f"Authorization: Bearer {BEARER}; pinata said no to {JWT}")


def test_secrets_in_a_traceback_are_scrubbed_in_the_rendered_line(lines):
    try:
        _boom()
    except ConnectionError:
        get_logger("t").exception("upload failed")
    raw = lines.raw()
    for secret in SECRETS:
        assert secret not in raw
    line = json.loads(raw)
    assert "Traceback" in line["exception"] and "ConnectionError" in line["exception"]
    assert "amqp://mintpipe:***@rabbit:5672/prod" in line["exception"]
    assert "Bearer ***" in line["exception"]


def test_secrets_in_a_library_traceback_and_in_exception_values_are_scrubbed(lines):
    try:
        _boom()
    except ConnectionError as exc:
        # A library logging through the standard library (as aiormq does), and our code passing the
        # exception object itself as a value (rendered through repr).
        logging.getLogger("aiormq.connection").error("connection lost", exc_info=True)
        get_logger("t").warning("retrying", error=exc)
    raw = lines.raw()
    for secret in SECRETS:
        assert secret not in raw
    first, second = (json.loads(line) for line in raw.splitlines())
    assert "Traceback" in first["exception"]
    assert second["error"].startswith("ConnectionError(") and "***" in second["error"]


def test_scrub_covers_urls_bearers_jwts_and_assignments():
    assert scrub(f"amqp://guest:{PASSWORD}@h/") == "amqp://guest:***@h/"
    assert scrub(f"redis://:{PASSWORD}@h") == "redis://:***@h"
    assert scrub(f"Bearer {BEARER} ok") == "Bearer *** ok"
    assert scrub(f"got {JWT}.") == "got ***."
    assert scrub(f"dsn host=db password={PASSWORD} user=x") == "dsn host=db password=*** user=x"
    assert scrub("?admin_token=abc&token_uri=ipfs://bafy") == "?admin_token=***&token_uri=ipfs://bafy"
    assert scrub("ipfs://bafkreiexample and tokens") == "ipfs://bafkreiexample and tokens"
