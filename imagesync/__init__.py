"""imagesync: mirror container images into a registry with a reviewable plan."""

# The one place the version is written: pyproject.toml reads it from here. Asking
# importlib.metadata at run time instead would cost every start a twentieth of a second.
__version__ = "0.1.0"
