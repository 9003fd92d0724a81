"""How batch, group and instance norm see their input, and which kernel schedule serves it.

Two views: ``ChannelRuns`` (outer, channels, inner), where channel c's values are the runs
x[n, c, :] (channels-first data, and channels-last batch norm with inner = 1), and
``SampleColumns`` (N, S, C), the columns of each sample (channels-last group and instance norm).

Parameters of the element-wise passes are (Np, C) float64 arrays: one value per channel
(Np = 1, batch norm) or per sample and channel (Np = N, group and instance norm).
"""

import math

import numpy as np

from .._kernels import columns_fused, elementwise, groups_fused, merge, moments, reduce, schedule

NO_RUNNING_STATS = np.empty(0)  # running statistics not kept: the kernels skip their update

# Runs shorter than this are reduced as columns (vectorized across channels) instead of as rows.
ROW_MIN = 64
# The element-wise passes over runs read row by row take the runs_* kernels (one task per sample,
# a loop per (sample, channel)) below this run length, from this many samples: a call per row
# costs more there, and with fewer samples threads would idle (developer.rst); the same bits
# either way (no reduction).
RUNS_MAX_LENGTH = 4096
RUNS_MIN_SAMPLES = 4


def merge_equal_counts(mean, m2, count, axis):
    """Moments of the union of the sets along ``axis``, each of ``count`` values: Chan's merge
    (``merge.merge_moments``) in index order, in float64."""
    rest = mean.shape[:axis] + mean.shape[axis + 1 :]
    k = mean.shape[axis]

    def sets(a):
        return np.ascontiguousarray(np.moveaxis(a, axis, 0), dtype=np.float64).reshape(k, -1)

    out_mean, out_m2 = merge.merge_sets(sets(mean), sets(m2), count)
    return out_mean.reshape(rest), out_m2.reshape(rest)


def _column_moments(x3, row_block, col_block):
    """(mean, M2) over axis 1 of (P, A, B): ``moments.column_moments`` without NaN skipping, so a
    NaN gives NaN statistics as in PyTorch."""
    _, mean, m2, _ = moments.column_moments(x3, None, None, row_block, col_block)
    return mean, m2


class ChannelRuns:
    """x seen as (N, C, D) = (outer, channels, inner): the values of channel c in outer index n
    are the contiguous run x[n, c, :]. Channels-last batch norm is the case D = 1."""

    def __init__(self, x3):
        self.x = x3
        self.n, self.c, self.d = x3.shape
        self.use_rows = self.d >= ROW_MIN
        self.short_rows = self.use_rows and self.d < RUNS_MAX_LENGTH and self.n >= RUNS_MIN_SAMPLES

    def _rows(self, arr):
        return arr.reshape(self.n * self.c, self.d)

    def _columns(self, arr, n_p):
        return arr.reshape(n_p, self.n // n_p, self.c * self.d)

    def _per_row(self, param):
        return np.ascontiguousarray(np.broadcast_to(param, (self.n, self.c))).reshape(-1)

    def _per_column(self, param):
        if self.d == 1:
            return np.ascontiguousarray(param)
        return np.repeat(param, self.d, axis=1)

    @property
    def fuses_batch_norm(self):
        """One value per (sample, channel), as in (N, C) features: fused kernels serve it."""
        return self.d == 1

    def batch_norm_columns(
        self,
        weight,
        bias,
        eps,
        running_mean,
        running_var,
        momentum,
        out,
        sample_weight=None,
        renorm=None,
        relu=None,
    ):
        """Batch norm with batch statistics in one kernel call, running statistics (if not None)
        updated in place; returns (mean, M2, rstd, rd). ``sample_weight``: None or a float64
        weight per row; ``renorm``: None or (r_max, d_max) of batch renormalization, whose (2, C)
        factors r, d are ``rd`` (else None); ``relu`` True: ReLU applied in the same pass."""
        if running_mean is None:
            running_mean = running_var = NO_RUNNING_STATS
        columns = (1, self.n, self.c * self.d)  # _columns(arr, 1), written out: a per-step call
        rd = None if renorm is None else np.empty((2, self.c))
        blocks = schedule.column_blocks(self.n, self.c)
        mean, m2, rstd = columns_fused.columns_normalize(
            self.x.reshape(columns),
            sample_weight,
            weight,
            bias,
            eps,
            running_mean,
            running_var,
            momentum,
            *blocks,
            out.reshape(columns),
            renorm,
            rd,
            relu,
            None if blocks[0] >= self.n else True,  # rows of one block: no merge code compiled
        )
        return mean, m2, rstd, rd

    def batch_norm_constant(self, running_mean, running_var, weight, bias, eps, out):
        """Batch norm with constant statistics (eval mode) in one kernel call, with the bits of
        ``affine`` after the general path's NumPy steps; returns the float64 (mean, rstd)."""
        columns = (1, self.n, self.c * self.d)
        return columns_fused.columns_eval(
            self.x.reshape(columns),
            running_mean,
            running_var,
            weight,
            bias,
            eps,
            out.reshape(columns),
        )

    def batch_norm_columns_backward(
        self, dy, mean, rstd, weight, batch_stats, dx, sample_weight=None, relu_out=None
    ):
        """Gradients of ``batch_norm_columns`` (or of its eval form); returns (dweight, dbias).
        ``dy``, ``dx`` (C-contiguous) and ``relu_out`` (the output of a fused ReLU, whose gradient
        ``dy`` is) have the input's size, in any shape."""
        return columns_fused.columns_normalize_backward(
            self._columns(dy, 1),
            self._columns(self.x, 1),
            sample_weight,
            mean,
            rstd,
            weight,
            None if batch_stats else True,  # None: the constant-statistics pass is not compiled
            *schedule.column_blocks(self.n, self.c),
            self._columns(dx, 1),
            None if relu_out is None else self._columns(relu_out, 1),
        )

    @property
    def fuses_groups(self):
        """Channel runs long enough for the fused per-(sample, group) kernels, or of one value
        ((N, C) features: the group's channels are then one run)."""
        return self.use_rows or self.d == 1

    def group_norm_rows(self, groups, weight, bias, eps, out):
        """Group norm with the groups' own statistics in one kernel call; (mean, M2, rstd),
        each (N, G)."""
        rows = self.x.reshape(self.n * groups, -1)
        stats = groups_fused.groups_normalize(
            rows, weight, bias, groups, self.d, eps, out.reshape(rows.shape)
        )
        return tuple(s.reshape(self.n, groups) for s in stats)

    def group_norm_rows_backward(self, dy, mean, rstd, weight, groups, dx):
        """Gradients of ``group_norm_rows``: dx, and partial weight and bias sums per channel (per
        sample, or per block of samples), to be summed over axis 0."""
        rows = self.x.reshape(self.n * groups, -1)
        return groups_fused.groups_normalize_backward(
            dy.reshape(rows.shape), rows, mean, rstd, weight, groups, self.d, dx.reshape(rows.shape)
        )

    def channel_moments(self):
        """(mean, M2) of each channel over samples and positions; count N * D."""
        if self.use_rows:
            mean, m2 = reduce.row_moments(self._rows(self.x), schedule.row_chunk(self.d))
            return merge_equal_counts(
                mean.reshape(self.n, self.c), m2.reshape(self.n, self.c), self.d, axis=0
            )
        x2 = self._columns(self.x, 1)
        mean, m2 = _column_moments(x2, *schedule.column_blocks(self.n, self.c * self.d))
        if self.d == 1:
            return mean[0], m2[0]
        return merge_equal_counts(
            mean.reshape(self.c, self.d), m2.reshape(self.c, self.d), self.n, axis=1
        )

    def group_moments(self, groups):
        """(mean, M2) of each (sample, group of C / groups channels); shape (N, groups)."""
        length = (self.c // groups) * self.d
        mean, m2 = reduce.row_moments(
            self.x.reshape(self.n * groups, length), schedule.row_chunk(length)
        )
        return mean.reshape(self.n, groups), m2.reshape(self.n, groups)

    def affine(self, centre, scale, shift, out, source=None):
        """out = (x - centre) * scale + shift, parameters of shape (Np, C); ``source`` (an array
        of x's shape) replaces x when given."""
        src = self.x if source is None else source
        if self._per_sample_runs(centre) or self.short_rows:
            shape = self.x.shape
            centre, scale, shift = self._per_sample(centre, scale, shift)
            elementwise.runs_affine(src.reshape(shape), centre, scale, shift, out.reshape(shape))
        elif self.use_rows:
            elementwise.rows_affine(
                self._rows(src),
                self._per_row(centre),
                self._per_row(scale),
                self._per_row(shift),
                schedule.row_chunk(self.d),
                self._rows(out),
            )
        else:
            n_p = centre.shape[0]
            elementwise.columns_affine(
                self._columns(src, n_p),
                self._per_column(centre),
                self._per_column(scale),
                self._per_column(shift),
                self._columns(out, n_p),
            )

    def _per_sample(self, *params):
        """(Np, C) parameters as writeable, C-contiguous (N, C) arrays (the runs_* kernels'
        argument type: a read-only view would compile another specialization)."""
        return [
            np.ascontiguousarray(
                p if p.shape[0] == self.n else np.broadcast_to(p, (self.n, self.c))
            )
            for p in params
        ]

    def _per_sample_runs(self, param):
        """Parameters per (sample, channel) over short runs: the column passes would need a copy
        of them per position (``_per_column``), the ``runs_*`` kernels take them as they are."""
        return not self.use_rows and self.d > 1 and param.shape[0] > 1

    def scale(self, dy, scale, out):
        """out = dy * scale, parameters of shape (Np, C): the input gradient when the statistics
        are constants, which does not read x."""
        zeros = np.zeros_like(scale)
        self.affine(zeros, scale, zeros, out, source=dy)

    def grad_sums(self, dy, centre):
        """sum(dy) and sum(dy * (x - centre)) per (Np, C) parameter slot."""
        n_p = centre.shape[0]
        if self.use_rows:
            s_dy, s_dyx = reduce.row_grad_sums(
                self._rows(dy),
                self._rows(self.x),
                self._per_row(centre),
                schedule.row_chunk(self.d),
            )
            s_dy = s_dy.reshape(self.n, self.c)
            s_dyx = s_dyx.reshape(self.n, self.c)
            if n_p == 1:
                return s_dy.sum(axis=0, keepdims=True), s_dyx.sum(axis=0, keepdims=True)
            return s_dy, s_dyx
        if self._per_sample_runs(centre):  # short runs (< ROW_MIN): NumPy's order, see the kernel
            return reduce.runs_grad_sums(dy, self.x, centre)
        s_dy, s_dyx = reduce.column_grad_sums(
            self._columns(dy, n_p),
            self._columns(self.x, n_p),
            self._per_column(centre),
            *schedule.column_blocks(self.n // n_p, self.c * self.d),
        )
        if self.d == 1:
            return s_dy, s_dyx
        shape = (n_p, self.c, self.d)
        return s_dy.reshape(shape).sum(axis=2), s_dyx.reshape(shape).sum(axis=2)

    def grad_input(self, dy, centre, alpha, beta, gamma, out):
        """out = alpha * dy + beta * (x - centre) + gamma, parameters of shape (Np, C)."""
        if self._per_sample_runs(centre) or self.short_rows:
            shape = self.x.shape
            params = self._per_sample(centre, alpha, beta, gamma)
            elementwise.runs_grad_input(dy.reshape(shape), self.x, *params, out.reshape(shape))
        elif self.use_rows:
            elementwise.rows_grad_input(
                self._rows(dy),
                self._rows(self.x),
                self._per_row(centre),
                self._per_row(alpha),
                self._per_row(beta),
                self._per_row(gamma),
                schedule.row_chunk(self.d),
                self._rows(out),
            )
        else:
            n_p = centre.shape[0]
            elementwise.columns_grad_input(
                self._columns(dy, n_p),
                self._columns(self.x, n_p),
                self._per_column(centre),
                self._per_column(alpha),
                self._per_column(beta),
                self._per_column(gamma),
                self._columns(out, n_p),
            )


class SampleColumns:
    """x seen as (N, S, C): per sample, C columns of S positions (group and instance norm,
    channels last)."""

    fuses_batch_norm = False
    fuses_groups = False

    def __init__(self, x3):
        self.x = x3
        self.n, self.d, self.c = x3.shape

    def _moments(self):
        return _column_moments(self.x, *schedule.column_blocks(self.d, self.c))

    def group_moments(self, groups):
        mean, m2 = self._moments()
        shape = (self.n, groups, self.c // groups)
        return merge_equal_counts(mean.reshape(shape), m2.reshape(shape), self.d, axis=2)

    def affine(self, centre, scale, shift, out):
        elementwise.columns_affine(self.x, centre, scale, shift, out)

    def scale(self, dy, scale, out):
        """out = dy * scale (see ``ChannelRuns.scale``)."""
        zeros = np.zeros_like(scale)
        elementwise.columns_affine(dy, zeros, scale, zeros, out)

    def grad_sums(self, dy, centre):
        return reduce.column_grad_sums(dy, self.x, centre, *schedule.column_blocks(self.d, self.c))

    def grad_input(self, dy, centre, alpha, beta, gamma, out):
        elementwise.columns_grad_input(dy, self.x, centre, alpha, beta, gamma, out)


def channel_runs_view(x, axis):
    """x (C-contiguous) as (outer, C, inner) around the channel axis, for ``ChannelRuns``."""
    shape = x.shape
    if len(shape) == 2 and axis == 1:  # (N, C) features, the per-step case of an MLP
        return x.reshape(shape[0], shape[1], 1)
    return x.reshape(math.prod(shape[:axis]), shape[axis], math.prod(shape[axis + 1 :]))
