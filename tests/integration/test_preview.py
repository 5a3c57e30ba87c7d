"""Previews: the bridge's POST /v1/preview asks real renderer gRPC servers (RenderPreview) for a still, balanced
round robin over every replica; bad settings are refused by field before any drawing; limits answer 429."""

from __future__ import annotations

import io
import json

import grpc
import httpx
import numpy as np
import pytest
from PIL import Image

from mintpipe.core.scenes import validate_settings
from mintpipe.limits.memory import KeyedRateLimiter
from mintpipe.v1 import renderer_pb2, renderer_pb2_grpc
from renderer.render import render_job
from tests.support.live_bridge import live_bridge
from tests.support.renderers import preview_replicas, target

pytestmark = pytest.mark.integration


def png_pixels(data: bytes) -> np.ndarray:
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG"
    return np.asarray(image.convert("RGB"))


@pytest.fixture(scope="module")
def replicas():
    with preview_replicas(2) as running:
        yield running


@pytest.fixture(scope="module")
def bridge(rabbit_url, tmp_path_factory, replicas):
    with live_bridge(rabbit_url, tmp_path_factory.mktemp("preview-bridge"), renderer_target=target(replicas),
                     preview_limiter=KeyedRateLimiter(100_000, 60, 100_000)) as url:
        yield url


def drawn(replicas) -> int:
    return sum(r.service.drawn for r in replicas)


def test_the_preview_is_the_frame_the_jobs_preview_png_will_show(bridge, tmp_path):
    settings = {"seed": 7, "size": 128, "frames": 30, "palette": "ember"}
    answer = httpx.post(f"{bridge}/v1/preview", json={"settings": settings, "size": 128}, timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "image/png"
    assets = render_job("gen1", validate_settings("gen1", settings), tmp_path)
    job_preview = next(a for a in assets if a.kind == "preview").path.read_bytes()
    assert np.array_equal(png_pixels(answer.content), png_pixels(job_preview))


def test_settings_change_the_still_and_the_same_settings_come_from_the_cache(bridge, replicas):
    base = {"seed": 11, "count": 9}
    first = httpx.post(f"{bridge}/v1/preview", json={"settings": base}, timeout=10)
    other = httpx.post(f"{bridge}/v1/preview", json={"settings": {**base, "palette": "citrus"}}, timeout=10)
    assert first.status_code == other.status_code == 200
    assert png_pixels(first.content).shape == (256, 256, 3)  # the default preview size
    assert not np.array_equal(png_pixels(first.content), png_pixels(other.content))
    assert first.headers["x-settings-hash"] != other.headers["x-settings-hash"]
    # Ask again until the replica that drew it answers (round robin): the bytes come from its cache.
    before = drawn(replicas)
    again = [httpx.post(f"{bridge}/v1/preview", json={"settings": base}, timeout=10) for _ in range(4)]
    assert all(a.content == first.content for a in again)
    assert any(a.headers["x-preview-cached"] == "1" for a in again)
    assert drawn(replicas) - before <= 1  # at most the other replica drew it once


def test_the_json_twin_carries_the_complete_settings_and_the_image(bridge):
    answer = httpx.post(f"{bridge}/v1/preview", json={"settings": {"seed": 3}, "size": 64},
                        headers={"Accept": "application/json"}, timeout=10)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["settings"] == validate_settings("gen1", {"seed": 3})
    assert body["size"] == 64 and body["frame"] == 100 // 3 and len(body["settings_hash"]) == 64
    assert body["image"].startswith("data:image/png;base64,")


def test_previews_are_spread_over_every_replica(bridge, replicas):
    seen = set()
    for seed in range(100, 110):
        answer = httpx.post(f"{bridge}/v1/preview?format=json", json={"settings": {"seed": seed}, "size": 64},
                            timeout=10)
        assert answer.status_code == 200, answer.text
        seen.add(answer.json()["replica"])
    assert seen == {"replica-0", "replica-1"}


@pytest.mark.parametrize(("body", "field", "words"), [
    ({"settings": {"count": 999}}, "settings.count", "must be at most 64"),
    ({"settings": {"palette": "neon"}}, "settings.palette", "must be one of"),
    ({"settings": {"glitter": 1}}, "settings.glitter", "not a setting of scene gen1"),
    ({"settings": {"size": 129}}, "settings.size", "multiple of 2"),
    ({"settings": {}, "scene": "gen9"}, "scene", "unknown scene"),
    ({"settings": {}, "size": 4096}, "size", "less than or equal to 512"),
    ({"settings": "seed=1"}, "settings", "dictionary"),
])
def test_bad_settings_are_refused_by_field_and_nothing_is_drawn(bridge, replicas, body, field, words):
    before = drawn(replicas)
    answer = httpx.post(f"{bridge}/v1/preview", json=body, timeout=10)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["field"] == field and words in error["message"], error
    assert drawn(replicas) == before


async def test_a_renderer_refuses_bad_settings_itself_naming_the_field(replicas):
    async with grpc.aio.insecure_channel(f"127.0.0.1:{replicas[0].port}") as channel:
        stub = renderer_pb2_grpc.RendererServiceStub(channel)
        for settings_json, field in (('{"frames": 5}', "settings.frames"), ("{nope", "settings"),
                                     ('{"seed": -1}', "settings.seed")):
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub.RenderPreview(renderer_pb2.RenderPreviewRequest(settings_json=settings_json), timeout=5)
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert refused.value.details().startswith(field + ":"), refused.value.details()
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.RenderPreview(renderer_pb2.RenderPreviewRequest(size=9000), timeout=5)
        assert refused.value.details().startswith("size:")


def test_a_replica_past_its_preview_rate_answers_429_with_retry_after(rabbit_url, tmp_path):
    with preview_replicas(1, rate_per_second=0.2, burst=2) as one, \
            live_bridge(rabbit_url, tmp_path, renderer_target=target(one)) as url:
        codes = [httpx.post(f"{url}/v1/preview", json={"settings": {"seed": s}, "size": 64}, timeout=10)
                 for s in range(3)]
        assert [c.status_code for c in codes] == [200, 200, 429]
        refused = codes[2]
        assert refused.json()["error"]["field"] == "preview"
        assert int(refused.headers["retry-after"]) >= 1
        # A cached still costs nothing, so it is still answered.
        assert httpx.post(f"{url}/v1/preview", json={"settings": {"seed": 0}, "size": 64},
                          timeout=10).status_code == 200
        assert one[0].service.drawn == 2


def test_a_client_past_its_preview_rate_answers_429(rabbit_url, tmp_path):
    with preview_replicas(1) as one, live_bridge(rabbit_url, tmp_path, renderer_target=target(one),
                                                 preview_limiter=KeyedRateLimiter(1, 60, 2)) as url:
        codes = [httpx.post(f"{url}/v1/preview", json={"settings": {"seed": s}, "size": 64}, timeout=10).status_code
                 for s in range(3)]
        assert codes == [200, 200, 429]


def test_with_one_replica_down_the_other_answers_and_with_none_a_503_says_so(rabbit_url, tmp_path):
    with preview_replicas(2) as two, live_bridge(rabbit_url, tmp_path, renderer_target=target(two)) as url:
        assert httpx.post(f"{url}/v1/preview", json={"settings": {"seed": 1}, "size": 64}, timeout=10
                          ).status_code == 200
        two[0].stop()
        for seed in range(2, 6):
            answer = httpx.post(f"{url}/v1/preview?format=json", json={"settings": {"seed": seed}, "size": 64},
                                timeout=10)
            assert answer.status_code == 200, answer.text
            assert answer.json()["replica"] == "replica-1"
        two[1].stop()
        answer = httpx.post(f"{url}/v1/preview", json={"settings": {"seed": 9}, "size": 64}, timeout=15)
        assert answer.status_code == 503
        assert answer.json()["error"]["field"] == "preview"
        assert "no renderer" in answer.json()["error"]["message"]
        assert json.loads(answer.text)  # the error is JSON, never an HTML or text page


@pytest.mark.timeout(120)
def test_whatever_a_client_sends_to_preview_the_answer_is_one_the_schema_promises(bridge):
    """schemathesis against POST /v1/preview as /openapi.json documents it: no 5xx, documented codes, bodies and
    content types (PNG or its JSON twin), bad input refused."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis import GenerationMode
    from schemathesis import checks as st_checks
    from schemathesis.specs.openapi import checks as openapi_checks

    checks = [st_checks.not_a_server_error, openapi_checks.status_code_conformance,
              openapi_checks.content_type_conformance, openapi_checks.response_schema_conformance,
              openapi_checks.negative_data_rejection]
    operation = schemathesis.openapi.from_url(f"{bridge}/openapi.json").include(path="/v1/preview")
    [result] = list(operation.get_all_operations())
    seen = []
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
        @given(case=result.ok().as_strategy(mode))
        @settings(max_examples=40, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        def exercise(case):
            reply = case.call_and_validate(checks=checks, timeout=20)
            seen.append(reply.status_code)

        exercise()
    assert 200 in seen and 400 in seen, seen
