"""The scene registry's settings schemas (JSON Schema 2020-12): enforced by the gateway, published at
/v1/scenes, implemented by the renderer. Pure data and validation; no imaging code here."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from jsonschema import Draft202012Validator

DEFAULT_SCENE = "gen1"
MAX_SETTINGS_BYTES = 8 * 1024
# The settings of one submission as the client wrote them (JSON text, before validation): the gateway refuses more
# (field `settings`), and the bridge refuses the same before batching, so a batch of large ones stays far below
# gRPC's 4 MiB message limit.
MAX_SETTINGS_JSON = 16 * 1024
SETTINGS_TOO_LARGE = f"larger than {MAX_SETTINGS_JSON} bytes"  # the refusal's text, after "settings: "
MAX_SETTINGS_DEPTH = 4

PALETTES = ["aurora", "ember", "lagoon", "orchid", "mono", "citrus"]

SCENES: dict[str, dict[str, Any]] = {
    "gen1": {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Orbital blooms",
        "description": "Glowing shapes orbit, pulse, drift or spiral over a flowing silk of colour; a seamless loop.",
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "seed": {"type": "integer", "minimum": 0, "maximum": 2**32 - 1, "default": 1, "title": "Seed",
                     "description": "Chooses the composition; the same settings always give the same art."},
            "palette": {"type": "string", "enum": PALETTES, "default": "aurora", "title": "Palette",
                        "description": "Colours of the silk background and of the shapes."},
            "shapes": {"type": "string", "enum": ["circles", "polygons", "rings", "mixed"], "default": "mixed",
                       "title": "Shapes", "description": "Which kinds of shape bloom over the silk."},
            "count": {"type": "integer", "minimum": 3, "maximum": 64, "default": 18, "title": "Shape count",
                      "description": "How many shapes."},
            "motion": {"type": "string", "enum": ["orbit", "pulse", "drift", "spiral"], "default": "orbit",
                       "title": "Motion", "description": "How the shapes move through the loop."},
            "speed": {"type": "integer", "minimum": 1, "maximum": 4, "default": 1, "title": "Speed",
                      "description": "Most cycles anything makes per loop; whole cycles keep the loop seamless."},
            "frames": {"type": "integer", "minimum": 10, "maximum": 240, "default": 100, "title": "Frames",
                       "description": "Frames in the loop."},
            "size": {"type": "integer", "minimum": 128, "maximum": 1024, "multipleOf": 2, "default": 512,
                     "title": "Size (px)", "description": "Width and height in pixels; even, for H.264."},
            "fps": {"type": "integer", "enum": [10, 12, 15, 20, 24, 25, 30, 50], "default": 25,
                    "title": "Frames per second", "description": "Playback rate of the GIF and the MP4."},
        },
    },
}

_VALIDATORS = {name: Draft202012Validator(schema) for name, schema in SCENES.items()}


class SettingsError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def _too_deep(value: object, limit: int) -> bool:
    """True when containers nest deeper than `limit`; iterative, so hostile nesting cannot exhaust the stack."""
    stack = [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            if level >= limit:
                return True
            stack.extend((child, level + 1) for child in (item.values() if isinstance(item, dict) else item))
    return False


def _not_utf8(value: object) -> str | None:
    """The dotted path of the first key or string that UTF-8 cannot encode (a lone surrogate, which a JSON
    `\\ud800` escape yields), or None."""
    stack: list[tuple[object, str]] = [(value, "")]
    while stack:
        item, path = stack.pop()
        children = item.items() if isinstance(item, dict) else enumerate(item) if isinstance(item, list) else ()
        for key, child in children:
            # The path names the key escaped (\\udc00), so the error message itself stays encodable.
            name = str(key).encode("utf-8", "backslashreplace").decode()
            where = f"{path}.{name}" if path else name
            for text in (key, child):
                if isinstance(text, str):
                    try:
                        text.encode()
                    except UnicodeEncodeError:
                        return where
            stack.append((child, where))
    return None


def validate_settings(scene: str, settings: object) -> dict[str, Any]:
    """The complete settings (defaults filled), or SettingsError naming the offending field."""
    if scene not in SCENES:
        raise SettingsError("scene", f"unknown scene {scene[:64]!r}; one of {', '.join(SCENES)}")
    if not isinstance(settings, dict):
        raise SettingsError("settings", "must be a JSON object")
    # Depth first (cheap, and it keeps json.dumps away from hostile nesting), then size.
    if _too_deep(settings, MAX_SETTINGS_DEPTH):
        raise SettingsError("settings", f"nested deeper than {MAX_SETTINGS_DEPTH} levels")
    if (where := _not_utf8(settings)) is not None:
        raise SettingsError(f"settings.{where}", "is not valid Unicode text (a lone surrogate)")
    try:
        encoded = json.dumps(settings, allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise SettingsError("settings", f"not representable as JSON ({exc})") from None
    if len(encoded.encode()) > MAX_SETTINGS_BYTES:
        raise SettingsError("settings", f"larger than {MAX_SETTINGS_BYTES} bytes")
    errors = sorted(_VALIDATORS[scene].iter_errors(settings), key=lambda e: (list(e.path), e.validator))
    if errors:
        error = errors[0]
        if error.validator == "additionalProperties":
            allowed = set(SCENES[scene]["properties"])
            extra = sorted(k for k in settings if k not in allowed)
            raise SettingsError(f"settings.{extra[0]}", f"not a setting of scene {scene}")
        path = ".".join(str(p) for p in error.path)
        field = f"settings.{path}" if path else "settings"
        raise SettingsError(field, _human(error))
    properties = SCENES[scene]["properties"]
    complete = {key: prop["default"] for key, prop in properties.items()}
    for key, value in settings.items():
        # JSON Schema counts 10.0 as an integer; store it as 10 so equal settings hash equally.
        complete[key] = int(value) if properties[key]["type"] == "integer" else value
    return complete


def _human(error: Any) -> str:
    v, expected = error.validator, error.validator_value
    if v == "minimum":
        return f"must be at least {expected}"
    if v == "maximum":
        return f"must be at most {expected}"
    if v == "enum":
        return f"must be one of {', '.join(map(str, expected))}"
    if v == "type":
        return f"must be of type {expected}"
    if v == "multipleOf":
        return f"must be a multiple of {expected}"
    return error.message


def settings_hash(scene: str, settings: dict[str, Any]) -> str:
    canonical = json.dumps({"scene": scene, "settings": settings}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def describe_scenes() -> list[dict[str, Any]]:
    return [{"name": name, "title": schema["title"], "description": schema["description"], "schema": schema}
            for name, schema in SCENES.items()]
