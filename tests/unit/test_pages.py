"""The bridge's page routes (status.bridge.pages) on the built page, and on a folder where it was never built."""

from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from status.bridge.pages import DEFAULT_WEB_DIR, create_page_router
from status.errors import ApiError, api_error_handler

pytestmark = pytest.mark.unit


def client(web_dir: Path) -> TestClient:
    app = FastAPI()
    app.add_exception_handler(ApiError, api_error_handler)
    app.include_router(create_page_router(web_dir))
    return TestClient(app)


def test_the_page_and_a_jobs_link_are_the_same_document_revalidated_each_time():
    web = client(DEFAULT_WEB_DIR)
    home = web.get("/")
    assert home.status_code == 200 and home.headers["content-type"].startswith("text/html")
    assert home.headers["cache-control"] == "no-cache" and home.headers["etag"]
    assert "frame-ancestors 'none'" in home.headers["content-security-policy"]
    assert web.get("/jobs/" + "ab" * 16).text == home.text
    assert web.get("/", headers={"If-None-Match": home.headers["etag"]}).status_code == 304


def test_assets_are_immutable_only_at_their_versioned_url_and_gzipped_when_asked():
    web = client(DEFAULT_WEB_DIR)
    html = web.get("/").text
    versioned = html.split('src="', 1)[1].split('"', 1)[0]
    assert versioned.startswith("/page/main.js?v=")
    script = web.get(versioned, headers={"Accept-Encoding": "gzip"})
    assert script.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert script.headers["content-encoding"] == "gzip"
    assert script.content == (DEFAULT_WEB_DIR / "page" / "main.js").read_bytes()  # the client unzips it
    assert web.get("/page/main.js?v=00000000").headers["cache-control"] == "no-cache"  # a stale link revalidates
    missing = web.get("/page/nope.js")
    assert missing.status_code == 404 and missing.json()["error"]["field"] == "name"


def test_an_unbuilt_page_is_a_503_that_says_how_to_build_it(tmp_path):
    answer = client(tmp_path).get("/")
    assert answer.status_code == 503
    assert "node web/build.mjs" in answer.json()["error"]["message"]
