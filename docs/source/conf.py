"""Sphinx configuration of unsupseg's documentation (the API reference from the numpydoc
docstrings, and a short user guide). Built by .ci/run with warnings as errors:

    .venv/bin/sphinx-build -W --keep-going -b html docs/source docs/_build/html
"""

from unsupseg import __version__

project = "unsupseg"
author = "the unsupseg developers"
copyright = "2026, the unsupseg developers"
release = __version__
version = __version__

extensions = ["sphinx.ext.autodoc", "sphinx.ext.autosummary", "numpydoc"]
autosummary_generate = False
autodoc_typehints = "none"  # the numpydoc sections say the types
autodoc_member_order = "bysource"
numpydoc_show_class_members = False
numpydoc_xref_param_type = False
numpydoc_validation_checks: set[str] = set()
exclude_patterns = ["_build"]
html_theme = "alabaster"
html_static_path: list[str] = []
