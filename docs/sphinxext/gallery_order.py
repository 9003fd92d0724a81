"""The gallery's order: the issue's list (what batch norm does, then scale-out and speed); any
other example follows, by file name."""

ORDER = (
    "plot_faster_training.py",
    "plot_learning_rates.py",
    "plot_inference_statistics.py",
    "plot_landscape.py",
    "plot_regularization.py",
    "plot_small_batches.py",
    "plot_dask_statistics.py",
    "plot_speed.py",
)


class GalleryOrder:
    """sphinx-gallery's ``within_subsection_order``: called with each example's file name."""

    def __init__(self, src_dir):
        self.src_dir = src_dir

    def __call__(self, filename):
        return (ORDER.index(filename) if filename in ORDER else len(ORDER), filename)

    def __repr__(self):  # sphinx-gallery's configuration cache compares reprs
        return "GalleryOrder"
