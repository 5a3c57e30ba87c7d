"""The mint page names the collection's custom errors by selector (web/page/mint.js): each selector there is
the one the compiled contract's ABI gives (keccak256 computed by web3, independently of the page)."""

import json
import re
from pathlib import Path

import pytest
from web3 import Web3

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]


def test_the_pages_revert_selectors_are_the_contracts():
    page = (ROOT / "web" / "page" / "mint.js").read_text()
    selectors = dict(re.findall(r'"(0x[0-9a-f]{8})": "\w+", // (\w+\([\w,]*\))', page))
    assert len(selectors) == 3
    abi = json.loads((ROOT / "contracts" / "build" / "MintpipeCollection.json").read_text())["abi"]
    errors = {f"{e['name']}({','.join(i['type'] for i in e['inputs'])})" for e in abi if e["type"] == "error"}
    for selector, signature in selectors.items():
        assert signature in errors, signature
        assert Web3.keccak(text=signature)[:4].hex() == selector[2:], signature
