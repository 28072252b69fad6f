"""The command-line face must answer `--help` without paying for torch."""

import subprocess
import sys


def test_cli_import_does_not_load_torch() -> None:
    code = "import sys, lmtui.cli; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
