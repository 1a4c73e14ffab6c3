"""The documentation stays true to the code: generated pages are fresh, every error code and
every command-line option is documented, the README's test command is CI's, and links
between the pages resolve.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import re
from pathlib import Path
from types import ModuleType

import click
import pytest

import warp_registry
from warp_registry import errors
from warp_registry.cli import main
from warp_registry.errors import ApiError

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"

SERVER_COMMAND = (
    "python3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/warp-registry serve"
)
TEST_COMMAND = (
    "python3 -m venv .venv && .venv/bin/pip install -q -e '.[test]' && .venv/bin/python -m pytest"
)


def _load_script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- docs/endpoints.md ---


def test_endpoints_page_is_fresh() -> None:
    script = _load_script("gen_endpoints_doc")
    checked_in = (DOCS / "endpoints.md").read_text(encoding="utf-8")
    assert checked_in == script.render(), (
        "docs/endpoints.md is stale: run `python scripts/gen_endpoints_doc.py`"
    )


# --- docs/errors.md ---


def _all_error_classes() -> list[type[ApiError]]:
    """Every ApiError subclass in the package (its modules imported first)."""
    for module in pkgutil.walk_packages(warp_registry.__path__, "warp_registry."):
        if not module.name.endswith("__main__"):
            importlib.import_module(module.name)

    found: list[type[ApiError]] = []
    pending = list(ApiError.__subclasses__())
    while pending:
        cls = pending.pop()
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return sorted(found, key=lambda cls: (cls.code, cls.__name__))


def _table_rows(text: str) -> set[tuple[str, str]]:
    """(first cell, second cell) of every Markdown table row."""
    rows = set()
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) >= 2:
            rows.add((cells[0], cells[1]))
    return rows


def test_every_error_class_is_documented_with_its_status() -> None:
    rows = _table_rows((DOCS / "errors.md").read_text(encoding="utf-8"))
    classes = _all_error_classes()
    assert len(classes) > 10
    missing = [
        f"{cls.__name__} ({cls.code}, HTTP {cls.status})"
        for cls in classes
        if (str(cls.code), str(cls.status)) not in rows
    ]
    assert not missing, f"docs/errors.md lacks: {', '.join(missing)}"


def test_every_error_chain_code_is_documented() -> None:
    rows = _table_rows((DOCS / "errors.md").read_text(encoding="utf-8"))
    first_cells = {first for first, _ in rows}
    chain_codes = {value for name, value in vars(errors).items() if name.endswith("_CHAIN")}
    assert chain_codes >= {6111, 6102, 6103, 11000}
    missing = sorted(code for code in chain_codes if str(code) not in first_cells)
    assert not missing, f"docs/errors.md lacks error_chain codes {missing}"


def test_every_documented_code_has_a_source() -> None:
    text = (DOCS / "errors.md").read_text(encoding="utf-8")
    for line in text.splitlines():
        if re.match(r"\| \d{4,5} \|", line):
            assert "OBS" in line or "our choice" in line or "from usque" in line, line


# --- docs/cli.md ---


def _commands(group: click.Group, prefix: str = "") -> list[tuple[str, click.Command]]:
    found = []
    for name, command in group.commands.items():
        found.append((f"{prefix}{name}", command))
        if isinstance(command, click.Group):
            found.extend(_commands(command, f"{prefix}{name} "))
    return found


def test_cli_page_documents_every_command_option_and_variable() -> None:
    text = (DOCS / "cli.md").read_text(encoding="utf-8")
    for name, command in _commands(main):
        if isinstance(command, click.Group):
            continue
        heading = re.search(rf"^## `{re.escape(name)}( [A-Z_]+)?`$", text, re.MULTILINE)
        assert heading, f"docs/cli.md has no section for `{name}`"
        section = text[heading.end() :].split("\n## ", 1)[0]
        for param in command.params:
            if isinstance(param, click.Option) and param.name != "help":
                assert f"`{param.opts[0]}" in section, f"{name} {param.opts[0]}"
                assert f"`{param.envvar}`" in section, f"{name} {param.envvar}"


# --- README.md ---


def _fenced_blocks(markdown: str) -> list[str]:
    return re.findall(r"```[a-z]*\n(.*?)```", markdown, re.DOTALL)


def test_readme_gives_exactly_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Two commands", 1)[1].split("\n## ", 1)[0]
    commands = [block.strip() for block in _fenced_blocks(section)]
    assert commands == [SERVER_COMMAND, TEST_COMMAND]


def test_ci_runs_the_readme_test_command() -> None:
    script = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    last_line = script.rstrip("\n").splitlines()[-1]
    assert last_line == TEST_COMMAND


def test_readme_points_the_sdks_at_the_server() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert 'base_url="http://127.0.0.1:8787/client/v4"' in readme
    assert "baseURL: 'http://127.0.0.1:8787/client/v4'" in readme
    assert "CLOUDFLARE_BASE_URL" in readme


# --- links between pages ---


_LINK = re.compile(r"\]\(([^)#\s]+\.md)(?:#[^)]*)?\)")


@pytest.mark.parametrize(
    "page",
    [ROOT / "README.md", *sorted(DOCS.glob("*.md"))],
    ids=lambda path: path.name,
)
def test_links_to_other_pages_resolve(page: Path) -> None:
    for target in _LINK.findall(page.read_text(encoding="utf-8")):
        if "://" in target:
            continue
        assert (page.parent / target).exists(), f"{page.name} links to missing {target}"
