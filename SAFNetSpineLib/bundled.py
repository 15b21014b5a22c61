"""Where the bundled weights and the sample volume are, in every way the library is installed.

* Source tree and the installed Slicer extension: ``Resources/`` beside the ``SAFNetSpineLib``
  package folder (CMakeLists.txt copies it there).
* ``pip install .``: inside the package, ``SAFNetSpineLib/resources/`` (pyproject.toml maps
  ``Resources/`` there as package data).

Importing this module imports nothing heavy.
"""

from __future__ import annotations

from pathlib import Path

#: Stem of the bundled sample volume and of its construction record (``NAME.nii.gz``, ``NAME_truth.json``).
SAMPLE_NAME = "SAFNetSpinePhantom"
#: Suffix of the sample's construction record beside it.
TRUTH_SUFFIX = "_truth.json"


def resources_dir() -> Path:
    """``Resources/`` beside the package if it holds the models or the sample, else the copy inside the package."""
    package = Path(__file__).resolve().parent
    beside = package.parent / "Resources"
    if (beside / "Models").is_dir() or (beside / "SampleData").is_dir():
        return beside
    return package / "resources"


def sample_path() -> Path:
    """The bundled sample volume, a synthetic T2-like lumbar spine (``Resources/SampleData/``)."""
    return resources_dir() / "SampleData" / f"{SAMPLE_NAME}.nii.gz"


def sample_truth_path() -> Path:
    """The sample's construction record: what its measurements should find (``phantom_truth``)."""
    return resources_dir() / "SampleData" / f"{SAMPLE_NAME}{TRUTH_SUFFIX}"
