"""imagesync: mirror container images into a registry with a reviewable plan."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("imagesync")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+source"
