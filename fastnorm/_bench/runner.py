"""Run benchmark cases side by side and print one table per thread count: times, ratios against
the peers, roofline fraction.

A shared, noisy machine can slow a multithreaded loop down 5-100x for seconds at a time. So the
libraries of a case are timed interleaved (A, B, C, A, B, C, ...): a slow spell lands on all of
them. Each library keeps the minimum and the median of its samples; a library whose samples
disagree by more than ``NOISY`` is flagged and its ratio is not reported. Every case runs at one
thread and at all threads: the one-thread ratio is robust to a noisy neighbour.
"""

import importlib
import os
import statistics
import time
from contextlib import contextmanager

import numpy as np

GROUPS = {
    "kernels": "fastnorm._bench.kernel_cases",
    "preprocessing": "fastnorm._bench.preprocessing_cases",
    "mlp": "fastnorm._bench.mlp_cases",
}
# compile: torch.compile; "<lib> out=": writing into preallocated outputs (kernel rows)
LIBRARIES = ("fastnorm", "numpy", "torch", "compile", "sklearn", "fastnorm out=", "torch out=")
NOISY = 2.0  # max / min of one library's samples above which its ratio is not reported


def load_cases(groups=None):
    cases = []
    for group in groups or GROUPS:
        try:
            module = importlib.import_module(GROUPS[group])
        except ModuleNotFoundError as exc:
            if exc.name != GROUPS[group]:
                raise
            continue
        cases.extend(module.CASES)
    return cases


def import_peers_first():
    """Import PyTorch before Numba starts its OpenMP pool: the other order slowed PyTorch 3-4x
    (two OpenMP runtimes; docs/developer.rst). Returns the module or None."""
    try:
        import torch
    except ImportError:
        return None
    return torch


def _calibrate(fn, min_sample, warm_up):
    """Calls per sample so that one sample lasts ``min_sample`` seconds, after ``warm_up``
    seconds of calls (compilation, page faults, caches, a CPU that clocked down while idle).
    The first call, which may compile for seconds, is not part of the estimate."""
    fn()
    calls, start = 0, time.perf_counter()
    while calls == 0 or time.perf_counter() - start < warm_up:
        fn()
        calls += 1
    per_call = (time.perf_counter() - start) / calls
    return max(1, int(min_sample / max(per_call, 1e-7)))


def interleaved_samples(impls, repeat, min_sample=0.02, warm_up=0.3):
    """``{library: [seconds per call, one per repetition]}``, the libraries timed in turn."""
    numbers = {lib: _calibrate(fn, min_sample, warm_up) for lib, fn in impls.items()}
    samples = {lib: [] for lib in impls}
    for _ in range(repeat):
        for lib, fn in impls.items():
            n = numbers[lib]
            start = time.perf_counter()
            for _ in range(n):
                fn()
            samples[lib].append((time.perf_counter() - start) / n)
    return samples


def summarize(samples):
    """``{library: {"min", "median", "spread", "noisy"}}`` from ``interleaved_samples``."""
    out = {}
    for lib, times in samples.items():
        low, mid = min(times), statistics.median(times)
        spread = max(times) / low if low > 0 else float("inf")
        out[lib] = {"min": low, "median": mid, "spread": spread, "noisy": spread > NOISY}
    return out


def ratio(stats, lib, base="fastnorm"):
    """Peer time / fastnorm time on the minima, or None when either side is noisy or absent.
    ``base="fastnorm out="`` with ``lib="torch out="`` compares the preallocated calls."""
    if lib not in stats or base not in stats:
        return None
    if stats[lib]["noisy"] or stats[base]["noisy"]:
        return None
    return stats[lib]["min"] / stats[base]["min"]


def last_level_cache_bytes():
    """The largest CPU cache reported by Linux (0 when unknown)."""
    sizes = []
    base = "/sys/devices/system/cpu/cpu0/cache"
    try:
        entries = os.listdir(base)
    except OSError:
        return 0
    for entry in entries:
        try:
            with open(os.path.join(base, entry, "size")) as f:
                text = f.read().strip()
        except OSError:
            continue
        unit = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
        digits = text[:-1] if text[-1:].isalpha() else text
        if digits.isdigit():
            sizes.append(int(digits) * unit)
    return max(sizes, default=0)


def stream_copy_bandwidth(cache_bytes, repeat=5):
    """Bytes per second of a copy of an array larger than the last-level cache (read + write
    counted): the roofline's yardstick. Returns (bandwidth, bytes copied)."""
    n_bytes = max(1 << 28, int(1.5 * cache_bytes))
    src = np.ones(n_bytes // 8)
    dst = np.ones_like(src)  # pages touched: no page faults in the timing
    times = interleaved_samples({"copy": lambda: np.copyto(dst, src)}, repeat, 0.05, 0.2)
    return 2 * n_bytes / min(times["copy"]), n_bytes


@contextmanager
def thread_count(n, torch):
    """Numba (through fastnorm's policy), PyTorch and the BLAS libraries at ``n`` threads."""
    from threadpoolctl import threadpool_limits

    from ..functional import set_num_threads

    before_torch = torch.get_num_threads() if torch is not None else None
    import numba

    before_numba = numba.get_num_threads()
    set_num_threads(n)
    if torch is not None:
        torch.set_num_threads(n)
    try:
        with threadpool_limits(n, user_api="blas"):
            yield
    finally:
        set_num_threads(before_numba)
        if torch is not None:
            torch.set_num_threads(before_torch)


def run_case(case, repeat=None):
    """One row: interleaved statistics of every library of ``case``."""
    impls = {lib: fn for lib, fn in case.make().items() if fn is not None and lib in LIBRARIES}
    stats = summarize(interleaved_samples(impls, repeat or case.repeat))
    del impls
    return {"case": case.name, "target": case.target, "stats": stats, "bytes": case.bytes_moved}


def add_roofline(row, bandwidth, cache_bytes):
    """fastnorm's fraction of the roofline, or "in cache" when the bytes moved fit in the
    last-level cache (faster than memory: a fraction would mislead)."""
    if row.get("bytes") and "fastnorm" in row["stats"]:
        if row["bytes"] < cache_bytes:
            row["roofline"] = "in cache"
        else:
            row["roofline"] = row["bytes"] / row["stats"]["fastnorm"]["min"] / bandwidth
    return row


def run(cases, repeat=None, threads=None, echo=print, record=None):
    """Every case at each thread count of ``threads`` (default: 1 and all of Numba's); returns
    ``{threads: [rows]}`` and echoes one table per thread count. ``record`` (a dict), when given,
    receives the machine, the versions, the bandwidth and every row (see ``record.py``)."""
    torch = import_peers_first()
    import numba

    counts = threads or sorted({1, numba.config.NUMBA_NUM_THREADS})
    echo(
        "times in ms: min (median) of interleaved repetitions; a ratio is peer / fastnorm on the "
        f"minima, '~' when a library's repetitions spread over {NOISY}x"
    )
    results = {}
    if cases:  # untimed: the first case timed in a fresh process ran ~4x slower for every
        # allocating library (the allocator settles); developer.rst
        with thread_count(counts[0], torch):
            run_case(cases[0], repeat=1)
    for n in counts:
        echo(f"\n{n} thread{'s' if n > 1 else ''}")
        echo(HEADER)
        rows = results[n] = []
        with thread_count(n, torch):
            for case in cases:
                rows.append(run_case(case, repeat))
                echo(format_row(rows[-1]))
    # last: freeing the copy's large arrays keeps the kernel busy reclaiming pages for a while,
    # which slowed the next timings ~3x
    cache = last_level_cache_bytes()
    bandwidth, copied = stream_copy_bandwidth(cache)
    echo(
        f"\nroofline: stream copy of {copied / 2**20:.0f} MiB (last-level cache "
        f"{cache / 2**20:.0f} MiB) at {bandwidth / 1e9:.1f} GB/s"
    )
    for n in counts:
        for row in results[n]:
            add_roofline(row, bandwidth, cache)
            if "roofline" in row:
                echo(f"{n}T {row['case']:<52} {_roof_text(row['roofline'])}")
    if record is not None:
        record.update(bandwidth=bandwidth, copied_bytes=copied, cache_bytes=cache, results=results)
    return results


HEADER = (
    f"{'case':<52} {'fastnorm':>17} {'numpy':>17} {'torch':>17} {'sklearn':>17} "
    f"{'torch/fn':>8} {'numpy/fn':>8} {'skl/fn':>7} {'compile/fn':>10} "
    f"{'fastnorm out=':>17} {'torch/fn out=':>13}  target"
)


def _time(stats, lib):
    if lib not in stats:
        return f"{'-':>18}"
    s = stats[lib]
    mark = "~" if s["noisy"] else " "
    return f"{s['min'] * 1e3:8.3f} ({s['median'] * 1e3:7.3f}){mark}"


def _ratio_text(stats, lib, width=8, base="fastnorm"):
    value = ratio(stats, lib, base)
    if value is None:
        return f"{('~' if lib in stats else '-'):>{width}}"
    return f"{value:{width - 1}.2f}x"


def _roof_text(roof):
    return f"{roof:>9}" if isinstance(roof, str) else f"{roof * 100:8.0f}%"


def format_row(row):
    stats = row["stats"]
    return (
        f"{row['case']:<52} {_time(stats, 'fastnorm')}{_time(stats, 'numpy')}"
        f"{_time(stats, 'torch')}{_time(stats, 'sklearn')} {_ratio_text(stats, 'torch')}"
        f"{_ratio_text(stats, 'numpy')}{_ratio_text(stats, 'sklearn', 7)}"
        f"{_ratio_text(stats, 'compile', 11)}{_time(stats, 'fastnorm out=')}"
        f"{_ratio_text(stats, 'torch out=', 14, 'fastnorm out=')}  {row['target']}"
    )
