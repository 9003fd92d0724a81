"""When kernels run threaded, in one place: the size thresholds, ``serial_kernels()``, and the
choice of Numba's threading layer.

A kernel compiled twice (``_flags.ParallelKernel``) asks :func:`use_threads` which twin to run.
Both twins cut work into the same blocks, so the answer never changes a result, only its speed.
"""

import contextlib
import ctypes
import os
import signal
import threading
import warnings

# Below this many elements a parallel region costs more than it saves (and, on a busy machine,
# waits for a descheduled thread); measurements in docs/developer.rst.
PARALLEL_MIN_ELEMENTS = 1 << 16
# At one Numba thread the threaded twin only adds its region's cost below this, but above it its
# code (prange bodies compiled as functions of their own) runs faster than the serial twin's.
ONE_THREAD_MIN_ELEMENTS = 1 << 18
# Streaming calls (many small batches): a stalled parallel region costs more than threads save.
STREAMING_MIN_ELEMENTS = 1 << 22
# Inside serial_kernels(): never threaded.
NEVER = float("inf")

_local = threading.local()


def min_parallel_elements():
    """The threshold set in this Python thread by the contexts (``serial_kernels``, ...); a kernel
    (``@parallel_kernel(min_elements=...)``) and the one-thread rule may ask for more."""
    return getattr(_local, "min_elements", PARALLEL_MIN_ELEMENTS)


def use_threads(n_elements, floor=PARALLEL_MIN_ELEMENTS):
    """Whether an input of ``n_elements`` runs the threaded twin of a kernel whose threads pay
    from ``floor`` elements."""
    if n_elements < floor and not _forcing:  # the per-call cost of small inputs, tested first
        return False
    minimum = min_parallel_elements()
    if _forked_after_threads or n_elements < minimum:
        return False
    if minimum == 0:  # forced_threads in this Python thread: the twins are being compiled
        return True
    if n_elements < floor:  # another Python thread forces: not this one
        return False
    return n_elements >= ONE_THREAD_MIN_ELEMENTS or _numba_threads() > 1


def _numba_threads():
    """This Python thread's Numba thread count, read without starting Numba's pool (which starts
    in ``parallel_guard``, where the threading layer is chosen)."""
    try:
        import numba
        from numba.np.ufunc import parallel

        if not parallel._is_initialized:
            return numba.config.NUMBA_NUM_THREADS  # nobody set a count: all of them
        return parallel._get_num_threads()
    except (ImportError, AttributeError):  # Numba moved them: threads, as before
        return 2


# Python threads inside forced_threads(), the only context that lowers the threshold
_forcing = 0
_forcing_lock = threading.Lock()


# A child made by fork() after the parent started Numba's thread pool inherits a pool that is not
# there: GNU OpenMP aborts ("fork() called from a process already using GNU OpenMP"). Such a child
# runs the serial twins (same blocks, so the same bits); spawn and forkserver children start clean.
_forked_after_threads = False


def _threads_started():
    try:
        from numba.np.ufunc import parallel

        return bool(getattr(parallel, "_is_initialized", False))
    except ImportError:
        return False


def _after_fork_in_child():
    global _forked_after_threads, _main_ident, _holding, _forcing, _forcing_lock
    _forcing, _forcing_lock = 0, threading.Lock()  # the forcing threads are not in the child
    _main_ident = threading.main_thread().ident  # the forking thread is the child's main thread
    if _holding is not None:  # forked during a hold: nobody in the child would release it
        _sig.signal(_SIGINT, _holding.handler)
    _holding = None
    if _threads_started():
        _forked_after_threads = True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


@contextlib.contextmanager
def kernel_threshold(min_elements):
    """Run kernels threaded only for inputs of at least ``min_elements`` in this Python thread;
    never lowers a stricter threshold set by an enclosing context."""
    previous = min_parallel_elements()
    _local.min_elements = max(previous, min_elements)
    try:
        yield
    finally:
        _local.min_elements = previous


@contextlib.contextmanager
def forced_threads():
    """Every kernel threaded in this Python thread whatever the input size, so that small inputs
    compile the parallel twins (``python -m fastnorm compile``); results are the same bits."""
    global _forcing
    previous = min_parallel_elements()
    _local.min_elements = 0
    with _forcing_lock:
        _forcing += 1
    try:
        yield
    finally:
        _local.min_elements = previous
        with _forcing_lock:
            _forcing -= 1


def serial_kernels():
    """Run fastnorm's kernels without threads in this Python thread (results are bitwise the
    same). For loops that interleave them with multithreaded BLAS: a parallel region right after
    a matrix product waits on BLAS's spinning threads.

    A context manager; contexts nest, and other Python threads are not affected. Inputs under
    2^16 elements (2^18 at one Numba thread) run without threads anyway. The MLP estimators train
    and predict under it.

    Examples
    --------
    >>> import numpy as np
    >>> import fastnorm
    >>> x = np.random.default_rng(0).standard_normal((2048, 256)).astype(np.float32)
    >>> threaded = fastnorm.layer_norm(x, 256)
    >>> with fastnorm.serial_kernels():
    ...     serial = fastnorm.layer_norm(x, 256)
    >>> np.array_equal(threaded, serial)
    True
    """
    return kernel_threshold(NEVER)


def streaming_kernels():
    """Threads only for batches large enough to pay for a possible stall (``partial_fit``).

    A context manager, like :func:`serial_kernels`, that raises the threshold for threads to 2^22
    elements in this Python thread: the statistics of ``BatchNormalizer.fit`` and
    ``partial_fit`` run under it, as streaming calls them on many small batches.

    Examples
    --------
    >>> import numpy as np
    >>> from fastnorm.functional import column_moments, streaming_kernels
    >>> with streaming_kernels():
    ...     n, mean, m2 = column_moments(np.ones((1000, 4)))
    >>> mean
    array([1., 1., 1., 1.])
    """
    return kernel_threshold(STREAMING_MIN_ELEMENTS)


# -- Ctrl-C ------------------------------------------------------------------------------------
# Boxing an array returned by compiled code calls a Python function; a SIGINT handled there
# raises inside Numba's C code, which surfaces as "SystemError: ... returned a result with an
# exception set" or a crash. While a kernel runs, SIGINT is therefore only recorded, and
# delivered to the handler that was installed once the kernel has returned. The C-level
# ``_signal`` functions are used because ``signal``'s enum wrappers cost microseconds per call.

try:
    import _signal as _sig
except ImportError:  # pragma: no cover - other Python implementations
    _sig = signal

_SIGINT = signal.SIGINT
_main_ident = threading.main_thread().ident
_holding = None  # the _Held of the main thread, while a hold is active


class _Held:
    def __init__(self, handler):
        self.handler = handler
        self.signals = []

    def __call__(self, signum, frame):
        self.signals.append((signum, frame))


def hold_interrupts():
    """Start holding SIGINT; returns what :func:`release_interrupts` needs (None when there is
    nothing to do: a hold is already active, this is not the main thread, which alone runs
    signal handlers, or SIGINT has no Python handler)."""
    global _holding
    if _holding is not None or threading.get_ident() != _main_ident:
        return None
    handler = _sig.getsignal(_SIGINT)
    if not callable(handler):
        return None
    held = _Held(handler)
    _sig.signal(_SIGINT, held)
    _holding = held
    return held


def release_interrupts(held):
    """End a hold: reinstall the handler, then pass it a SIGINT received meanwhile (by default
    it raises ``KeyboardInterrupt``)."""
    global _holding
    if held is None:
        return
    _holding = None
    _sig.signal(_SIGINT, held.handler)
    if held.signals:
        held.handler(*held.signals[0])


@contextlib.contextmanager
def deferred_interrupts():
    """Hold SIGINT for the block (see :func:`hold_interrupts`); nested blocks cost nothing."""
    held = hold_interrupts()
    try:
        yield
    finally:
        release_interrupts(held)


def deliver_interrupts():
    """Inside a hold: pass a SIGINT received so far to the installed handler now (for loops that
    check between steps, such as training epochs)."""
    held = _holding
    if held is not None and held.signals and threading.get_ident() == _main_ident:
        signum, frame = held.signals[0]
        held.signals.clear()
        held.handler(signum, frame)


def set_num_threads(n_threads):
    """Numba's thread count for this Python thread; returns the previous one. Starts Numba's pool
    through :func:`parallel_guard` first, so that the layer choice and the OpenMP settings are
    handled as for a threaded kernel.

    Parameters
    ----------
    n_threads : int
        Clipped to ``[1, NUMBA_NUM_THREADS]``.

    Returns
    -------
    int
        The previous thread count, to restore it.

    Examples
    --------
    >>> from fastnorm.functional import set_num_threads
    >>> previous = set_num_threads(1)
    >>> _ = set_num_threads(previous)  # restored
    """
    import numba

    parallel_guard()
    previous = numba.get_num_threads()
    numba.set_num_threads(max(1, min(int(n_threads), numba.config.NUMBA_NUM_THREADS)))
    return previous


# -- threading layer ---------------------------------------------------------------------------

_NO_LOCK = contextlib.nullcontext()
_layer_checked = False
_layer_check_lock = threading.Lock()
_workqueue_lock = None  # a Lock when Numba's threading layer is not thread-safe


def _choose_layer():
    """Ask Numba for a thread-safe layer (OpenMP or TBB) unless the user chose one: two Python
    threads entering a parallel region at once abort the process under "workqueue". Done at the
    first threaded call, not at import, so importing fastnorm changes no process setting."""
    import numba

    if "NUMBA_THREADING_LAYER" not in os.environ:
        from numba.np.ufunc import parallel

        if not getattr(parallel, "_is_initialized", False):
            numba.config.THREADING_LAYER = "threadsafe"


def _safe_layers():
    """The thread-safe layers Numba can load in this environment."""
    layers = []
    for name, module in (("tbb", "numba.np.ufunc.tbbpool"), ("omp", "numba.np.ufunc.omppool")):
        try:
            __import__(module)
            layers.append(name)
        except ImportError:
            pass
    return layers


def _workqueue_message():
    text = (
        "Numba runs on its 'workqueue' threading layer, which is not thread-safe: fastnorm "
        "serializes its parallel kernels."
    )
    layers = _safe_layers()
    if layers:
        text += (
            f" Unset NUMBA_THREADING_LAYER, or set it to 'threadsafe' (here: "
            f"{' or '.join(layers)}), to run them concurrently; fork-based process pools "
            "keep working (kernels in forked children run single-threaded)."
        )
    return text


def parallel_guard():
    """Nothing on a thread-safe layer (OpenMP, TBB). If Numba runs on "workqueue" (chosen by the
    user, or before fastnorm's first call), concurrent parallel calls would abort the process:
    serialize them, and say so once."""
    global _layer_checked, _workqueue_lock
    if not _layer_checked:
        with _layer_check_lock:
            if not _layer_checked:
                try:
                    import numba
                    from numba.np.ufunc.parallel import _launch_threads

                    _choose_layer()
                    openmp = _openmp_nesting()
                    _launch_threads()
                    _restore_openmp_nesting(openmp)
                    if numba.threading_layer() == "workqueue":
                        _workqueue_lock = threading.Lock()
                        warnings.warn(_workqueue_message(), RuntimeWarning, stacklevel=4)
                except (ImportError, ValueError, AttributeError):
                    pass  # private Numba API moved: keep the layer Numba picks
                _layer_checked = True
    return _workqueue_lock or _NO_LOCK


# -- OpenMP settings -----------------------------------------------------------------------------
# Numba's OpenMP pool turns nested parallelism on when it starts, for the whole process: a library
# that later binds to the same libgomp (PyTorch) then runs its parallel loops nested and many
# times slower. fastnorm's kernels never nest, so the setting is put back as it was found.


def _libgomp():
    try:
        return ctypes.CDLL("libgomp.so.1")
    except OSError:
        return None


def _openmp_nesting():
    """(libgomp, nested, max active levels) as found, or None without GNU OpenMP."""
    lib = _libgomp()
    if lib is None:
        return None
    return lib, lib.omp_get_nested(), lib.omp_get_max_active_levels()


def _restore_openmp_nesting(found):
    if found is None:
        return
    lib, nested, levels = found
    if (lib.omp_get_nested(), lib.omp_get_max_active_levels()) == (nested, levels):
        return
    lib.omp_set_nested(nested)
    if nested:
        lib.omp_set_max_active_levels(levels)
