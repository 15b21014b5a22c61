"""The five notebook lines of the README work, in-process, with the bundled weights and sample."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

import SAFNetSpineLib as sp
from SAFNetSpineLib.bundled import sample_path
from SAFNetSpineLib.errors import SpineInputError
from SAFNetSpineLib.weights import default_weights_dir


def test_importing_the_package_loads_neither_torch_nor_simpleitk():
    code = ("import sys, SAFNetSpineLib as sp; sp.segment; sp.measure; "
            "print(sorted(m for m in ('torch', 'SimpleITK', 'monai', 'scipy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_segment_then_measure_the_sample_in_four_lines():
    result = sp.segment(str(sample_path()), device="cpu")
    print(result.naming, result.volumes_ml)
    m = sp.measure(result.labels)
    image = sp.read_volume(sample_path())
    assert result.labels.same_grid(image) and result.labels.is_label
    # The lines work whatever the weights make of the sample (how well they do: Testing/data/test_sample_truth.py).
    assert {"L1", "L2", "L3", "L4", "L5"} & set(result.volumes_ml) and all(v > 0 for v in result.volumes_ml.values())
    assert result.naming.naming["status"] in ("confident", "uncertain", "out_of_range")
    assert str(result.naming).startswith(f"level names {result.naming.naming['status']}")  # one line, no arrays
    assert "\n" not in str(result.naming)
    assert m["schema"].startswith("safnet-spine-measurements") and m["vertebrae"]
    again = sp.segment(image, device="cpu")  # a Volume works too; the loaded network is reused
    np.testing.assert_array_equal(again.labels.array, result.labels.array)


def test_a_far_larger_field_of_view_is_windowed_unless_fit_fov_is_false():
    image = sp.read_volume(sample_path())  # 15 x 370 x 280 voxels of 4 x 1 x 1 mm: axis 1 is superior-inferior
    assert image.shape[1:] == (370, 280) and tuple(image.spacing[1:]) == (1.0, 1.0)
    tall = np.pad(np.asarray(image.array), [(0, 0), (200, 200), (0, 0)])  # 770 mm superior-inferior
    scan = sp.Volume(tall, image.spacing, image.origin, image.direction)
    windowed = sp.segment(scan, device="cpu")
    whole = sp.segment(scan, device="cpu", fit_fov=False)
    assert windowed.field_of_view["window_mm"] is not None and windowed.field_of_view["warning"] is None
    assert whole.field_of_view["window_mm"] is None and whole.field_of_view["warning"] is not None


def test_default_weights_are_the_bundled_ones_unless_a_models_folder_is_given(tmp_path):
    assert sp.resolve_weights() == [default_weights_dir()]
    assert sp.resolve_weights([tmp_path]) == [tmp_path]
    # One folder given as a string or a path is that folder, not a list of its characters.
    assert sp.resolve_weights(str(tmp_path)) == sp.resolve_weights(tmp_path) == [tmp_path]
    try:
        sp.resolve_weights(models=tmp_path / "typo")
    except SpineInputError as error:
        assert "models folder not found" in str(error)
    else:
        raise AssertionError("a missing models folder must not fall back to the bundled weights")
