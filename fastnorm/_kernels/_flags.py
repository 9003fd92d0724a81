"""Compilation flags shared by every kernel, and the parallel/serial kernel pair (``policy``
decides which one runs)."""

import types

from numba import njit

from . import policy

# Reassociation lets reductions vectorize; never "fast" (its nnan/ninf flags delete NaN handling).
FASTMATH = {"reassoc", "contract", "nsz", "arcp"}

# error_model="numpy": a division by zero gives inf/nan instead of a Python exception check, whose
# branch can keep a loop from vectorizing. Inputs are validated before any kernel runs.
KERNEL = {"fastmath": FASTMATH, "cache": True, "nogil": True, "error_model": "numpy"}


def parallel_kernel_flags():
    """``KERNEL`` threaded over explicit ``prange`` loops only. Numba's other conversions (array
    expressions, NumPy calls, reductions) would make every O(channels) step a threaded region of
    its own, each compiled as a separate gufunc, and a reduction's rounding depend on the thread
    count. A new dict each time: Numba consumes the options dict it is given."""
    auto = ("comprehension", "reduction", "inplace_binop", "setitem", "numpy", "stencil", "fusion")
    return {**KERNEL, "parallel": {"prange": True, **dict.fromkeys(auto, False)}}


# Loops that sum deviations from a mean, vectorized across columns (which needs no reassociation):
# reassociation would turn sum(x - m) into sum(x) - n * m, the cancellation the two passes avoid.
ORDERED_KERNEL = {**KERNEL, "fastmath": FASTMATH - {"reassoc"}}
# No fast-math at all, for error-free transformations and updates that must round as NumPy does.
# fastmath must be given explicitly: Numba compiles a function that leaves it unset with the
# flags of its first caller (and caches that), so a fast-math kernel would reassociate it.
EXACT = {**KERNEL, "fastmath": False}


def _call_held(compiled, args):
    """Call a compiled kernel with Ctrl-C held until it has returned (``policy``)."""
    held = policy.hold_interrupts()
    try:
        return compiled(*args)
    finally:
        policy.release_interrupts(held)


class ParallelKernel:
    """One kernel compiled twice, with and without threads, picked by the size of its first
    argument (``policy.use_threads``). Blocks and merge order are the same in both, so the
    choice never changes a result."""

    def __init__(self, py_func, min_elements=None):
        # inputs smaller than this never run threaded (policy.PARALLEL_MIN_ELEMENTS by default)
        self.min_elements = policy.PARALLEL_MIN_ELEMENTS if min_elements is None else min_elements
        self.parallel = njit(**parallel_kernel_flags())(py_func)
        serial = types.FunctionType(
            py_func.__code__,
            py_func.__globals__,
            py_func.__name__ + "_serial",
            py_func.__defaults__,
            py_func.__closure__,
        )
        serial.__qualname__ = py_func.__qualname__ + "_serial"  # its own cache file
        serial.__module__ = py_func.__module__
        self.serial = njit(**KERNEL)(serial)
        self.__doc__ = py_func.__doc__
        self.__name__ = py_func.__name__

    def __call__(self, *args):
        size = args[0].size
        # the size test before use_threads: small inputs are the per-step calls of training
        if (size >= self.min_elements or policy._forcing) and policy.use_threads(
            size, self.min_elements
        ):
            with policy.parallel_guard():
                return _call_held(self.parallel, args)
        if policy._holding is not None:  # inside a hold (a training epoch): nothing to add
            return self.serial(*args)
        held = policy.hold_interrupts()  # _call_held, written out: this is the per-call path
        try:
            return self.serial(*args)
        finally:
            policy.release_interrupts(held)


def parallel_kernel(py_func=None, *, min_elements=None):
    """``@parallel_kernel``, or ``@parallel_kernel(min_elements=n)`` for a kernel whose threads
    pay only from n elements."""
    if py_func is None:
        return lambda f: ParallelKernel(f, min_elements)
    return ParallelKernel(py_func, min_elements)


class SerialKernel:
    """A serial kernel called from Python that returns arrays: called with Ctrl-C deferred
    (``policy.deferred_interrupts``), like every ``ParallelKernel``."""

    def __init__(self, py_func):
        self.compiled = njit(**KERNEL)(py_func)
        self.__doc__ = py_func.__doc__
        self.__name__ = py_func.__name__

    def __call__(self, *args):
        return _call_held(self.compiled, args)


def serial_kernel(py_func):
    return SerialKernel(py_func)
