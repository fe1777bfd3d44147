"""Post-processing: merge the noisy segments of predictions with a clusterer.

- :mod:`~unsupseg.postprocess.merging`: regions, their features, the seven clusterers
  and :func:`merge_segments`;
- :mod:`~unsupseg.postprocess.sweep`: :func:`postprocess_dataset`, the sweep over a data
  set with its scores and choices;
- :mod:`~unsupseg.postprocess.figures`: the comparison figure.
"""

from unsupseg.postprocess.figures import save_comparison_figure
from unsupseg.postprocess.merging import (
    CLUSTERERS,
    DEFAULT_GRID,
    PARAMETER_NAMES,
    Setting,
    merge_segments,
    region_adjacency,
    region_features,
    sweep_settings,
)
from unsupseg.postprocess.sweep import (
    GT_SCORES,
    INDICES,
    PostprocessResult,
    choose_per_image,
    postprocess_dataset,
    process_image,
    summarise_settings,
)

__all__ = [
    "CLUSTERERS",
    "DEFAULT_GRID",
    "GT_SCORES",
    "INDICES",
    "PARAMETER_NAMES",
    "PostprocessResult",
    "Setting",
    "choose_per_image",
    "merge_segments",
    "postprocess_dataset",
    "process_image",
    "region_adjacency",
    "region_features",
    "save_comparison_figure",
    "summarise_settings",
    "sweep_settings",
]
