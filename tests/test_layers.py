"""The house's layers hold: import-linter's contracts (pyproject.toml, ``[tool.importlinter]``) are kept and would
catch a breach; what they cannot say (what is loaded at run time, where exceptions live) is checked here."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

import wan_image_mcp.core
import wan_image_mcp.dashscope

ROOT = Path(__file__).parent.parent
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` on the contracts and the package under ``root``."""
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(root / "server")},
    )


def test_the_import_contracts_are_kept() -> None:
    done = lint_imports(ROOT)
    contracts = len(re.findall(r"^\[\[tool\.importlinter\.contracts\]\]$", (ROOT / "pyproject.toml").read_text(), re.M))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"Contracts: {contracts} kept, 0 broken." in done.stdout, done.stdout


@pytest.mark.parametrize(
    ("module", "breach", "contract"),
    [
        ("dashscope/wire.py", "from ..core import errors as _core_errors", "imports nothing of the project"),
        ("core/journal/rows.py", "from ..tasks import service as _service", "The core's rooms"),
        ("core/specs.py", "import mcp as _mcp", "speaks MCP"),
        ("emulator/state.py", "from ..dashscope import client as _client", "not a user of the client"),
        ("gallery.py", "import PIL.Image as _image", "Every module takes Pillow from"),
    ],
)
def test_a_breach_of_a_contract_is_caught(module: str, breach: str, contract: str, tmp_path: Path) -> None:
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    shutil.copytree(ROOT / "server" / "wan_image_mcp", tmp_path / "server" / "wan_image_mcp")
    with (tmp_path / "server" / "wan_image_mcp" / module).open("a", encoding="utf-8") as source:
        source.write(f"\n{breach}\n")
    done = lint_imports(tmp_path)
    assert done.returncode == 1, done.stdout
    said = " ".join(done.stdout.split())  # a contract's name may be wrapped
    verdict = re.search(re.escape(contract) + r".*? (KEPT|BROKEN)\b", said)
    assert verdict is not None and verdict.group(1) == "BROKEN", done.stdout


def test_importing_the_dashscope_package_loads_nothing_else_of_the_project_nor_pillow() -> None:
    """At run time, through third-party packages too (which the contracts do not follow)."""
    probe = (
        "import sys, wan_image_mcp.dashscope\n"
        "print('\\n'.join(sorted(m for m in sys.modules if m.startswith(('PIL', 'wan_image_mcp.'))"
        " and not m.startswith('wan_image_mcp.dashscope'))))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == []


SIGNALS = {("wan_image_mcp.core.tasks.polling", "PollFailed")}
"""Exceptions that stay between two modules of a room, where the errors module says why."""


@pytest.mark.parametrize("package", [wan_image_mcp.dashscope, wan_image_mcp.core], ids=["dashscope", "core"])
def test_every_exception_a_package_defines_is_in_its_errors_module_and_tree(package: ModuleType) -> None:
    errors = importlib.import_module(f"{package.__name__}.errors")
    defined: dict[str, str] = {}
    for info in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if inspect.isclass(value) and issubclass(value, BaseException) and value.__module__ == info.name:
                defined[name] = info.name
    elsewhere = {(module, name) for name, module in defined.items() if module != errors.__name__}
    assert defined and elsewhere == {signal for signal in SIGNALS if signal[0].startswith(package.__name__)}
    tree = errors.__doc__ or ""
    assert [name for name in defined if not re.search(rf"\b{name}\b", tree)] == []
