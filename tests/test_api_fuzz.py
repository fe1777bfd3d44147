"""The Python API on arrays of random shape, dtype and values, NaN and infinities
included: a label map, or a ValueError that says why, and nothing else."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import unsupseg
from unsupseg.io import as_float_channels, as_rgb_float

#: Every dtype a caller may plausibly hand over, the unusable ones included.
DTYPES = st.sampled_from(
    [
        np.bool_,
        np.uint8,
        np.uint16,
        np.int8,
        np.int32,
        np.int64,
        np.float16,
        np.float32,
        np.float64,
        np.complex64,
        np.str_,
    ]  # fmt: skip
)
SHAPES = hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=9)
pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.filterwarnings("error")]
FUZZ = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@st.composite
def arrays(draw) -> np.ndarray:
    """Arrays of any shape and dtype; floats draw NaN and infinities too."""
    dtype = np.dtype(draw(DTYPES))
    shape = draw(SHAPES)
    if dtype.kind == "U":
        return np.full(shape, "x", dtype=dtype)
    elements = None
    if dtype.kind == "f":
        elements = st.floats(allow_nan=True, allow_infinity=True, width=dtype.itemsize * 8)
    return draw(hnp.arrays(dtype, shape, elements=elements))


def _explained(error: ValueError) -> None:
    message = str(error)
    assert message and "\n" not in message.strip(), repr(message)
    # default options never diverge: a NaN loss from the image itself is a bug
    assert "diverged" not in message, message


def _usable(image: np.ndarray, reader=as_rgb_float) -> bool:
    """Whether ``reader`` takes the array: ``as_rgb_float`` for the RGB entry points,
    ``as_float_channels`` for ``segment``, which takes any number of bands."""
    try:
        reader(image)
    except ValueError:
        return False
    return True


@FUZZ
@given(image=arrays())
def test_segment_gives_labels_or_says_why(image):
    try:
        labels = unsupseg.segment(image, q=4, max_iter=1, n_segments=8, max_side=16)
    except ValueError as error:
        _explained(error)
        return
    assert _usable(image, as_float_channels)
    assert labels.shape == image.shape[:2]
    assert np.issubdtype(labels.dtype, np.integer)
    assert labels.min() == 0 and np.unique(labels).size == labels.max() + 1


@FUZZ
@given(image=arrays())
def test_tip2020_gives_labels_or_says_why(image):
    try:
        labels = unsupseg.segment(image, method="tip2020", q=4, max_iter=1, max_side=16)
    except ValueError as error:
        _explained(error)
        return
    assert labels.shape == image.shape[:2] and labels.min() == 0


@FUZZ
@given(image=arrays())
def test_hierarchy_gives_nested_cuts_or_says_why(image):
    try:
        tree = unsupseg.hierarchy(image)
    except ValueError as error:
        _explained(error)
        return
    assert _usable(image)
    fine, coarse = tree.cut(0.1), tree.cut(0.9)
    assert fine.shape == coarse.shape == image.shape[:2]
    assert np.isfinite(tree.ucm).all() and 0 <= tree.ucm.min() and tree.ucm.max() <= 1
    # every fine region lies inside one coarse region
    pairs = np.unique(np.stack([fine.ravel(), coarse.ravel()]), axis=1)
    assert np.unique(pairs[0]).size == pairs.shape[1]


@FUZZ
@given(
    lr=st.floats(allow_nan=True, allow_infinity=True),
    compactness=st.floats(allow_nan=True, allow_infinity=True),
    mu=st.floats(allow_nan=True, allow_infinity=True),
    seed=st.integers(min_value=-(2**70), max_value=2**70),
)
def test_option_values_are_checked(lr, compactness, mu, seed):
    image = np.random.default_rng(0).random((8, 8, 3))
    valid = (
        np.isfinite([lr, compactness, mu]).all()
        and lr > 0
        and 1e-6 <= compactness <= 1e6
        and mu >= 0
        and 0 <= seed < 2**32
    )
    try:
        labels = unsupseg.segment(
            image, q=4, max_iter=1, n_segments=8, lr=lr, compactness=compactness, mu=mu,
            seed=seed,
        )  # fmt: skip
    except ValueError as error:
        _explained(error)
        assert not valid or "diverged" in str(error), error
        return
    assert valid and labels.shape == (8, 8)


def test_a_diverging_optimisation_is_an_error_not_a_blank_map():
    image = np.random.default_rng(0).random((16, 16, 3))
    with pytest.raises(unsupseg.ConfigError, match="diverged.*lower the learning rate"):
        unsupseg.segment(image, q=4, max_iter=20, n_segments=8, lr=1e30)
