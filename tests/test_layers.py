"""The DashScope layer stands on its own: it imports nothing of validation, inputs or Pillow, and its exceptions
have one home, whose docstring tree names each of them."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import subprocess
import sys

import wan_image_mcp.dashscope
from wan_image_mcp.dashscope import errors

FORBIDDEN = (
    "PIL",
    "wan_image_mcp.core.requests.validation",
    "wan_image_mcp.core.images.inputs",
    "wan_image_mcp.core.images.references",
    "wan_image_mcp.core.images.decoding",
    "wan_image_mcp.core.images.conforming",
    "wan_image_mcp.core.images.pixels",
)


def test_the_dashscope_package_imports_no_validation_inputs_or_pillow() -> None:
    probe = (
        "import sys, wan_image_mcp.dashscope\n"
        f"print('\\n'.join(sorted(m for m in sys.modules if m.startswith({FORBIDDEN!r}))))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == []


def test_every_exception_of_the_dashscope_package_is_defined_in_its_errors_module_and_tree() -> None:
    defined: dict[str, str] = {}
    for info in pkgutil.iter_modules(wan_image_mcp.dashscope.__path__, "wan_image_mcp.dashscope."):
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if inspect.isclass(value) and issubclass(value, BaseException) and value.__module__ == info.name:
                defined[name] = info.name
    assert defined and set(defined.values()) == {errors.__name__}, defined
    tree = errors.__doc__ or ""
    assert [name for name in defined if name not in tree] == []
