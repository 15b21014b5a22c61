"""The bundled sample: a plausible lumbar spine whose measurements match how it was built.

``Resources/SampleData/SAFNetSpinePhantom.nii.gz`` is ``make_phantom(SAMPLE_SEED, SAMPLE_OPTIONS)``
(the "lumbar" anatomy) and ``SAFNetSpinePhantom_truth.json`` records its construction. The demo
(``make demo``) measures the sample; these tests hold the measurements of its label map to the
construction, so the demo cannot flag a slip or a fracture that was not built in.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from SAFNetSpineLib.bundled import sample_path, sample_truth_path
from SAFNetSpineLib.data.phantom import (
    SAMPLE_OPTIONS,
    SAMPLE_SEED,
    PhantomOptions,
    make_phantom,
    phantom_truth,
)
from SAFNetSpineLib.io import read_volume
from SAFNetSpineLib.labels import FOREGROUND_IDS, structure
from SAFNetSpineLib.measurements import measure_spine, summary_line

#: Agreement of the measured label map with the construction: heights read on a 1 mm grid with
#: 4 mm slices, angles from fitted endplate lines.
HEIGHT_TOLERANCE_MM = 1.5
ANGLE_TOLERANCE_DEG = 3.0
#: Largest slip the measurement may find where none was built (the flag threshold is 3 mm).
NO_SLIP_MM = 1.5


@pytest.fixture(scope="module")
def sample():
    image, labels = make_phantom(SAMPLE_SEED, SAMPLE_OPTIONS)
    return image, labels, phantom_truth(SAMPLE_SEED, SAMPLE_OPTIONS)


@pytest.fixture(scope="module")
def measured(sample):
    return measure_spine(sample[1])


def test_the_stored_sample_and_its_truth_are_what_the_generator_makes(sample):
    image, _, truth = sample
    stored = read_volume(sample_path())
    assert stored.same_grid(image)
    np.testing.assert_allclose(stored.array, np.round(image.array), atol=0.5)
    recorded = json.loads(sample_truth_path().read_text(encoding="utf-8"))
    assert recorded == json.loads(json.dumps(truth))  # same numbers, as JSON stores them


def test_the_sample_is_built_like_an_adult_lumbar_spine(sample):
    _, labels, truth = sample
    assert set(np.unique(labels.array)) == {0, *FOREGROUND_IDS}
    angles = truth["angles_deg"]
    assert 40.0 <= angles["lumbar_lordosis_L1_S1"] <= 60.0
    assert 30.0 <= angles["sacral_slope"] <= 50.0
    assert truth["built_in_findings"] == [] and not any(truth["listhesis_mm"].values())
    lumbar = {name: body for name, body in truth["vertebrae"].items() if name.startswith("L")}
    assert all(22.0 <= b["posterior_height_mm"] <= 30.0 and 30.0 <= b["ap_depth_mm"] <= 40.0 for b in lumbar.values())
    # Concave endplates: every body is thinner in the middle than the mean of its walls' heights.
    assert all(b["middle_height_mm"] < (b["anterior_height_mm"] + b["posterior_height_mm"]) / 2 - 1.5
               for b in truth["vertebrae"].values())
    discs = truth["discs"]
    assert all(7.0 <= discs[n]["middle_height_mm"] <= 16.0 for n in ("L1/L2", "L2/L3", "L3/L4", "L4/L5", "L5/S"))
    assert all(g["genant_grade"] == 0 for g in truth["vertebrae"].values())


def test_the_sample_looks_like_t2_with_no_bright_bars_at_its_edges(sample):
    image, labels, _ = sample
    a, lab = image.array, labels.array
    nucleus = np.percentile(a[np.isin(lab, [12, 13, 14])], 90)
    bone = np.median(a[np.isin(lab, [3, 4, 5])])
    assert nucleus > 1.3 * bone  # hydrated nuclei are brighter than marrow on T2
    # No straight bright bar running the height of the image (the previous sample had two, 0.96 of the
    # 99th percentile along a whole column): the fat of the back follows the curve of the spine.
    assert a.mean(axis=1).max() < 0.8 * np.percentile(a, 99)
    assert np.std(a[lab == 4]) > 0.05 * a[lab == 4].mean()  # marrow has texture, not one grey value


def test_measurements_of_the_sample_labels_match_its_construction(sample, measured):
    _, _, truth = sample
    assert summary_line(measured).startswith("No body with Genant grade")
    # Every lumbar level is measured; T9 and T10 are cut by the field of view's upper edge, so not measured.
    # S: S1's endplate only; a body cut by the edge has no heights.
    bodies = {name: body for name, body in measured["vertebrae"].items() if "middle_height_mm" in body}
    assert {"L1", "L2", "L3", "L4", "L5"} <= set(bodies) <= set(truth["vertebrae"])
    assert {"L1/L2", "L2/L3", "L3/L4", "L4/L5", "L5/S"} <= set(measured["discs"])
    for name, body in bodies.items():
        built = truth["vertebrae"][name]
        for key in ("anterior_height_mm", "middle_height_mm", "posterior_height_mm"):
            assert abs(body[key] - built[key]) <= HEIGHT_TOLERANCE_MM, (name, key, body[key], built[key])
        assert body["genant_grade"] == 0, name
    for name, disc in measured["discs"].items():
        built = truth["discs"][name]
        assert abs(disc["middle_height_mm"] - built["middle_height_mm"]) <= HEIGHT_TOLERANCE_MM, name
    angles = measured["angles_deg"]
    assert abs(angles["lumbar_lordosis_L1_S1"] - truth["angles_deg"]["lumbar_lordosis_L1_S1"]) <= ANGLE_TOLERANCE_DEG
    for name, value in angles["segmental"].items():
        assert abs(value - truth["angles_deg"]["segmental"][name]) <= ANGLE_TOLERANCE_DEG, name
    assert {"L1/L2", "L2/L3", "L3/L4", "L4/L5", "L5/S"} <= set(measured["listhesis"]) <= set(truth["listhesis_mm"])
    assert max(s["slip_mm"] for s in measured["listhesis"].values()) <= NO_SLIP_MM


def test_other_lumbar_phantoms_are_measured_as_built_too():
    options = PhantomOptions(slices=(15, 15), slice_spacing_mm=(4.0, 4.0), inplane_spacing_mm=(1.2, 1.2),
                             oblique_deg=8.0, random_orientation=True, anatomy="lumbar")
    _, labels = make_phantom(41, options)
    truth = phantom_truth(41, options)
    measured = measure_spine(labels)
    assert abs(measured["angles_deg"]["lumbar_lordosis_L1_S1"] - truth["angles_deg"]["lumbar_lordosis_L1_S1"]) <= 3.0
    assert max(s["slip_mm"] for s in measured["listhesis"].values()) <= NO_SLIP_MM
    assert all(measured["vertebrae"][structure(i).short_name]["genant_grade"] == 0 for i in range(2, 11))


def test_the_classic_anatomy_records_no_truth():
    with pytest.raises(ValueError, match="lumbar"):
        phantom_truth(0, PhantomOptions())


#: The bundled weights on the sample (measured 2026-12-06): lumbar bodies L1-L5 Dice 0.72-0.87 (mean 0.84),
#: every lumbar level named right; the sacrum only 0.27 (S1 is never labelled in the real training data).
SAMPLE_LUMBAR_BODY_DICE_FLOOR = 0.75


def test_the_bundled_weights_find_and_name_the_lumbar_bodies_of_the_sample(sample):
    from SAFNetSpineLib.evaluation.metrics import dice_per_structure
    from SAFNetSpineLib.inference import Segmenter
    from SAFNetSpineLib.weights import default_weights_dir

    _, labels, _ = sample
    result = Segmenter([default_weights_dir()], device="cpu").segment(read_volume(sample_path()))
    lumbar = [2, 3, 4, 5, 6]
    dice = dice_per_structure(result.labels.array, labels.array, lumbar)
    assert np.mean(list(dice.values())) >= SAMPLE_LUMBAR_BODY_DICE_FLOOR, dice
    measured = measure_spine(result.labels)
    # No fracture is flagged on a lumbar body. (Known, not asserted: the network's S1 is poor, so L1-S1
    # lordosis and the L5/S slip come out wrong; see the sample's README.)
    assert all(measured["vertebrae"][structure(i).short_name]["genant_grade"] == 0 for i in lumbar)
