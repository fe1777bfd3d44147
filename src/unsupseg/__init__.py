"""unsupseg: unsupervised image segmentation by backpropagation with SLIC refinement.

The public API, importable from ``unsupseg`` itself; each name is loaded from its module
on first use, so ``import unsupseg`` is quick and loads torch only when a name that
needs it is used:

==========================  ===========================================================
``segment``                 one image by per-image optimisation (Kanezaki 2018, TIP 2020)
``load_checkpoint``         a trained model and its record
``predict``,                one or many images in one forward pass of a trained model
``predict_batch``
``TrainConfig``, ``train``  one network trained on a whole data set
``evaluate_dataset``        score a method, a checkpoint or saved label maps on a data set
``hierarchy``,               nested regions of a photo: its UCM, merge tree, ``cut`` and
``Hierarchy``                 ``cut_to`` (no labels, no weights)
``evaluate_hierarchy``      the Berkeley ODS/OIS protocol for hierarchies on BSDS500
``postprocess_dataset``     merge segments with seven clusterers, scored and chosen
``stability``               unique labels per image over training, grouped across runs
``build_report``            one Markdown and one HTML report of runs and evaluations
==========================  ===========================================================
"""

import os

# Large CPU tensors on transparent huge pages: every response map of a photo is a fresh
# tens-of-MB allocation, and faulting it in 4 KiB pages costs more than the arithmetic of
# a ReLU or BatchNorm (see `unsupseg bench segment`). PyTorch reads this variable once,
# at its first allocation, so it must be set here, before anything imports torch; it is
# the one piece of global state the package sets at import. THP_MEM_ALLOC_ENABLE=0 opts
# out.
os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")

from unsupseg.errors import (  # noqa: E402
    CheckpointError,
    ConfigError,
    DatasetError,
    ImageReadError,
    RunFolderError,
    UnsupsegError,
)
from unsupseg.lazy import lazy_exports  # noqa: E402
from unsupseg.version import __version__  # noqa: E402

#: Public name -> the module that defines it.
_EXPORTS = {
    "segment": "unsupseg.per_image",
    "SegmentationResult": "unsupseg.per_image",
    "read_image": "unsupseg.io",
    "read_scribble": "unsupseg.io",
    "as_rgb_float": "unsupseg.io",
    "slic_superpixels": "unsupseg.superpixels",
    "refine_by_superpixel_vote": "unsupseg.refine",
    "refine_by_label_slic": "unsupseg.refine",
    "load_checkpoint": "unsupseg.models.checkpoint",
    "Checkpoint": "unsupseg.models.checkpoint",
    "CheckpointInfo": "unsupseg.models.checkpoint",
    "predict": "unsupseg.inference",
    "predict_batch": "unsupseg.inference",
    "TrainConfig": "unsupseg.training",
    "TrainResult": "unsupseg.training",
    "train": "unsupseg.training",
    "evaluate_dataset": "unsupseg.evaluation",
    "hierarchy": "unsupseg.ucm",
    "Hierarchy": "unsupseg.ucm",
    "evaluate_hierarchy": "unsupseg.evaluation.hierarchical",
    "Evaluation": "unsupseg.evaluation",
    "postprocess_dataset": "unsupseg.postprocess",
    "stability": "unsupseg.analysis",
    "build_report": "unsupseg.report",
}

__all__ = [
    "CheckpointError",
    "ConfigError",
    "DatasetError",
    "ImageReadError",
    "RunFolderError",
    "UnsupsegError",
    "__version__",
    *_EXPORTS,
]


__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)
