"""Run a Python script in a fresh interpreter that imports this checkout's fastnorm.

For tests whose failure mode is a crash, a hang or process-wide state (threading layers, fork,
signals): the subprocess fails the test instead of killing or stalling pytest.
"""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_script(script, timeout=300, env=None):
    """Run the dedented ``script`` with ``python -c``; returns the CompletedProcess."""
    pythonpath = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        env={**os.environ, **(env or {}), "PYTHONPATH": pythonpath},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
