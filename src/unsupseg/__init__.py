"""unsupseg: unsupervised image segmentation by backpropagation with SLIC refinement."""

import os

# Large CPU tensors on transparent huge pages: every response map of a photo is a fresh
# tens-of-MB allocation, and faulting it in 4 KiB pages costs more than the arithmetic of
# a ReLU or BatchNorm (see `unsupseg bench segment`). PyTorch reads this once, at its
# first allocation, so it only takes effect when unsupseg is imported before torch.
# Set THP_MEM_ALLOC_ENABLE=0 to opt out.
os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")

from importlib.metadata import PackageNotFoundError, version  # noqa: E402

from unsupseg.io import as_rgb_float, read_image  # noqa: E402
from unsupseg.refine import refine_by_label_slic, refine_by_superpixel_vote  # noqa: E402
from unsupseg.segment import SegmentationResult, segment  # noqa: E402
from unsupseg.superpixels import slic_superpixels  # noqa: E402

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
