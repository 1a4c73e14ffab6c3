"""Fixtures of the enrollment tests; test modules load this with `pytest_plugins`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.conftest import Registry
from tests.enroll_support import AccessRole
from tests.warp_test_client import WarpTestClient


@pytest.fixture
async def access(registry: Registry) -> AccessRole:
    key = await registry.store.enrollment.signing_key(registry.account_id)
    assert key is not None
    return AccessRole(key)


@pytest.fixture
async def warp_http(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """Plain HTTP to the in-process app, at the root (the client API has no /client/v4)."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as client:
        yield client


@pytest.fixture
def warp(warp_http: httpx.AsyncClient) -> WarpTestClient:
    """One WARP client installation (its own serial number and install id)."""
    return WarpTestClient(warp_http)
