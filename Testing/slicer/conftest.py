"""Make the module folder importable and give MRML tests a scene (PyPI slicer-core)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
MODULE_DIR = HERE.parents[1] / "SAFNetSpine"
# The module folder (SAFNetSpineMRML) and this folder (mrml_fixtures) are not packages on
# the path; pytest runs with --import-mode=importlib, which adds neither.
for folder in (MODULE_DIR, HERE):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))


@pytest.fixture
def scene():
    slicer = pytest.importorskip("slicer")
    if not hasattr(slicer, "vtkMRMLScene"):
        pytest.skip("slicer-core is not installed")
    return slicer.vtkMRMLScene()
