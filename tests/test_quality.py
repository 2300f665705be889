"""One quality gate: ruff (lint and format) and pyright strict are clean, here and in CI."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
BIN = Path(sys.executable).parent
pytestmark = pytest.mark.slow


def run(tool: str, *args: str) -> subprocess.CompletedProcess[str]:
    exe = BIN / tool if (BIN / tool).exists() else shutil.which(tool)
    if exe is None:
        pytest.fail(f"{tool} is not installed: it is part of the test extra")
    return subprocess.run([str(exe), *args], cwd=ROOT, capture_output=True, text=True, timeout=240)


def test_ruff_lint_is_clean() -> None:
    done = run("ruff", "check", "server", "tests", "bench")
    assert done.returncode == 0, done.stdout


def test_ruff_format_is_clean() -> None:
    done = run("ruff", "format", "--check", "server", "tests", "bench")
    assert done.returncode == 0, done.stdout


def test_pyright_strict_is_clean() -> None:
    done = run("pyright")
    assert done.returncode == 0, done.stdout[-5000:]


MISTYPED_JOURNAL_CALL = """
from wan_image_mcp.core.journal import AsyncJournal


async def wrong(journal: AsyncJournal) -> None:
    await journal.saved(123, "not a list", "extra")
"""


def test_pyright_checks_journal_calls_against_the_journal_methods_signature(tmp_path: Path) -> None:
    snippet = ROOT / "tests" / f"_mistyped_{tmp_path.name}.py"  # inside the project, so its settings apply
    snippet.write_text(MISTYPED_JOURNAL_CALL, encoding="utf-8")
    try:
        done = run("pyright", str(snippet))
    finally:
        snippet.unlink()
    assert done.returncode != 0
    assert 'cannot be assigned to parameter "task_id"' in done.stdout or "Expected 2 positional" in done.stdout, (
        done.stdout
    )
