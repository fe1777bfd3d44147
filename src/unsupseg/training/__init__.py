"""Dataset-level training: one network (base, classifier or autoencoder) on a data set.

- :mod:`~unsupseg.training.config`: :class:`TrainConfig` and :func:`resolve_config`, the
  settings, filled by a preset and, on resume, by the stored run;
- :mod:`~unsupseg.training.data`: the training and validation images, the
  :class:`EpochSampler` and the Lightning data module;
- :mod:`~unsupseg.training.module`: :class:`SegmentationModule`, the method as a
  LightningModule;
- :mod:`~unsupseg.training.recorder`: metrics.csv, TensorBoard, figures, checkpoints;
- :mod:`~unsupseg.training.figures`: the figures of a run;
- :mod:`~unsupseg.training.run`: :func:`train`, the Lightning Trainer around it all.

The names of ``__all__`` are loaded from their modules on first use, so importing this
package loads neither torch nor Lightning.

Examples
--------
>>> from unsupseg.training import TrainConfig, train
>>> result = train(TrainConfig(preset="base-bsds500", epochs=2))  # doctest: +SKIP
>>> result.model_best  # doctest: +SKIP
PosixPath('runs/base-bsds500/checkpoints/model-best.pt')
"""

from unsupseg.lazy import lazy_exports

#: Public name -> the module that defines it.
_EXPORTS = {
    "TrainConfig": "unsupseg.training.config",
    "resolve_config": "unsupseg.training.config",
    "EpochItems": "unsupseg.training.data",
    "EpochSampler": "unsupseg.training.data",
    "SegmentationDataModule": "unsupseg.training.data",
    "open_training_sets": "unsupseg.training.data",
    "SegmentationModule": "unsupseg.training.module",
    "count_unique_labels": "unsupseg.training.module",
    "TrainingRecorder": "unsupseg.training.recorder",
    "checkpoint_info": "unsupseg.training.recorder",
    "TrainResult": "unsupseg.training.run",
    "train": "unsupseg.training.run",
}

__all__ = list(_EXPORTS)


__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)
