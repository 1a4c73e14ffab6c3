"""The pytest plugin `warp_registry.testing`: the example of docs/testing.md runs as a
user would run it, in its own pytest process, in process and against a running server."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests import processes
from tests.conftest import cli

DOCS = Path(__file__).resolve().parent.parent / "docs"
INI = """\
[pytest]
asyncio_mode = strict
asyncio_default_fixture_loop_scope = function
filterwarnings =
    error
    ignore::DeprecationWarning
"""


def _example(tmp_path: Path) -> Path:
    """The example test file, exactly as docs/testing.md shows it."""
    text = (DOCS / "testing.md").read_text(encoding="utf-8")
    found = re.search(r"<!-- example: (\S+) -->\n```python\n(.*?)```", text, re.DOTALL)
    assert found, "docs/testing.md lost its marked example"
    path = tmp_path / found.group(1)
    path.write_text(found.group(2), encoding="utf-8")
    (tmp_path / "pytest.ini").write_text(INI, encoding="utf-8")
    return path


def _run_pytest(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    suite = tmp_path / "suite"
    suite.mkdir()
    example = _example(suite)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("WARP_REGISTRY_")}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", example.name],
        cwd=suite, capture_output=True, text=True, timeout=300, env={**clean, **env},
    )  # fmt: skip


def _passed(done: subprocess.CompletedProcess[str]) -> int:
    assert done.returncode == 0, done.stdout + done.stderr
    found = re.search(r"(\d+) passed", done.stdout)
    assert found, done.stdout
    return int(found.group(1))


def test_the_documented_example_passes_in_process(tmp_path: Path) -> None:
    assert _passed(_run_pytest(tmp_path, {})) == 3


@pytest.mark.server
def test_the_documented_example_passes_against_a_server(tmp_path: Path) -> None:
    database = str(tmp_path / "server.db")
    done = cli("init", "--json", "--database", database)
    assert done.returncode == 0, done.stderr
    created = json.loads(done.stdout)
    with processes.running(database, log_path=tmp_path / "server.log") as server:
        root = server.base_url.removesuffix("/client/v4")
        run = _run_pytest(
            tmp_path,
            {"WARP_REGISTRY_URL": root, "WARP_REGISTRY_ADMIN_TOKEN": created["admin_token"]},
        )
    assert _passed(run) == 3
