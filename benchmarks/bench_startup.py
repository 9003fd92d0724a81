"""Start-up costs, each in a fresh interpreter: ``import fastnorm``, the lazy estimators, and the
first call of each operation on an empty Numba cache (``NUMBA_CACHE_DIR`` set to a new temporary
directory before Numba is imported, so the compile is measured, not a cache load): threaded
shapes (the parallel twins), small shapes (the serial twins), the estimators' first ``fit``, and
a first call that loads its kernels from a cache filled beforehand."""

import os
import subprocess
import sys
import tempfile

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


# small inputs: below the threading threshold, the serial twins compile
SMALL_SHAPES = {"batch": ((64, 64), 1), "layer": ((64, 64), None), "rms": ((64, 64), None)}
SMALL_SHAPES.update(group=((8, 32, 12, 12), 1), instance=((8, 32, 12, 12), 1))  # 32 groups
_FRESH_DIR = """
import atexit, os, shutil, tempfile
os.environ["NUMBA_CACHE_DIR"] = _cache = tempfile.mkdtemp(prefix="fastnorm-asv-")
atexit.register(shutil.rmtree, _cache, True)
"""


def _small_run(op, mode):
    """Code defining ``run()``, the fastnorm call of ``op`` on its small shape."""
    shape, axis = SMALL_SHAPES[op]
    return (
        "from fastnorm._bench.kernel_cases import make_case\n"
        f"run = make_case('first', {op!r}, {shape!r}, {mode!r}, {axis!r}).make()['fastnorm']\n"
    )


class FirstCallSmall:
    """First call of an operation on a small float32 input (serial twins), empty cache."""

    params = [list(SMALL_SHAPES), list(kc.MODES)]
    param_names = ["op", "mode"]
    timeout = 900
    repeat = (1, 3, 120.0)

    def timeraw_first_call(self, op, mode):
        return "run()", _FRESH_DIR + _small_run(op, mode)


ESTIMATOR_FITS = {
    "BatchNormalizer": "fastnorm.BatchNormalizer().fit(X)",
    "MLPClassifier batch": "fastnorm.MLPClassifier((16,), normalization='batch', max_iter=2)"
    ".fit(X, y)",
}
_DATA = """
import numpy as np, fastnorm
X = np.random.default_rng(0).standard_normal((200, 16)).astype(np.float32)
y = (X[:, 0] > 0).astype(int)
"""


class FirstFit:
    """First ``fit`` of an estimator on an empty cache: its kernels, the optimizer's, the loss's."""

    params = [list(ESTIMATOR_FITS)]
    param_names = ["estimator"]
    timeout = 900
    repeat = (1, 3, 120.0)

    def timeraw_first_fit(self, estimator):
        return ESTIMATOR_FITS[estimator], _FRESH_DIR + _DATA


class FirstCallCached:
    """First call (forward and backward) in a fresh process whose kernels are in the cache
    already, as after ``python -m fastnorm compile``: the cost of loading, not compiling. The
    cache is a temporary directory filled once by ``setup_cache`` (left to the OS to clean)."""

    params = [list(SMALL_SHAPES)]
    param_names = ["op"]
    timeout = 900

    def setup_cache(self):
        cache = tempfile.mkdtemp(prefix="fastnorm-asv-cached-")
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        for op in SMALL_SHAPES:
            code = _small_run(op, "fwd+bwd") + "run()"
            subprocess.run([sys.executable, "-c", code], env=env, check=True)
        return cache

    def timeraw_first_call(self, cache, op):
        setup = f"import os\nos.environ['NUMBA_CACHE_DIR'] = {cache!r}\n"
        return "run()", setup + _small_run(op, "fwd+bwd")
