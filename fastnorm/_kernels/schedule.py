"""How work is cut into tasks and blocks. Every size here depends on the shape only, never on the
thread count, and partial results are merged in block order: results are bitwise independent of
threads."""

import functools

from numba import njit

from ._flags import KERNEL

ROW_CHUNK = 1 << 15  # elements of one contiguous run reduced by one task
BLOCK_ELEMENTS = 1 << 15  # elements of one (rows x columns) block in the column schedule
COLUMN_BLOCK = 2048  # columns of one block


def row_chunk(length):
    """Elements per task when reducing rows of ``length`` contiguous elements."""
    n_chunks = -(-length // ROW_CHUNK)
    return max(1, -(-length // max(n_chunks, 1)))


@functools.lru_cache(maxsize=1024)  # called on every batch-norm call, with few distinct shapes
def column_blocks(n_rows, n_cols):
    """(rows per block, columns per block) for reducing a (n_rows, n_cols) array over rows."""
    cols = min(max(n_cols, 1), COLUMN_BLOCK)
    rows = max(8, BLOCK_ELEMENTS // cols)
    return min(rows, max(n_rows, 1)), cols


# groups of consecutive row blocks in the column moments: enough tasks for 16 threads, and
# partials that do not grow with the rows (each group merges its blocks as it computes them)
ROW_GROUPS = 16


@njit(inline="always", **KERNEL)
def row_groups(n_row_blocks, n_col_blocks):
    """Groups of consecutive row blocks in a column-moments schedule: at most ROW_GROUPS tasks
    per column block row, never more groups than blocks, at least one."""
    per_column_block = (ROW_GROUPS + n_col_blocks - 1) // max(n_col_blocks, 1)
    return max(1, min(n_row_blocks, per_column_block))


# row blocks of a one-pass column sum (the gradient sums): its blocks need not fit in cache, and
# fewer partials mean fewer fresh pages per call, which cost more than the sums (developer.rst)
SUM_BLOCKS = 16


@njit(inline="always", **KERNEL)
def sum_row_block(n_rows, row_block):
    """Rows per block of a one-pass column sum: at least ``row_block``, at most SUM_BLOCKS
    blocks (enough tasks for 16 threads)."""
    return max(row_block, (n_rows + SUM_BLOCKS - 1) // SUM_BLOCKS)


@njit(inline="always", **KERNEL)
def rows_per_task(n_cols):
    """Rows per task of the column element-wise passes: about BLOCK_ELEMENTS values."""
    return max(1, BLOCK_ELEMENTS // max(n_cols, 1))


def rows_per_block(n_rows, length):
    """Rows per task in the fused layer-norm backward: at most 64 partial gradient rows."""
    return max(-(-n_rows // 64), -(-(1 << 14) // max(length, 1)), 1)


@njit(inline="always", **KERNEL)
def row_task(t, per_row, chunk, length):
    """Task t of a row schedule: (row, first, end) of its contiguous run."""
    lo = (t % per_row) * chunk
    return t // per_row, lo, min(lo + chunk, length)


@njit(inline="always", **KERNEL)
def column_task(t, n_rb, n_cb, row_block, col_block, n_rows, n_cols):
    """Task t of a column schedule: (p, row block i, first row, end row, first col, end col)."""
    p = t // (n_rb * n_cb)
    i = (t // n_cb) % n_rb
    c0 = (t % n_cb) * col_block
    r0 = i * row_block
    return p, i, r0, min(n_rows, r0 + row_block), c0, min(n_cols, c0 + col_block)


# rows of one block of a CSR matrix: 4096 spent 12% of a 1% dense 1M x 1000 pass on per-block work
SPARSE_ROW_BLOCK = 8192
SPARSE_PARTIALS = 1 << 21  # bound on (blocks x columns) partial moments of a CSR matrix


def sparse_row_block(n_rows, n_cols):
    """Rows per block when reducing a CSR matrix over its rows: about SPARSE_ROW_BLOCK, but few
    enough blocks that their per-column partials stay below SPARSE_PARTIALS values."""
    max_blocks = max(1, SPARSE_PARTIALS // max(n_cols, 1))
    return max(SPARSE_ROW_BLOCK, -(-n_rows // max_blocks), 1)
