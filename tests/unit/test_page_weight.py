"""The mint page as built (web/dist/page): small enough for a phone on a slow link, and loading nothing from
another machine (no CDN, no web font, no remote image)."""

import gzip
import re
from pathlib import Path

import pytest

from status.bridge.pages import load_page

pytestmark = pytest.mark.unit
PAGE = Path(__file__).resolve().parents[2] / "web" / "dist" / "page"
BUDGET_GZIP = 24 * 1024  # everything the page loads before any art, compressed as the bridge sends it


def test_the_page_is_light():
    files = [p for p in PAGE.iterdir() if p.is_file()]
    assert {p.name for p in files} >= {"index.html", "main.js", "style.css"}
    squeezed = sum(len(gzip.compress(p.read_bytes(), 9)) for p in files)
    print(f"\npage: {sum(p.stat().st_size for p in files)} bytes, {squeezed} gzipped")
    assert squeezed < BUDGET_GZIP


def test_the_page_loads_nothing_from_elsewhere():
    html = (PAGE / "index.html").read_text()
    assert not re.search(r'(src|href)="(https?:)?//', html)
    assert "@import" not in (PAGE / "style.css").read_text()
    assert not re.search(r"url\((?!data:)", (PAGE / "style.css").read_text())
    script = (PAGE / "main.js").read_text()
    assert "import(" not in script and not re.search(r"""fetch\(\s*["'`]https?:""", script)


def test_the_bridge_versions_the_pages_assets():
    index, assets = load_page(PAGE)
    html = index.body.decode()
    for name in ("main.js", "style.css"):
        assert f'/page/{name}?v={assets[name].etag[1:9]}"' in html
