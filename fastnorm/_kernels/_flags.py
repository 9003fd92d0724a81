"""Compilation flags shared by every kernel, and the parallel/serial kernel pair."""

import contextlib
import threading
import types
import warnings

import numba
from numba import njit

# Reassociation lets reductions vectorize; never "fast" (its nnan/ninf flags delete NaN handling).
FASTMATH = {"reassoc", "contract", "nsz", "arcp"}

# error_model="numpy": a division by zero gives inf/nan instead of a Python exception check, whose
# branch can keep a loop from vectorizing. Inputs are validated before any kernel runs.
KERNEL = {"fastmath": FASTMATH, "cache": True, "nogil": True, "error_model": "numpy"}
PARALLEL_KERNEL = {**KERNEL, "parallel": True}

# Below this many elements a parallel region costs more than it saves (and, on a busy machine,
# waits for a descheduled thread), so the same code runs compiled without threads.
PARALLEL_MIN_ELEMENTS = 1 << 18


class ParallelKernel:
    """One kernel compiled twice, with and without threads, picked by the size of its first
    argument. Blocks and merge order are the same in both, so the choice never changes a result."""

    def __init__(self, py_func):
        self.parallel = njit(**PARALLEL_KERNEL)(py_func)
        serial = types.FunctionType(py_func.__code__, py_func.__globals__,
                                    py_func.__name__ + "_serial", py_func.__defaults__,
                                    py_func.__closure__)
        serial.__qualname__ = py_func.__qualname__ + "_serial"  # its own cache file
        serial.__module__ = py_func.__module__
        self.serial = njit(**KERNEL)(serial)
        self.__doc__ = py_func.__doc__
        self.__name__ = py_func.__name__

    def __call__(self, *args):
        if args[0].size >= PARALLEL_MIN_ELEMENTS and not getattr(_serial_mode, "on", False):
            with _parallel_guard():
                return self.parallel(*args)
        return self.serial(*args)


_serial_mode = threading.local()


@contextlib.contextmanager
def serial_kernels():
    """Run fastnorm's kernels without threads in this Python thread (results are bitwise the
    same). For loops that interleave them with multithreaded BLAS: a parallel region right after
    a matrix product waits on BLAS's spinning threads (an MLP epoch at batch 512: 5.9 s threaded
    against 0.95 s serial on 2 cores)."""
    previous = getattr(_serial_mode, "on", False)
    _serial_mode.on = True
    try:
        yield
    finally:
        _serial_mode.on = previous


_NO_LOCK = contextlib.nullcontext()
_layer_checked = False
_layer_check_lock = threading.Lock()
_workqueue_lock = None  # a Lock when Numba's threading layer is not thread-safe


def _parallel_guard():
    """Nothing on a thread-safe layer (OpenMP, TBB). If the process had already put Numba on
    "workqueue" before fastnorm was imported, concurrent parallel calls would abort the process:
    serialize them, and say so once."""
    global _layer_checked, _workqueue_lock
    if not _layer_checked:
        with _layer_check_lock:
            if not _layer_checked:
                try:
                    from numba.np.ufunc.parallel import _launch_threads

                    _launch_threads()
                    if numba.threading_layer() == "workqueue":
                        _workqueue_lock = threading.Lock()
                        warnings.warn(
                            "Numba runs on its 'workqueue' threading layer, which is not "
                            "thread-safe: fastnorm serializes its parallel kernels. Set "
                            "NUMBA_THREADING_LAYER=omp (or install tbb) to avoid this.",
                            RuntimeWarning, stacklevel=4)
                except (ImportError, ValueError):
                    pass  # private Numba API moved: keep the layer Numba picks
                _layer_checked = True
    return _workqueue_lock or _NO_LOCK


def parallel_kernel(py_func):
    return ParallelKernel(py_func)
