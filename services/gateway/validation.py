"""What the gateway checks before anything is stored or queued. Each failure names its field."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass

from mintpipe.core.scenes import DEFAULT_SCENE, MAX_SETTINGS_JSON, SETTINGS_TOO_LARGE, SettingsError, validate_settings
from mintpipe.core.wallets import normalize_wallet
from mintpipe.v1 import gateway_pb2

_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")


class InvalidRequest(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclass(frozen=True)
class ValidJob:
    scene: str
    settings: dict
    settings_json: str  # canonical
    wallet: str  # checksummed
    request_hash: str


def canonical_json(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def validate_submission(request: gateway_pb2.SubmitJobRequest) -> ValidJob:
    if request.idempotency_key and not _KEY.match(request.idempotency_key):
        raise InvalidRequest("idempotency_key", "1-255 visible ASCII characters")
    if len(request.settings_json) > MAX_SETTINGS_JSON:
        raise InvalidRequest("settings", SETTINGS_TOO_LARGE)
    try:
        raw = json.loads(request.settings_json or "{}")
    except json.JSONDecodeError as exc:
        raise InvalidRequest("settings", f"not valid JSON ({exc.msg})") from None
    except (ValueError, RecursionError) as exc:  # e.g. an integer of more than 4300 digits
        raise InvalidRequest("settings", f"not valid JSON ({str(exc)[:100]})") from None
    if not isinstance(raw, dict):
        raise InvalidRequest("settings", "must be a JSON object")
    scene = request.scene or DEFAULT_SCENE
    try:
        settings = validate_settings(scene, raw)
    except SettingsError as exc:
        raise InvalidRequest(exc.field, exc.message) from None
    try:
        wallet = normalize_wallet(request.wallet)
    except ValueError as exc:
        raise InvalidRequest("wallet", str(exc)) from None
    settings_json = canonical_json(settings)
    # The request's identity for idempotency: what it asks for after defaults, not how it was spelled.
    request_hash = hashlib.sha256(canonical_json(
        {"scene": scene, "settings": settings, "wallet": wallet}).encode()).hexdigest()
    return ValidJob(scene=scene, settings=settings, settings_json=settings_json, wallet=wallet,
                    request_hash=request_hash)
