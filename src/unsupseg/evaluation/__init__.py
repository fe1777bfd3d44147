"""Scoring segmentations on data sets: per image, then pooled over the data set.

- :mod:`~unsupseg.evaluation.scoring`: what a per-image row holds for each kind of ground
  truth (BSDS500, class maps, none), and the dataset figures of the rows;
- :mod:`~unsupseg.evaluation.predictors`: where predictions come from (a baseline,
  per-image optimisation, a checkpoint, saved label maps);
- :mod:`~unsupseg.evaluation.rows`: the resumable per-image CSV;
- :mod:`~unsupseg.evaluation.dataset`: :func:`evaluate_dataset`, the whole run.
"""

from unsupseg.evaluation.dataset import (
    CSV_NAME,
    DEFAULT_SPLITS,
    SETTINGS_NAME,
    Evaluation,
    evaluate_dataset,
    open_scored_dataset,
)
from unsupseg.evaluation.predictors import (
    METHODS,
    Predictor,
    find_prediction,
    make_predictor,
    read_prediction,
)
from unsupseg.evaluation.rows import appending_rows, csv_cell, parse_cell, read_rows, write_rows
from unsupseg.evaluation.scoring import (
    BSDS_COLUMNS,
    CLASS_MAP_COLUMNS,
    COLUMNS,
    INDICES,
    INTERNAL_COLUMNS,
    n_segments,
    score_bsds,
    score_class_map,
    score_internal,
    score_prediction,
    scored_classes,
    scoring_kind,
    summarise,
)

__all__ = [
    "BSDS_COLUMNS",
    "CLASS_MAP_COLUMNS",
    "COLUMNS",
    "CSV_NAME",
    "DEFAULT_SPLITS",
    "INDICES",
    "INTERNAL_COLUMNS",
    "METHODS",
    "SETTINGS_NAME",
    "Evaluation",
    "Predictor",
    "appending_rows",
    "csv_cell",
    "evaluate_dataset",
    "find_prediction",
    "make_predictor",
    "n_segments",
    "open_scored_dataset",
    "parse_cell",
    "read_prediction",
    "read_rows",
    "score_bsds",
    "score_class_map",
    "score_internal",
    "score_prediction",
    "scored_classes",
    "scoring_kind",
    "summarise",
    "write_rows",
]
