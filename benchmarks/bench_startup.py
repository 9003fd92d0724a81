"""Start-up costs, each in a fresh interpreter: ``import fastnorm``, the lazy estimators, and the
first call of each operation on an empty Numba cache (``NUMBA_CACHE_DIR`` set to a new temporary
directory before Numba is imported, so the compile is measured, not a cache load)."""

from fastnorm._bench import kernel_cases as kc

# setup code of the first-call benchmarks: runs untimed in the same fresh process
_FRESH_CACHE = """
import atexit, os, shutil, tempfile
os.environ["NUMBA_CACHE_DIR"] = _cache = tempfile.mkdtemp(prefix="fastnorm-asv-")
atexit.register(shutil.rmtree, _cache, True)
import numpy as np
from fastnorm._bench.kernel_cases import grid_case
run = grid_case({op!r}, {kind!r}, {mode!r}, "float32").make()["fastnorm"]
"""
# the shape kind each operation compiles on: threaded kernels, channels first
FIRST_CALL_KIND = {"batch": "nchw", "group": "nchw", "instance": "nchw", "layer": "mlp-large"}
FIRST_CALL_KIND["rms"] = "mlp-large"


def timeraw_import_fastnorm():
    return "import fastnorm"


def timeraw_import_fastnorm_mlpclassifier():
    return "import fastnorm; fastnorm.MLPClassifier"


class FirstCall:
    """First forward (or forward+backward) of an operation: compiles its kernels from scratch."""

    params = [list(FIRST_CALL_KIND), list(kc.MODES)]
    param_names = ["op", "mode"]
    timeout = 900
    repeat = (1, 3, 120.0)  # each sample compiles for seconds

    def timeraw_first_call(self, op, mode):
        setup = _FRESH_CACHE.format(op=op, kind=FIRST_CALL_KIND[op], mode=mode)
        return "run()", setup
