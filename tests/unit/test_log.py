"""Log redaction, checked on the final JSON lines the real logging configuration writes."""

from __future__ import annotations

import json
import logging

import pytest

from mintpipe.runtime.log import get_logger, is_secret_key, redact_url, scrub

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


# RPC URLs whose API key sits in the path or the query (issue 20, defect 4). Made-up keys of the real shapes.
ALCHEMY_KEY = "AbCdEf123GhIjKl456MnOpQrStUv"
INFURA_KEY = "0123456789abcdef0123456789abcdef"  # 32 hex: the same shape as a job id
QUICKNODE_KEY = "abcdef0123456789abcdef0123456789abcdef01"
ANKR_KEY = "9f" * 32
QUERY_KEY = "QK-77aa88bb99"
KEYED_URLS = [
    (f"https://eth-mainnet.g.alchemy.com/v2/{ALCHEMY_KEY}", ALCHEMY_KEY, "eth-mainnet.g.alchemy.com/v2/***"),
    (f"https://mainnet.infura.io/v3/{INFURA_KEY}", INFURA_KEY, "mainnet.infura.io/v3/***"),
    (f"https://xyz.quiknode.pro/{QUICKNODE_KEY}/", QUICKNODE_KEY, "xyz.quiknode.pro/***/"),
    (f"wss://mainnet.infura.io/ws/v3/{INFURA_KEY}", INFURA_KEY, "wss://mainnet.infura.io/ws/v3/***"),
    (f"https://rpc.ankr.com/eth/{ANKR_KEY}", ANKR_KEY, "rpc.ankr.com/eth/***"),
    (f"https://api.etherscan.io/api?module=proxy&apikey={QUERY_KEY}", QUERY_KEY, "?module=proxy&apikey=***"),
    (f"https://rpc.example.org/eth?key={QUERY_KEY}&chain=1", QUERY_KEY, "rpc.example.org/eth?key=***&chain=1"),
    (f"https://rpc.example.org/?token={QUERY_KEY}", QUERY_KEY, "rpc.example.org/?token=***"),
    (f"https://rpc.example.org/?access_token={QUERY_KEY}", QUERY_KEY, "?access_token=***"),
    (f"https://rpc.example.org/?api_key={QUERY_KEY}", QUERY_KEY, "?api_key=***"),
    (f"https://rpc.example.org/?secret={QUERY_KEY}", QUERY_KEY, "?secret=***"),
]


@pytest.mark.parametrize(("url", "key", "kept"), KEYED_URLS)
def test_keys_in_rpc_url_paths_and_queries_never_reach_the_log(lines, url, key, kept):
    job_id = "fedcba9876543210fedcba9876543210"
    # The error as text, as an exception object (rendered through repr) and in a traceback.
    try:
        raise ConnectionError(f"RPC error for url '{url}': 401 Unauthorized")
    except ConnectionError as exc:
        get_logger("t").exception("chain unreachable", error=str(exc), exc=exc, job_id=job_id, rpc=url)
    raw = lines.raw()
    assert key not in raw
    (line,) = lines()
    for field in ("error", "exc", "exception", "rpc"):
        assert kept in line[field], field
    assert line["job_id"] == job_id  # 32 hex outside a URL is a job id, not a key


def test_a_job_id_field_is_kept_while_the_same_shape_inside_a_url_is_not(lines):
    get_logger("t").warning("relay failed", job_id=INFURA_KEY, tx_hash="0x" + "ab" * 32,
                            error=f"POST https://mainnet.infura.io/v3/{INFURA_KEY} failed for job {INFURA_KEY}")
    (line,) = lines()
    assert line["job_id"] == INFURA_KEY and line["tx_hash"] == "0x" + "ab" * 32
    assert line["error"] == f"POST https://mainnet.infura.io/v3/*** failed for job {INFURA_KEY}"


def test_public_path_words_cids_and_job_urls_stay_readable():
    cid = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"
    for url in (f"https://gateway.pinata.cloud/ipfs/{cid}/metadata.json", f"https://w3s.link/ipfs/{cid}",
                f"http://status:8080/v1/jobs/{INFURA_KEY}/mint", "https://rpc.ankr.com/eth", "https://eth.llamarpc.com",
                "http://127.0.0.1:8545/", "https://sepolia.etherscan.io/tx/0x" + "ab" * 32,
                "https://polygon-rpc.com/v1/mainnet-archive-node?chain=137&token_id=7"):
        assert scrub(f"calling {url} now") == f"calling {url} now"


def test_a_path_quoted_alone_by_urllib3_is_scrubbed_too():
    text = (f"HTTPSConnectionPool(host='eth-mainnet.g.alchemy.com', port=443): Max retries exceeded with url: "
            f"/v2/{ALCHEMY_KEY} (Caused by NewConnectionError('refused'))")
    assert scrub(text) == text.replace(ALCHEMY_KEY, "***")


def test_keys_next_to_punctuation_and_passwords_are_both_scrubbed():
    assert scrub(f"see (https://mainnet.infura.io/v3/{INFURA_KEY}).") == "see (https://mainnet.infura.io/v3/***)."
    assert scrub(f"see https://x.io/?key={QUERY_KEY}).") == "see https://x.io/?key=***)."
    assert (scrub(f"https://me:{PASSWORD}@node.example:8545/v2/{ALCHEMY_KEY}?x=1")
            == "https://me:***@node.example:8545/v2/***?x=1")


def test_redact_url_is_the_one_config_uses():
    from mintpipe import config

    assert config.redact_url is redact_url
    assert redact_url(f"https://eth-mainnet.g.alchemy.com/v2/{ALCHEMY_KEY}") == "https://eth-mainnet.g.alchemy.com/v2/***"
    assert redact_url(f"wss://u:p@ss@[::1]:8546/ws/v3/{INFURA_KEY}?apikey=z") == "wss://u:***@[::1]:8546/ws/v3/***?apikey=***"
    assert redact_url("amqp://guest:s3cret@rabbit:5672/vh") == "amqp://guest:***@rabbit:5672/vh"
    assert redact_url("postgresql://db/mintpipe?sslmode=require") == "postgresql://db/mintpipe?sslmode=require"
    assert redact_url("http://127.0.0.1:8545") == "http://127.0.0.1:8545"
