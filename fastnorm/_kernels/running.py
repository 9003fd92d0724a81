"""The running-statistics update, written once: exponential moving averages with PyTorch's
convention ``running = (1 - momentum) * running + momentum * value``."""

from numba import njit

# No fast-math: the update is rounded exactly as NumPy evaluates the same formula (no fused
# multiply-add), so the transformers' running averages keep their bits.
from ._flags import EXACT


@njit(inline="always", **EXACT)
def ema_update(running, value, momentum):
    """In place over 1-D arrays: running[i] = (1 - momentum) * running[i] + momentum * value[i]."""
    keep = 1.0 - momentum
    for i in range(running.shape[0]):
        running[i] = keep * running[i] + momentum * value[i]


@njit(**EXACT)
def update_running_stats(running_mean, running_var, mean, var, momentum):
    """``ema_update`` of both running statistics (the variance given is the one to average)."""
    ema_update(running_mean, mean, momentum)
    ema_update(running_var, var, momentum)
