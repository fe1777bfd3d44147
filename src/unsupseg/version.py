"""The installed version of unsupseg."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("unsupseg")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0+unknown"
