"""The README states what the code does: its model table is the one specs.py generates."""

from __future__ import annotations

from pathlib import Path

from wan_image_mcp.catalog import model_table

README = Path(__file__).parent.parent / "README.md"


def test_readme_model_table_matches_the_specs() -> None:
    text = README.read_text(encoding="utf-8")
    start, end = "<!-- models:start -->\n", "\n<!-- models:end -->"
    assert start in text and end in text, "README lost its model table markers"
    table = text.split(start, 1)[1].split(end, 1)[0]
    assert table == model_table(), "README model table is stale: python -m wan_image_mcp.catalog"


def test_readme_test_command_is_what_ci_runs() -> None:
    ci = (Path(__file__).parent.parent / ".ci" / "run").read_text()
    assert "pip install --quiet -e '.[test]'" in ci and ".venv/bin/python -m pytest" in ci
    assert ".venv/bin/pip install -e '.[test]' && .venv/bin/python -m pytest" in README.read_text(encoding="utf-8")
