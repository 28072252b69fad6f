"""The command-line face must answer `--help` without paying for torch, and the app must paint its
first frame before torch loads: neither may import it at module level."""

import subprocess
import sys


def imports_torch(code: str) -> bool:
    done = subprocess.run([sys.executable, "-c", f"{code}; import sys; print('torch' in sys.modules)"],
                          capture_output=True, text=True, check=True)
    return done.stdout.strip() == "True"


def test_cli_import_does_not_load_torch() -> None:
    assert not imports_torch("import lmtui.cli")


def test_app_import_does_not_load_torch() -> None:
    assert not imports_torch("import lmtui.tui, lmtui.tui.app")


def test_no_app_module_loads_torch() -> None:
    code = ("import importlib, pkgutil, lmtui.tui; "
            "[importlib.import_module(m.name) for m in pkgutil.walk_packages(lmtui.tui.__path__, 'lmtui.tui.')]")
    assert not imports_torch(code)
