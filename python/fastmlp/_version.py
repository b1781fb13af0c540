"""The package version: the single source read by the build (scikit-build-core's regex
provider, which also hands it to CMake for the extension) and by fastmlp.__version__."""

__version__ = "0.1.0"
