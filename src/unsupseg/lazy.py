"""Package attributes loaded from their modules on first use (PEP 562)."""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    namespace: dict[str, Any], exports: dict[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of a package whose public names are loaded
    lazily, so that importing the package loads no heavy dependency (torch, Lightning).

    Parameters
    ----------
    namespace : dict
        The package's ``globals()``; a loaded name is stored there, so later lookups do
        not come back to ``__getattr__``.
    exports : dict
        Public name -> the module that defines it.

    Returns
    -------
    __getattr__, __dir__ : functions
        To assign in the package's ``__init__``.
    """
    package = namespace["__name__"]

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(module), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(namespace.get("__all__", ())) | set(exports))

    return __getattr__, __dir__
