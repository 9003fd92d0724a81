"""Dask: exact statistics of a lazily generated array on a ``distributed.LocalCluster`` of
single-threaded worker processes, fastnorm's ``BatchNormalizer.fit`` against dask-ml's
``StandardScaler.fit`` on the same array.

asv: ``DaskStatistics`` tracks the fit's throughput per worker and the lead over dask-ml (NaN
when dask-ml is absent); every cell is skipped when dask or distributed is not installed
(``pip install "fastnorm[dask]"``). The quick profile fits 16 MiB on 1 worker, the full one
4 GiB on 1 and 2 workers.

As a script, issue 14's figures (about 8 minutes on a shared 2-core VM)::

    python -m benchmarks.bench_dask --virtual-gib 32 --dask-ml-gib 4 --rounds 2

Each round starts a cluster of 1, then 2 workers, and times on it: a pass that only generates the
chunks (the floor), fastnorm on the virtual array (larger than memory), and fastnorm and dask-ml
on a smaller array (dask-ml is ~10x slower). It prints min and median seconds, GiB/s, GiB/s per
worker, the 2-worker speed-up, and the bytes the workers sent (to each other and to the client)
per chunk: only the (count, mean, M2) state, 48 bytes per feature.
"""

import argparse
import contextlib
import math
import os
import statistics
import sys
import time

from ._common import QUICK, interleaved_min

N_FEATURES = 256
CHUNK_ROWS = 65536  # 128 MiB chunks of float64
GIB = 1 << 30


def dask_available():
    try:
        import dask.array  # noqa: F401
        import distributed  # noqa: F401
    except ImportError:
        return False
    return True


def lazy_array(gib, seed=0):
    """A (rows, N_FEATURES) float64 array of ``gib`` GiB, generated chunk by chunk where it is
    used (fixed seed: the same values on every run), never held whole."""
    import dask.array as da

    rows = int(gib * GIB) // (8 * N_FEATURES)
    chunks = (min(CHUNK_ROWS, max(1, rows // 8)), None)  # at least 8 chunks
    return da.random.default_rng(seed).random((rows, N_FEATURES), chunks=chunks)


def _touch(x, axis=None, keepdims=None):
    return x[:1, :1] * 0.0  # reads nothing but forces the chunk to be generated


def generate_only(X):
    """Generate every chunk and reduce it to nothing: the floor under any statistic."""
    import dask.array as da

    return da.reduction(X, _touch, _touch, axis=(0, 1), keepdims=True, dtype=X.dtype).compute()


def fastnorm_fit(X):
    from fastnorm import BatchNormalizer

    return BatchNormalizer().fit(X)


def dask_ml_fit(X):
    from dask_ml.preprocessing import StandardScaler

    return StandardScaler().fit(X)


def _warm_up():
    """Load fastnorm's compiled kernels (Numba's cache) in a worker before timing."""
    import dask.array as da

    from fastnorm import BatchNormalizer

    BatchNormalizer().fit(da.ones((4, 3), chunks=2)).transform(da.ones((4, 3))).compute(
        scheduler="sync"
    )
    return os.getpid()


@contextlib.contextmanager
def local_cluster(n_workers):
    """A loopback cluster of ``n_workers`` single-threaded worker processes, warmed up."""
    import cloudpickle
    import distributed

    # workers may not import this file: ship its functions by value
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    with (
        distributed.LocalCluster(
            n_workers=n_workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            silence_logs=40,  # errors only
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        client.run(_warm_up)
        yield client


def _sent_bytes(dask_worker):
    return dask_worker.transfer_outgoing_bytes_total


def bytes_sent(client):
    """Bytes the workers have sent so far (to each other and to the client)."""
    return sum(client.run(_sent_bytes).values())


# -- asv -----------------------------------------------------------------------------------------


class DaskStatistics:
    """``BatchNormalizer.fit`` of a lazily generated Dask array on a LocalCluster."""

    params = [[1] if QUICK else [1, 2]]  # quick: each cell starts a cluster
    param_names = ["n_workers"]
    timeout = 600
    gib = 1 / 64 if QUICK else 4

    def setup(self, n_workers):
        if not dask_available():
            raise NotImplementedError("dask and distributed are not installed")
        self._context = local_cluster(n_workers)
        self.client = self._context.__enter__()
        self.X = lazy_array(self.gib)

    def teardown(self, n_workers):
        if hasattr(self, "_context"):
            self._context.__exit__(None, None, None)

    def track_gib_per_s_per_worker(self, n_workers):
        best = interleaved_min({"fastnorm": lambda: fastnorm_fit(self.X)}, rounds=2)
        return self.gib / best["fastnorm"] / n_workers

    track_gib_per_s_per_worker.unit = "GiB/s per worker (fit of a lazily generated array)"

    def track_vs_dask_ml(self, n_workers):
        try:
            import dask_ml  # noqa: F401
        except ImportError:
            return math.nan
        impls = {"fastnorm": lambda: fastnorm_fit(self.X), "dask-ml": lambda: dask_ml_fit(self.X)}
        best = interleaved_min(impls, rounds=2)
        return best["dask-ml"] / best["fastnorm"]

    track_vs_dask_ml.unit = "x faster than dask-ml's StandardScaler.fit (best times, interleaved)"


# -- the figures ---------------------------------------------------------------------------------


def measure(virtual_gib, dask_ml_gib, rounds, workers=(1, 2)):
    """Seconds and bytes sent of each (case, n_workers), the cases interleaved in every round."""
    big, small = lazy_array(virtual_gib), lazy_array(dask_ml_gib, seed=1)
    cases = {
        "generate only": (generate_only, big, virtual_gib),
        "fastnorm": (fastnorm_fit, big, virtual_gib),
        "fastnorm (small)": (fastnorm_fit, small, dask_ml_gib),
    }
    try:
        import dask_ml  # noqa: F401

        cases["dask-ml (small)"] = (dask_ml_fit, small, dask_ml_gib)
    except ImportError:
        print("dask-ml is not installed: no dask-ml figures")
    times = {}
    for r in range(rounds):
        for k in workers:
            with local_cluster(k) as client:
                for name, (fn, X, gib) in cases.items():
                    sent = bytes_sent(client)
                    start = time.perf_counter()
                    fn(X)
                    seconds = time.perf_counter() - start
                    sent = bytes_sent(client) - sent
                    times.setdefault((name, k), []).append((seconds, sent, X.numblocks[0]))
                    print(
                        f"round {r + 1}, {k} worker(s), {name}: {seconds:.2f} s "
                        f"({gib / seconds:.2f} GiB/s), load {os.getloadavg()[0]:.1f}",
                        flush=True,
                    )
    return cases, times


def report(cases, times, workers=(1, 2)):
    print(
        f"\n{'case':18s}{'workers':>8s}{'min s':>9s}{'median s':>10s}{'GiB/s':>8s}"
        f"{'per worker':>11s}{'speed-up':>9s}{'sent/chunk B':>14s}"
    )
    for name, (_, X, gib) in cases.items():
        best = {}
        for k in workers:
            runs = times[name, k]
            seconds = [s for s, _, _ in runs]
            best[k] = min(seconds)
            sent = max(b for _, b, _ in runs) / X.numblocks[0]
            speedup = f"{best[workers[0]] / best[k]:.2f}" if k != workers[0] else "-"
            print(
                f"{name:18s}{k:8d}{best[k]:9.2f}{statistics.median(seconds):10.2f}"
                f"{gib / best[k]:8.2f}{gib / best[k] / k:11.2f}{speedup:>9s}{sent:14.0f}"
            )
    chunk = CHUNK_ROWS * N_FEATURES * 8
    print(
        f"\nchunks of {CHUNK_ROWS} x {N_FEATURES} float64 ({chunk / 2**20:.0f} MiB); fastnorm's "
        f"state per chunk: {48 * N_FEATURES} bytes (6 float64 per feature)"
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--virtual-gib", type=float, default=32.0)
    parser.add_argument("--dask-ml-gib", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    if not dask_available():
        print("dask and distributed are not installed: pip install 'fastnorm[dask]'")
        return None
    cases, times = measure(args.virtual_gib, args.dask_ml_gib, args.rounds)
    report(cases, times)
    return times


if __name__ == "__main__":
    main()
