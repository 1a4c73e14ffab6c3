"""PostgreSQL for the test suite: the server named by WARP_REGISTRY_TEST_DATABASE_URL, or a
throwaway cluster started from the installed server binaries.

Placeholder until the PostgreSQL store lands: every PostgreSQL-parametrised test skips.
"""

from __future__ import annotations

import pytest


def fresh_database_url(name: str) -> str:
    """A URL of an empty database for one test."""
    pytest.skip("the PostgreSQL store is not built yet")
