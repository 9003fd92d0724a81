"""Compile every kernel into Numba's cache ahead of use: ``python -m fastnorm compile`` or
:func:`precompile`.

A first call on an empty cache compiles its kernels (seconds); later processes load them from the
cache (``NUMBA_CACHE_DIR``, or ``__pycache__`` next to fastnorm's sources). This runs one small
call per compiled specialization, float32 and float64, serial and threaded twins, the estimators
included, in worker processes, then checks in this process that everything loads from the cache.
"""

import concurrent.futures
import contextlib
import multiprocessing
import os
import tempfile
import time

import numpy as np

DTYPES = ("float32", "float64")


def _estimators(dtype):
    """The estimators' own kernel calls (optimizers, the fused loss, transformers, sparse)."""
    import warnings

    from scipy import sparse
    from sklearn.exceptions import ConvergenceWarning

    from . import neural_network, preprocessing
    from .neural_network._network import NORMALIZATIONS, SOLVERS

    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 6)).astype(dtype)
    w = np.ones(len(x))
    for X in (x, sparse.csr_matrix(x), sparse.csc_matrix(x)):
        scaler = preprocessing.BatchNormalizer(with_mean=not sparse.issparse(X)).fit(X)
        scaler.partial_fit(X, sample_weight=w)
        scaler.inverse_transform(scaler.transform(X))
    preprocessing.BatchNormalizer(momentum=0.1).partial_fit(x).partial_fit(x)
    for cls in (
        preprocessing.LayerNormalizer,
        preprocessing.GroupNormalizer,
        preprocessing.InstanceNormalizer,
    ):
        with contextlib.suppress(TypeError, ValueError):  # a normalizer needing other settings
            cls().fit_transform(x)
    y = (x[:, 0] > 0).astype(int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for solver in SOLVERS:
            for norm in (None, *NORMALIZATIONS):
                kw = {"normalization": norm, "solver": solver, "dtype": dtype, "max_iter": 2}
                kw.update(hidden_layer_sizes=(8,), batch_size=8, virtual_batch_size=4)
                neural_network.MLPClassifier(**kw).fit(x, y).predict_proba(x)
                neural_network.MLPRegressor(**kw).fit(x, x[:, 0]).predict(x)


def _families():
    from .functional import _warmup

    return {**_warmup.FAMILIES, "estimators": _estimators}


def jobs(dtypes=DTYPES, threaded=(False, True)):
    """(family, dtype, threaded) of every warm-up job."""
    return [(f, d, t) for f in _families() for d in dtypes for t in threaded]


@contextlib.contextmanager
def _cache_lock(path):
    """Serialize Numba's cache index reads and writes across processes: two processes saving
    different signatures of one function could otherwise give both the same data file."""
    try:
        import fcntl

        from numba.core import caching

        cls = caching.IndexDataCacheFile
        original = cls.save, cls.load
    except (ImportError, AttributeError):  # no fcntl (Windows) or Numba moved it: no lock
        yield
        return

    def locked(method):
        def call(self, *args):
            with open(path, "a") as fh:
                fcntl.flock(fh, fcntl.LOCK_EX)
                try:
                    return method(self, *args)
                finally:
                    fcntl.flock(fh, fcntl.LOCK_UN)

        return call

    cls.save, cls.load = locked(original[0]), locked(original[1])
    try:
        yield
    finally:
        cls.save, cls.load = original


def run_job(job, lock_path=None):
    """Run one warm-up job in this process; returns (job, functions compiled, seconds)."""
    from numba.core import event

    from .functional import _warmup

    family, dtype, threaded = job
    lock = _cache_lock(lock_path) if lock_path else contextlib.nullcontext()
    start = time.perf_counter()
    with lock, event.install_recorder("numba:compile") as rec:
        with _warmup.forced_threads() if threaded else contextlib.nullcontext():
            _families()[family](np.dtype(dtype).type)
    compiled = sum(1 for _, e in rec.buffer if e.is_start)
    return job, compiled, time.perf_counter() - start


def _checked(dtypes, processes, threaded, log):
    """``precompile``'s arguments through fastnorm's parameter rules, before any work."""
    from . import _validation as rules

    if isinstance(dtypes, (str, type, np.dtype)):  # one dtype
        dtypes = (dtypes,)
    try:
        dtypes = tuple(dtypes)
        threaded = (threaded,) if isinstance(threaded, (bool, np.bool_)) else tuple(threaded)
    except TypeError:
        raise TypeError(
            "dtypes must be float32/float64 dtypes and threaded bools (a value or a sequence), "
            f"got dtypes={dtypes!r}, threaded={threaded!r}"
        ) from None
    dtypes = tuple(dict.fromkeys(rules.check(d, "dtypes", rules.FLOAT_DTYPE).name for d in dtypes))
    threaded = tuple(dict.fromkeys(rules.check(t, "threaded", rules.Boolean()) for t in threaded))
    if not dtypes or not threaded:
        raise ValueError("dtypes and threaded must not be empty")
    processes = rules.check(processes, "processes", rules.NoneOr(rules.NON_NEGATIVE_INT))
    if log is not None and not callable(log):
        raise TypeError(f"log must be None or a function of one line of text, got {log!r}")
    return dtypes, processes, threaded


def precompile(dtypes=DTYPES, processes=None, threaded=(False, True), log=None):
    """Compile every kernel for ``dtypes`` into Numba's cache.

    Later processes load the kernels from the cache instead of compiling them on first call.
    ``python -m fastnorm compile`` runs this from the shell.

    Parameters
    ----------
    dtypes : dtype or sequence of dtypes, default ("float32", "float64")
        The floating dtypes to compile for: float32 and/or float64.
    processes : int or None, default None
        Worker processes (started with ``spawn``); None uses the CPU count and 0 runs every job
        in this process.
    threaded : bool or sequence of bool, default (False, True)
        Which twins to compile: the serial one (small inputs, ``serial_kernels``) and the
        threaded one.
    log : callable or None, default None
        Called with one line of text per finished job.

    Returns
    -------
    dict
        ``"seconds"`` (wall time), ``"compiled"`` (functions compiled) and ``"missed"``
        (functions this process still had to compile after the workers: 0 when their cache is
        complete).

    Examples
    --------
    Filling the cache takes about a minute on two cores, so this example is not run here
    (``tests/test_compile.py`` runs it):

    >>> import fastnorm
    >>> report = fastnorm.precompile(dtypes=("float64",))  # doctest: +SKIP
    >>> report["missed"]  # doctest: +SKIP
    0
    """
    dtypes, processes, threaded = _checked(dtypes, processes, threaded, log)
    todo = jobs(dtypes, threaded)
    start = time.perf_counter()
    compiled = 0
    processes = (os.cpu_count() or 1) if processes is None else processes
    if processes:
        lock_path = os.path.join(tempfile.gettempdir(), f"fastnorm-compile-{os.getpid()}.lock")
        ctx = multiprocessing.get_context("spawn")  # a fresh interpreter: no inherited threads
        with concurrent.futures.ProcessPoolExecutor(processes, mp_context=ctx) as pool:
            futures = [pool.submit(run_job, job, lock_path) for job in todo]
            for future in concurrent.futures.as_completed(futures):
                job, n, seconds = future.result()
                compiled += n
                if log is not None:
                    log(f"{'/'.join(map(str, job))}: {n} functions compiled in {seconds:.1f} s")
        with contextlib.suppress(OSError):
            os.remove(lock_path)
    # in this process: loads what the workers cached, compiles what they did not (all of it
    # when processes=0)
    missed = sum(run_job(job)[1] for job in todo)
    if not processes:  # everything was compiled here: nothing was missed
        compiled, missed = missed, 0
    return {"seconds": time.perf_counter() - start, "compiled": compiled, "missed": missed}
