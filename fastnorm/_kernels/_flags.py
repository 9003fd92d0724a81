"""Compilation flags shared by every kernel."""

# Reassociation lets reductions vectorize; never "fast" (its nnan/ninf flags delete NaN handling).
FASTMATH = {"reassoc", "contract", "nsz", "arcp"}

KERNEL = {"fastmath": FASTMATH, "cache": True, "nogil": True}
PARALLEL_KERNEL = {**KERNEL, "parallel": True}
