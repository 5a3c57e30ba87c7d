"""The lean POST /v1/jobs stands in front of the app's own middleware: an app given middleware it does not
account for refuses to start, instead of skipping that middleware for the submissions the lean route takes."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from starlette.middleware.gzip import GZipMiddleware

from status.bridge.submit import SubmitFastPath, install_fast_path
from status.errors import BodySizeLimit

pytestmark = pytest.mark.unit


def app_with(*extra: type) -> FastAPI:
    app = FastAPI()
    app.add_middleware(BodySizeLimit, limit=1024)
    install_fast_path(app, None, 1024, lambda request: "127.0.0.1")  # type: ignore[arg-type]
    for middleware in extra:
        app.add_middleware(middleware)
    return app


def test_the_stack_it_accounts_for_is_built_with_the_lean_route_in_front():
    stack = app_with().build_middleware_stack()
    assert isinstance(stack.app, SubmitFastPath)


def test_middleware_added_later_stops_the_app_from_starting():
    with pytest.raises(RuntimeError, match="GZipMiddleware"):
        app_with(GZipMiddleware).build_middleware_stack()
