"""How work is cut into blocks. Every size here depends on the shape only, never on the thread
count, and partial results are merged in block order: results are bitwise independent of threads."""

ROW_CHUNK = 1 << 15  # elements of one contiguous run reduced by one task
BLOCK_ELEMENTS = 1 << 15  # elements of one (rows x columns) block in the column schedule
COLUMN_BLOCK = 2048  # columns of one block


def row_chunk(length):
    """Elements per task when reducing rows of ``length`` contiguous elements."""
    n_chunks = -(-length // ROW_CHUNK)
    return max(1, -(-length // max(n_chunks, 1)))


def column_blocks(n_rows, n_cols):
    """(rows per block, columns per block) for reducing a (n_rows, n_cols) array over rows."""
    cols = min(max(n_cols, 1), COLUMN_BLOCK)
    rows = max(8, BLOCK_ELEMENTS // cols)
    return min(rows, max(n_rows, 1)), cols


def rows_per_block(n_rows, length):
    """Rows per task in the fused layer-norm backward: at most 64 partial gradient rows."""
    return max(-(-n_rows // 64), -(-(1 << 14) // max(length, 1)), 1)
