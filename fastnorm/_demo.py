"""``python -m fastnorm demo``: fastnorm's estimators, transformers and kernels on scikit-learn's
digits, with honest timings.

What is timed, and how:

- **Compilation** is reported on its own line. Every code path of the demo runs once first (the
  warm-up, on a few rows where the path allows); Numba compiles the kernels it meets there, or
  loads them from its on-disk cache. The compile time is what Numba's ``numba:compile`` events
  measure (0 when every kernel came from the cache), so the tables never include it; a
  compilation after the warm-up (a path it missed) is reported at the end.
- **Time per epoch** is the median over the epochs of a training run, measured after the warm-up;
  each MLP trains one epoch per ``partial_fit`` call, the models taking turns (epoch 1 of each,
  then epoch 2 of each, ...) so that a slow spell of a shared machine lands on all of them, and
  the test accuracy is taken after each epoch ("epochs to 95 %" is the first epoch that reaches
  it).
- **Threads**: BLAS (through threadpoolctl), PyTorch and fastnorm's kernels all run on
  ``--threads`` threads (default 1). On a small network, unpinned BLAS threads spin-waiting on a
  busy machine made a reference time swing by 20x; pinned, the comparison is steady.
- **Kernel speed** is timed the way ``python -m fastnorm bench`` does it (libraries interleaved,
  minimum of repetitions), on the bench's own implementations for NumPy and PyTorch.
"""

import time
import warnings

import numpy as np

_TARGET = 0.95  # the accuracy of "epochs to 95 %"


class _CompileTimer:
    """Seconds spent in Numba compilations (outermost ``numba:compile`` events) and the number of
    functions compiled; cache loads are not compilations and do not count."""

    def __init__(self):
        self.seconds = 0.0
        self.functions = 0
        self.available = True
        self._depth = 0
        self._start = 0.0

    def on_start(self, event):
        if self._depth == 0:
            self._start = time.perf_counter()
        self._depth += 1
        self.functions += 1

    def on_end(self, event):
        self._depth -= 1
        if self._depth == 0:
            self.seconds += time.perf_counter() - self._start

    def listening(self):
        """A context manager that records Numba's compile events (a no-op, with ``available``
        False, where this Numba has no event API)."""
        import contextlib

        try:
            from numba.core import event
        except ImportError:  # pragma: no cover - numba < 0.53
            self.available = False
            return contextlib.nullcontext()

        timer = self

        class Listener(event.Listener):
            def on_start(self, ev):
                timer.on_start(ev)

            def on_end(self, ev):
                timer.on_end(ev)

        return event.install_listener("numba:compile", Listener())


def _models(seed, n_threads, epochs):
    """(label, estimator) of the MLP table: scikit-learn's MLPClassifier and fastnorm's with each
    normalization, all hidden (128, 128), Adam at 1e-3, batch 64."""
    from sklearn.neural_network import MLPClassifier as SkMLPClassifier

    from fastnorm import MLPClassifier

    common = dict(batch_size=64, learning_rate_init=1e-3, random_state=seed)
    models = [("scikit-learn MLPClassifier", SkMLPClassifier((128, 128), **common))]
    for label, norm in (
        ("no normalization", None),
        ("batch norm", "batch"),
        ("layer norm", "layer"),
        ("group norm (8 groups)", "group"),
    ):
        models.append(
            (
                f"fastnorm, {label}",
                MLPClassifier(
                    (128, 128),
                    normalization=norm,
                    norm_groups=8,
                    max_iter=epochs,
                    n_threads=n_threads,
                    **common,
                ),
            )
        )
    return models


def _normalizers():
    """(label, transformer) of the pipeline table."""
    from sklearn.preprocessing import StandardScaler

    from fastnorm import BatchNormalizer, GroupNormalizer, LayerNormalizer

    return [
        ("scikit-learn StandardScaler", StandardScaler),
        ("BatchNormalizer", BatchNormalizer),
        ("BatchNormalizer, 10 partial_fit chunks", BatchNormalizer),
        ("LayerNormalizer", LayerNormalizer),
        ("GroupNormalizer(8)", lambda: GroupNormalizer(8)),
    ]


def _kernel_cases(quick):
    """The bench's own case builder (fastnorm, NumPy and PyTorch implementations)."""
    from ._bench.kernel_cases import make_case

    rows, cols = (512, 128) if quick else (4096, 256)
    images = (16, 64, 8, 8) if quick else (64, 64, 16, 16)
    return [
        make_case(f"batch_norm fwd+bwd {(rows, cols)}", "batch", (rows, cols), "fwd+bwd", 1),
        make_case(f"layer_norm fwd+bwd {(rows, cols)}", "layer", (rows, cols), "fwd+bwd", None),
        make_case(f"group_norm 32 fwd+bwd {images}", "group", images, "fwd+bwd", 1),
    ]


def _fit_normalizer(label, make, X):
    step = make()
    if "partial_fit" in label:
        for chunk in np.array_split(X, 10):
            step.partial_fit(chunk)
        return step
    return step.fit(X)


def _train(models, X_train, y_train, X_test, y_test, epochs, classes):
    """Train every model one epoch per ``partial_fit`` call, the models taking turns (epoch 1 of
    each, then epoch 2 of each, ...: a slow spell of a shared machine lands on all of them);
    the test accuracy and the seconds of each epoch, per model."""
    accuracy = [[] for _ in models]
    seconds = [[] for _ in models]
    for _ in range(epochs):
        for i, model in enumerate(models):
            start = time.perf_counter()
            model.partial_fit(X_train, y_train, classes=classes)
            seconds[i].append(time.perf_counter() - start)
            accuracy[i].append(model.score(X_test, y_test))
    return accuracy, seconds


def _epochs_to(accuracy, target=_TARGET):
    reached = [i + 1 for i, a in enumerate(accuracy) if a >= target]
    return str(reached[0]) if reached else f"> {len(accuracy)}"


def _warm_up(models, data, classes, kernel_impls, X_raw):
    """Run every path of the demo once (compiles or loads the kernels), at the sizes the tables
    use where the size picks the path (threads from 2^16 elements): the MLPs, an epoch on a few
    standardized rows and a score on the test set's size; the normalizers on the raw pixels the
    pipeline table fits them on (whose nearly constant columns take the exact mean's float64
    residual pass); the kernel cases."""
    import copy

    from sklearn.linear_model import LogisticRegression

    X, y, X_test = data
    for _, model in models:
        model = copy.deepcopy(model)
        model.partial_fit(X[:128], y[:128], classes=classes)
        model.score(X[: len(X_test)], y[: len(X_test)])
    for label, make in _normalizers():
        _fit_normalizer(label, make, X_raw).transform(X_raw)
    LogisticRegression(max_iter=5).fit(X[:100], y[:100])
    for impls in kernel_impls:
        impls["fastnorm"]()


def _torch():
    """PyTorch, imported before Numba starts its OpenMP threads (the other order slowed PyTorch
    3-4x: two OpenMP runtimes), or None."""
    from ._bench.runner import import_peers_first

    return import_peers_first()


def run_demo(seed=0, echo=print, *, threads=1, epochs=None, quick=False, torch=True):
    """Run the demo, writing its report through ``echo``; returns the numbers as a dict
    (``"mlp"``, ``"normalizers"``, ``"kernels"``, ``"compile_seconds"``, ...)."""
    wall = time.perf_counter()
    torch_module = _torch() if torch else None

    import numba
    import sklearn
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from threadpoolctl import threadpool_limits

    import fastnorm

    from .functional import serial_kernels, set_num_threads

    if epochs is None:
        epochs = 4 if quick else 30
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X.astype(np.float32), y, test_size=0.2, stratify=y, random_state=seed
    )
    classes = np.unique(y)
    versions = (
        f"numpy {np.__version__}, numba {numba.__version__}, scikit-learn {sklearn.__version__}"
    )
    if torch_module is not None:
        versions += f", torch {torch_module.__version__}"
    echo(f"fastnorm {fastnorm.__version__} demo ({versions})")
    echo(
        f"scikit-learn's digits: {len(X_train)} training / {len(X_test)} test rows, "
        f"{X.shape[1]} features; seed {seed}"
    )
    echo(
        f"threads: {threads} for BLAS, fastnorm's kernels"
        + (" and PyTorch" if torch_module is not None else "")
        + " (--threads)\n"
    )

    models = _models(seed, threads, epochs)
    cases = _kernel_cases(quick)
    timer = _CompileTimer()
    late = _CompileTimer()  # compilations after the warm-up: none when it covers every path
    numba_threads = numba.get_num_threads()
    torch_threads = torch_module.get_num_threads() if torch_module is not None else None
    kernel_threads = serial_kernels() if threads == 1 else _nothing()
    if threads > 1:
        set_num_threads(threads)
    if torch_module is not None:
        torch_module.set_num_threads(threads)
    result = {"threads": threads, "epochs": epochs}
    try:
        with threadpool_limits(limits=threads), kernel_threads, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ConvergenceWarning of the short fits
            start = time.perf_counter()
            with timer.listening():
                # the MLPs see standardized pixels, as scikit-learn's documentation advises
                scaler = fastnorm.BatchNormalizer().fit(X_train)
                Z_train, Z_test = scaler.transform(X_train), scaler.transform(X_test)
                libraries = ("fastnorm", "numpy") + (("torch",) if torch_module else ())
                kernel_impls = [
                    {k: f for k, f in c.make().items() if k in libraries and f is not None}
                    for c in cases
                ]
                _warm_up(models, (Z_train, y_train, Z_test), classes, kernel_impls, X_train)
            warm_up = time.perf_counter() - start
            result |= {"warm_up_seconds": warm_up, "compile_seconds": timer.seconds}
            result["compiled_functions"] = timer.functions
            _report_compilation(echo, timer, warm_up)
            data = (X_train, X_test, y_train, y_test, Z_train, Z_test, classes)
            with late.listening():
                _timed_sections(echo, result, models, cases, kernel_impls, data, epochs, quick)
            result["compiled_after_warm_up"] = late.functions
            if late.functions:  # a path the warm-up missed: its compilation is in a table
                echo(
                    f"\n{late.functions} functions compiled after the warm-up "
                    f"({late.seconds:.1f} s inside the timed sections)"
                )
    finally:
        if threads > 1:
            set_num_threads(numba_threads)
        if torch_module is not None:
            torch_module.set_num_threads(torch_threads)
    result["seconds"] = time.perf_counter() - wall
    echo(f"\ndemo finished in {result['seconds']:.1f} s")
    return result


def _timed_sections(echo, result, models, cases, kernel_impls, data, epochs, quick):
    """The three tables, after the warm-up; their numbers go into ``result``."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from ._bench.runner import interleaved_samples, ratio, summarize

    X_train, X_test, y_train, y_test, Z_train, Z_test, classes = data
    echo(
        f"1. MLP classifiers: hidden (128, 128), ReLU, Adam (lr 1e-3), batch 64, "
        f"{epochs} epochs, inputs standardized by BatchNormalizer"
    )
    accuracy, seconds = _train(
        [m for _, m in models], Z_train, y_train, Z_test, y_test, epochs, classes
    )
    rows = []
    for (label, _), acc, sec in zip(models, accuracy, seconds):
        timed = sec[1:] if len(sec) > 1 else sec
        rows.append((label, acc[-1], _epochs_to(acc), np.median(timed)))
    result["mlp"] = rows
    _table(
        echo,
        ("model", "test accuracy", "epochs to 95 %", "ms / epoch"),
        [(r[0], f"{r[1]:.3f}", r[2], f"{1e3 * r[3]:.1f}") for r in rows],
    )
    echo(
        f"   ms / epoch: median over epochs 2-{epochs}, the models taking turns epoch by "
        "epoch (the warm-up above already ran each path once)\n"
    )

    echo("2. Normalizers + LogisticRegression (a scikit-learn Pipeline)")
    reference = StandardScaler().fit(X_train)
    rows = []
    for label, make in _normalizers():
        start = time.perf_counter()
        step = _fit_normalizer(label, make, X_train)
        step.transform(X_train)
        seconds = time.perf_counter() - start
        pipe = make_pipeline(step, LogisticRegression(max_iter=1000)).fit(X_train, y_train)
        diff = (
            f"{np.max(np.abs(step.mean_ - reference.mean_)):.1e}"
            if hasattr(step, "mean_") and "StandardScaler" not in label
            else "-"
        )
        rows.append((label, pipe.score(X_test, y_test), seconds, diff))
    result["normalizers"] = rows
    _table(
        echo,
        ("transformer", "test accuracy", "fit + transform ms", "max |mean - scaler's|"),
        [(r[0], f"{r[1]:.3f}", f"{1e3 * r[2]:.2f}", r[3]) for r in rows],
    )
    echo(
        "   BatchNormalizer has StandardScaler's parameters and results; its statistics "
        "are exact when streamed (partial_fit) or merged\n"
    )

    peers = [p for p in ("numpy", "torch") if any(p in impls for impls in kernel_impls)]
    echo(
        "3. Kernels: training-mode forward + backward, float32, interleaved timing, "
        "minimum of 5 repetitions"
        + ("" if "torch" in peers else " (PyTorch not installed: no PyTorch column)")
    )
    rows = []
    for case, impls in zip(cases, kernel_impls):
        stats = summarize(
            interleaved_samples(impls, 3 if quick else 5, 0.005 if quick else 0.02, 0.05)
        )
        cells = [case.name, f"{1e3 * stats['fastnorm']['min']:.3f}"]
        for peer in peers:
            r = ratio(stats, peer)
            cells.append("-" if peer not in stats else "noisy" if r is None else f"{r:.1f}x")
        rows.append(cells)
    result["kernels"] = rows
    names = {"numpy": "NumPy / fastnorm", "torch": "PyTorch / fastnorm"}
    _table(echo, ("kernel", "fastnorm ms", *(names[p] for p in peers)), rows)
    echo(
        "   ratio > 1: fastnorm is faster; 'noisy': a library's repetitions spread over "
        "2x (a busy machine), ratio withheld. Full tables: python -m fastnorm bench"
    )


def _nothing():
    import contextlib

    return contextlib.nullcontext()


def _report_compilation(echo, timer, warm_up):
    import numba

    where = numba.config.CACHE_DIR or "__pycache__ folders beside fastnorm's sources"
    if not timer.available:
        echo(f"warm-up (first call of every path): {warm_up:.1f} s; compile time not measurable\n")
    elif timer.functions == 0:
        echo(f"compilation: 0 s (every kernel was loaded from Numba's cache, {where})")
        echo(f"warm-up (the first call of every path): {warm_up:.1f} s\n")
    else:
        echo(
            f"compilation: {timer.seconds:.1f} s, once (Numba compiled {timer.functions} functions "
            f"and cached them in {where}; the next run loads them)"
        )
        echo(f"warm-up (the first call of every path, compilation included): {warm_up:.1f} s\n")


def _table(echo, head, rows):
    widths = [max(len(str(c)) for c in col) for col in zip(head, *rows)]
    line = "   " + "  ".join(
        f"{h:<{w}}" if i == 0 else f"{h:>{w}}" for i, (h, w) in enumerate(zip(head, widths))
    )
    echo(line)
    echo("   " + "-" * (len(line) - 3))
    for row in rows:
        echo(
            "   "
            + "  ".join(
                f"{c:<{w}}" if i == 0 else f"{c:>{w}}" for i, (c, w) in enumerate(zip(row, widths))
            )
        )
