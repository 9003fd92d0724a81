"""scikit-learn transformers: normalization statistics learned in full or streamed, and mergeable.

``BatchNormalizer`` learns per-feature statistics over samples (exactly, or as exponential running
averages) and keeps them in a form that ``partial_fit`` and ``merge`` combine with Chan's formula.
``LayerNormalizer``, ``GroupNormalizer`` and ``InstanceNormalizer`` normalize each row on its own
and learn nothing beyond the feature count.

Statistics come from ``fastnorm.functional.column_moments`` (float64 accumulation, results bitwise
independent of the thread count) and are combined with ``functional.merge_moments`` or moved by
``functional.update_running_stats`` (``_stats``); transforms go through
``functional.columns_affine`` and the functional normalizations.
"""

from ._batch_normalizer import BatchNormalizer
from ._row_normalizers import GroupNormalizer, InstanceNormalizer, LayerNormalizer

__all__ = ["BatchNormalizer", "LayerNormalizer", "GroupNormalizer", "InstanceNormalizer"]
