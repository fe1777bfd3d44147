"""Analyses of several training runs, read from their run folders.

:func:`stability` is the one so far: how many distinct argmax labels per image survive
training (the thesis' "merging"), per architecture or preset, across random seeds. The
module :mod:`unsupseg.analysis.label_stability` holds its parts (reading a curve, the
statistics, the outputs).
"""

from __future__ import annotations

from unsupseg.analysis.label_stability import RunCurve, StabilityResult, stability

__all__ = ["RunCurve", "StabilityResult", "stability"]
