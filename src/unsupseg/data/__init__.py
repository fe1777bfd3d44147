"""Data sets, the superpixel cache and training items.

Data flows one way: an :class:`ImageDataset` (opened by :func:`open_dataset`) gives
images, labels and ground truth; a :class:`SuperpixelCache` stores SLIC of every image
once; a :class:`TrainingDataset` pairs them into augmented torch items, batched by
:func:`collate`.
"""

from unsupseg.data.base import ImageDataset
from unsupseg.data.cache import SuperpixelCache, default_cache_dir, default_slic_params
from unsupseg.data.datasets import (
    DATASETS,
    BSDS500Dataset,
    CIFAR10Dataset,
    FolderDataset,
    MSRCDataset,
    STL10Dataset,
    VOC2012Dataset,
    open_dataset,
    read_bsds_ground_truth,
    read_class_map,
)
from unsupseg.data.folders import LabelledFolderDataset, open_folder
from unsupseg.data.locate import DATA_FOLDERS, DATA_LAYOUTS, default_data_root
from unsupseg.data.subsets import HOLDOUT_EVERY, SubsetDataset, first_images, split_holdout
from unsupseg.data.training import TrainingDataset, collate, crop_and_flip
from unsupseg.errors import DatasetError

__all__ = [
    "DATA_FOLDERS",
    "DATA_LAYOUTS",
    "HOLDOUT_EVERY",
    "SubsetDataset",
    "default_data_root",
    "first_images",
    "split_holdout",
    "DATASETS",
    "BSDS500Dataset",
    "CIFAR10Dataset",
    "DatasetError",
    "FolderDataset",
    "ImageDataset",
    "LabelledFolderDataset",
    "MSRCDataset",
    "STL10Dataset",
    "SuperpixelCache",
    "TrainingDataset",
    "VOC2012Dataset",
    "collate",
    "crop_and_flip",
    "default_cache_dir",
    "default_slic_params",
    "open_dataset",
    "open_folder",
    "read_bsds_ground_truth",
    "read_class_map",
]
