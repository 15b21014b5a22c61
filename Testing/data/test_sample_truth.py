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
from scipy import ndimage

from SAFNetSpineLib.bundled import sample_path, sample_truth_path
from SAFNetSpineLib.data.phantom import (
    SAMPLE_OPTIONS,
    SAMPLE_SEED,
    PhantomOptions,
    make_phantom,
    phantom_truth,
)
from SAFNetSpineLib.io import read_volume
from SAFNetSpineLib.labels import FOREGROUND_IDS, SACRUM_ID, disc_vertebrae, structure, structure_by_name
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
    assert sample_path().stat().st_size < 3_000_000  # small enough for the repository and the wheel
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
    # Concave endplates: every body is thinner in the middle than between its endplate lines (which are fitted
    # over the concave plates, so they sit inside the rims: flat plates would give no difference).
    assert all(b["middle_height_mm"] < (b["anterior_height_mm"] + b["posterior_height_mm"]) / 2 - 0.5
               for b in truth["vertebrae"].values())
    discs = truth["discs"]
    assert all(7.0 <= discs[n]["middle_height_mm"] <= 16.0 for n in ("L1/L2", "L2/L3", "L3/L4", "L4/L5", "L5/S"))
    assert all(g["genant_grade"] == 0 for g in truth["vertebrae"].values())


def test_the_whole_sacrum_is_in_view_with_a_smooth_anterior_surface(sample):
    _, labels, _ = sample
    sacrum = labels.array == SACRUM_ID
    # Not cut by the image's lower edge (axis 1 runs from superior to inferior), as in the real scans.
    assert not sacrum[:, -3:, :].any()
    # One bone with no step on its pelvic surface: in the mid-sagittal slice, the anterior margin moves
    # by at most 3 mm from one row to the next along the sacrum's length (rows = 1 mm).
    mid = sacrum[sacrum.shape[0] // 2]
    rows = np.flatnonzero(mid.any(axis=1))
    front = np.array([np.flatnonzero(mid[r])[0] for r in rows])
    assert len(rows) > 60 and np.abs(np.diff(front)).max() <= 3


def test_discs_have_a_dark_annulus_like_real_t2(sample):
    """Real T2 development discs (ivd_ cases): outer ring about 0.3-0.4 of the marrow above, nucleus brighter."""
    image, labels, _ = sample
    a, lab = image.array, labels.array
    mid = lab.shape[0] // 2
    ratios = []
    for name in ("L4/L5", "L3/L4", "L2/L3", "L1/L2"):
        disc = structure_by_name(name).label_id
        inside = lab[mid] == disc
        ring = inside & ~ndimage.binary_erosion(inside, iterations=2)
        body = lab[mid] == disc_vertebrae(disc)[0]  # the vertebra above the disc
        ratios.append(np.median(a[mid][ring]) / np.median(a[mid][ndimage.binary_erosion(body, iterations=3)]))
    assert max(ratios) < 0.65, ratios


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


#: The bundled weights on the sample must find the lumbar bodies (Dice against the construction).
SAMPLE_LUMBAR_BODY_DICE_FLOOR = 0.75
#: How far the demo's L1-S1 lordosis may be from the construction: about the spread between readers
#: measuring one radiograph (a few degrees), not the 14 degrees an S1 endplate traced on the wrong bone gives.
DEMO_LORDOSIS_TOLERANCE_DEG = 6.0


#: Bundled weights known to fail a demo check below on this sample: sha256 of model.safetensors -> {test name:
#: what they do}. The listed checks still run on them (a strict xfail: if one passes, its entry must go); every
#: other check, and any other weights, such as the next bundled ones, must pass outright.
KNOWN_DEMO_FAILURES = {
    "c8d67270094850427e2c10f2ead445c9ca229db003b8577a6d804a1e5d05a046": {
        "test_the_demo_reads_the_built_lordosis":
            "the weights bundled 2026-12-07 (stage 11) read L1's and S1's superior endplates flatter than built, "
            "so they measure the L1-S1 lordosis 50.2 deg for the built 57.5 (model card, known failure modes)",
    },
}


@pytest.fixture
def known_demo_failure(request):
    """Marks the test a strict xfail when the bundled weights list it in :data:`KNOWN_DEMO_FAILURES`."""
    from SAFNetSpineLib.weights import default_weights_dir, read_manifest

    why = KNOWN_DEMO_FAILURES.get(read_manifest(default_weights_dir()).sha256, {}).get(request.node.originalname)
    if why:
        request.applymarker(pytest.mark.xfail(strict=True, reason=why))


@pytest.fixture(scope="module")
def demo():
    """What ``make demo`` computes: the bundled weights on the stored sample (CPU, default settings), measured."""
    import SAFNetSpineLib as sp

    result = sp.segment(sample_path(), device="cpu")
    return result, sp.measure(result.labels)


@pytest.mark.usefixtures("known_demo_failure")
def test_the_bundled_weights_find_and_name_the_lumbar_bodies_of_the_sample(sample, demo):
    from SAFNetSpineLib.evaluation.metrics import dice_per_structure

    _, labels, _ = sample
    result, measured = demo
    lumbar = [2, 3, 4, 5, 6]
    dice = dice_per_structure(result.labels.array, labels.array, lumbar)
    assert np.mean(list(dice.values())) >= SAMPLE_LUMBAR_BODY_DICE_FLOOR, dice
    assert all(measured["vertebrae"][structure(i).short_name]["genant_grade"] == 0 for i in lumbar)


@pytest.mark.usefixtures("known_demo_failure")
def test_the_demo_flags_nothing_the_sample_was_not_built_with(sample, demo):
    _, _, truth = sample
    _, measured = demo
    assert truth["built_in_findings"] == []
    line = summary_line(measured)  # the line `make demo` prints under the table
    assert line.startswith("No body with Genant grade"), line


@pytest.mark.usefixtures("known_demo_failure")
def test_the_demo_reads_the_built_lordosis(sample, demo):
    _, _, truth = sample
    _, measured = demo
    line = summary_line(measured)
    lordosis = measured["angles_deg"]["lumbar_lordosis_L1_S1"]
    assert abs(lordosis - truth["angles_deg"]["lumbar_lordosis_L1_S1"]) <= DEMO_LORDOSIS_TOLERANCE_DEG, line


def test_with_the_turned_passes_the_demo_flags_nothing_and_reads_the_built_lordosis(sample, demo):
    """``segment --turns on`` on the sample: the endplates the plain pass reads flat come out as built."""
    import SAFNetSpineLib as sp

    _, _, truth = sample
    plain, _ = demo  # the default: the plain pass
    result = sp.segment(sample_path(), device="cpu", turns=True)
    measured = sp.measure(result.labels)
    line = summary_line(measured)
    assert line.startswith("No body with Genant grade"), line
    lordosis = measured["angles_deg"]["lumbar_lordosis_L1_S1"]
    assert abs(lordosis - truth["angles_deg"]["lumbar_lordosis_L1_S1"]) <= DEMO_LORDOSIS_TOLERANCE_DEG, line
    # The names and the count are the plain pass's; only outlines move.
    assert result.naming.naming == plain.naming.naming
    assert set(np.unique(result.labels.array)) == set(np.unique(plain.labels.array))
