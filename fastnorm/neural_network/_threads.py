"""Thread limits for fit and predict: BLAS through threadpoolctl, Numba, serial kernels."""

import contextlib

from .. import functional as F

_CONTROLLER = []


def _blas_controller():
    """One threadpoolctl controller, created on first use (inspecting the loaded libraries costs
    far more than limiting through a kept controller)."""
    if not _CONTROLLER:
        from threadpoolctl import ThreadpoolController

        _CONTROLLER.append(ThreadpoolController())
    return _CONTROLLER[0]


@contextlib.contextmanager
def thread_limit(n_threads):
    """Limit BLAS (threadpoolctl) and Numba to ``n_threads`` threads; restore them afterwards.
    Normalization kernels run serially throughout: between BLAS calls a parallel region waits on
    BLAS's spinning threads."""
    with F.serial_kernels():
        if n_threads is None:
            yield
            return
        old = F.set_num_threads(n_threads)
        try:
            with _blas_controller().limit(limits=int(n_threads), user_api="blas"):
                yield
        finally:
            F.set_num_threads(old)
