"""unsupseg: unsupervised image segmentation by backpropagation with SLIC refinement."""

from importlib.metadata import PackageNotFoundError, version

from unsupseg.io import as_rgb_float, read_image
from unsupseg.refine import refine_by_label_slic, refine_by_superpixel_vote
from unsupseg.segment import SegmentationResult, segment
from unsupseg.superpixels import slic_superpixels

try:
    __version__ = version("unsupseg")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0+unknown"

__all__ = [
    "SegmentationResult",
    "__version__",
    "as_rgb_float",
    "read_image",
    "refine_by_label_slic",
    "refine_by_superpixel_vote",
    "segment",
    "slic_superpixels",
]
