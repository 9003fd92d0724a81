"""asv classes built from a list of ``BenchCase`` rows: fastnorm's time and peak memory, and the
tracks that put it in context (roofline fraction, lead over each peer)."""

import math

from ._common import PEERS, interleaved_min, match_threads, stream_copy_bandwidth, warm_up

ROOFLINE_UNIT = "fraction of stream-copy bandwidth (bytes_moved / time / out-of-cache copy B/s)"


def peer_unit(peer):
    return f"x faster than {peer} (best {peer} time / best fastnorm time, interleaved)"


def _peer_track(peer, base="fastnorm", name=None):
    def track(self, bandwidth, *params):
        peer_fn, base_fn = self.impls.get(peer), self.impls.get(base)
        if peer_fn is None or base_fn is None:  # not installed, or no such operation: n/a
            return math.nan
        best = interleaved_min({base: base_fn, peer: peer_fn})
        return best[peer] / best[base]

    track.unit = peer_unit(peer)
    track.__name__ = name or f"track_vs_{peer}"
    return track


def make_track_class(name, lookup, params, param_names, peers=PEERS, preallocated=(), timeout=600):
    """A class of ``track_`` benchmarks: ``lookup(*params)`` gives the BenchCase (None: skip).

    The stream-copy bandwidth is measured once per class (``setup_cache``), on arrays far larger
    than the caches; each track times fastnorm and one peer interleaved, best of each. A peer in
    ``preallocated`` also gets ``track_vs_<peer>_preallocated``: both libraries writing into
    preallocated outputs (the case's "fastnorm out=" and "<peer> out=")."""

    def setup_cache(self):
        return stream_copy_bandwidth()

    def setup(self, bandwidth, *params):
        case = lookup(*params)
        if case is None:
            raise NotImplementedError("not in this profile, or not defined for this shape")
        match_threads()
        self.case = case
        self.impls = {lib: fn for lib, fn in case.make().items() if fn is not None}
        warm_up(self.impls)

    def track_roofline(self, bandwidth, *params):
        if not self.case.bytes_moved:
            return math.nan
        best = interleaved_min({"fastnorm": self.impls["fastnorm"]})["fastnorm"]
        return self.case.bytes_moved / best / bandwidth

    track_roofline.unit = ROOFLINE_UNIT
    body = {
        "params": params,
        "param_names": param_names,
        "timeout": timeout,
        "setup_cache": setup_cache,
        "setup": setup,
        "track_roofline": track_roofline,
        **{f"track_vs_{peer}": _peer_track(peer) for peer in peers},
        **{
            f"track_vs_{peer}_preallocated": _peer_track(
                f"{peer} out=", "fastnorm out=", f"track_vs_{peer}_preallocated"
            )
            for peer in preallocated
        },
    }
    return type(name, (), body)


def make_time_class(name, lookup, params, param_names, timeout=600, repeat=(3, 7, 30.0)):
    """A class with ``time_fastnorm`` and ``peakmem_fastnorm``: inputs built (pages written) and
    kernels compiled in ``setup``, only fastnorm's call in the body."""

    def setup(self, *params):
        case = lookup(*params)
        if case is None:
            raise NotImplementedError("not in this profile, or not defined for this shape")
        self.run = case.make()["fastnorm"]
        self.run()  # compile (or load from Numba's cache) outside the timing

    def time_fastnorm(self, *params):
        self.run()

    def peakmem_fastnorm(self, *params):
        self.run()

    body = {
        "params": params,
        "param_names": param_names,
        "timeout": timeout,
        "number": 1,
        "repeat": repeat,
        "setup": setup,
        "time_fastnorm": time_fastnorm,
        "peakmem_fastnorm": peakmem_fastnorm,
    }
    return type(name, (), body)


def case_table(cases, max_bytes=None):
    """``{name: case}`` of a table, without the rows that move more than ``max_bytes``."""
    return {
        case.name: case
        for case in cases
        if max_bytes is None or case.bytes_moved is None or case.bytes_moved <= max_bytes
    }
