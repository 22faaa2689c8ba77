"""sda imports and runs where Unix-only modules are missing (Windows has no ``fcntl`` and no
``resource``): the run folder's lock comes from filelock, the memory limit is read only where
the operating system gives one."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# a module set to None in sys.modules makes `import` of it raise ImportError, as on Windows
WITHOUT_UNIX_MODULES = """
import sys
sys.modules["fcntl"] = None
sys.modules["resource"] = None
import sda.estimators, sda.run, sda.cli
from sda.run_folder import OutputDir, RunError
from sda.validation import available_memory, check_fits_in_memory

assert available_memory() > 0
check_fits_in_memory("a small array", 1024)
held = OutputDir(sys.argv[1], resume=False)
try:
    OutputDir(sys.argv[1], resume=False)
except RunError as exc:
    print("second:", exc)
held.release()
"""


def test_sda_works_without_fcntl_and_resource(tmp_path):
    done = subprocess.run([sys.executable, "-c", WITHOUT_UNIX_MODULES, str(tmp_path / "run")], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert f"second: output directory {tmp_path / 'run'} is in use by another sda run" in done.stdout
