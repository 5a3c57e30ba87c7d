"""ERC-721 / OpenSea metadata for a job. Deterministic: no timestamps and no job id, so the same
settings give the same document, the same CID and the same token URI."""

from __future__ import annotations

import json
from typing import Any

from mintpipe.v1 import broker_pb2


def _trait_name(key: str) -> str:
    return key.replace("_", " ").title()


def build_metadata(job: broker_pb2.PinJob, cids: dict[str, str]) -> dict[str, Any]:
    settings = json.loads(job.settings_json)
    attributes: list[dict[str, Any]] = [{"trait_type": "Scene", "value": job.scene}]
    for key in sorted(settings):
        value = settings[key]
        if isinstance(value, (str, int, float, bool)):
            attr: dict[str, Any] = {"trait_type": _trait_name(key), "value": value}
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                attr["display_type"] = "number"
            attributes.append(attr)
    types = {a.kind: a.content_type for a in job.artifacts}
    document: dict[str, Any] = {
        "name": f"mintpipe {job.scene} #{settings.get('seed', job.settings_hash[:8])}",
        "description": (f"A seamless generative animation, scene '{job.scene}', rendered deterministically by "
                        f"mintpipe renderer {job.renderer_version} from settings {job.settings_hash[:16]}."),
        "image": f"ipfs://{cids['image']}",
        "attributes": attributes,
        "properties": {
            "scene": job.scene,
            "settings": settings,
            "settings_hash": job.settings_hash,
            "renderer_version": job.renderer_version,
            "files": [{"uri": f"ipfs://{cid}", "type": types.get(kind, ""), "kind": kind}
                      for kind, cid in sorted(cids.items())],
        },
    }
    if "animation" in cids:
        document["animation_url"] = f"ipfs://{cids['animation']}"
    if "preview" in cids:
        document["properties"]["preview"] = f"ipfs://{cids['preview']}"
    return document
