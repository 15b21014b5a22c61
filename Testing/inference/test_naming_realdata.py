"""Issue 22 on the real development cases (skipped without ../shared/data/spine-mri).

* An L3 hint at the expert L3 centre names every annotated level right, also where the
  segmentation is wrong at that point (a disc painted across the body, the body missed,
  every name one too low). ``ivd_`` cases annotate discs only: the hint is L3/L4 there.
* A case cut to its top 40 mm, and a noise volume, get no level names (``out_of_range``)
  from ``segment``'s own path with the bundled weights.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from SAFNetSpineLib.evaluation.metrics import level_named_correctly
from SAFNetSpineLib.inference.naming import LevelHint, name_levels
from SAFNetSpineLib.labels import L5_ID, L5_S_ID, neighbour, structure
from SAFNetSpineLib.volume import LPS_TO_RAS

HELD_OUT = ["myo_05", "myo_15", "myo_25", "myo_35", "myo_45", "chu_09", "chu_16", "ivd_25"]
L3_ID, L3_L4_ID = neighbour(L5_ID, 4), neighbour(L5_S_ID, 4)

pytestmark = pytest.mark.realdata


def _case(real_data_dir, case_id):
    from SAFNetSpineLib.data.cases import load_case, load_case_folder, select_cases

    (case,) = select_cases(load_case_folder(real_data_dir), [case_id])
    return case, *load_case(case)


def _hint_at_centre(reference, label_id) -> tuple[LevelHint, tuple[int, int, int]]:
    """The hint at the centre (mean voxel) of a reference structure, and that voxel."""
    voxels = np.argwhere(np.asarray(reference.array) == label_id)
    centre = voxels.mean(axis=0)
    lps = reference.affine_lps[:3, :3] @ centre + reference.affine_lps[:3, 3]
    return LevelHint(label_id, tuple(float(v) for v in LPS_TO_RAS @ lps)), tuple(int(v) for v in np.rint(centre))


def _wrong(labels, reference, annotated, skip=()) -> list[str]:
    out = []
    for label_id in annotated:
        if label_id and label_id not in skip:
            ok = level_named_correctly(np.asarray(labels), np.asarray(reference.array), label_id)
            if not math.isnan(ok) and ok == 0.0:
                out.append(structure(label_id).short_name)
    return out


def _one_too_low(array: np.ndarray) -> np.ndarray:
    """Every vertebra and disc named one level lower (L4 -> L5, L5 -> S, L4/L5 -> L5/S; L5/S stays)."""
    out = np.zeros_like(array)
    for label_id in np.unique(array):
        if label_id:
            out[array == label_id] = neighbour(int(label_id), -2) or int(label_id)
    return out


@pytest.mark.parametrize("damage", ["other_kind_across_the_point", "missed_structure", "names_one_too_low"])
@pytest.mark.parametrize("case_id", HELD_OUT)
def test_a_hint_at_the_expert_centre_names_every_annotated_level(real_data_dir, case_id, damage):
    case, _, reference = _case(real_data_dir, case_id)
    target = L3_ID if L3_ID in case.annotated_labels else L3_L4_ID
    hint, centre = _hint_at_centre(reference, target)
    truth = np.asarray(reference.array)
    damaged = truth.copy()
    structure_mask = truth == target
    skip = ()
    if damage == "other_kind_across_the_point":
        # A slab of the structure, 6 voxels either side of the centre along the array's superior axis,
        # painted as the structure of the other kind next to it, joined to it.
        superior_axis = int(np.argmax(np.abs(reference.direction[2])))
        slab = np.zeros_like(structure_mask)
        window = [slice(None)] * 3
        window[superior_axis] = slice(max(centre[superior_axis] - 6, 0), centre[superior_axis] + 7)
        slab[tuple(window)] = True
        other = L3_L4_ID if target == L3_ID else L3_ID
        damaged[structure_mask & slab] = other
        assert damaged[centre] == other
    elif damage == "missed_structure":
        damaged[structure_mask] = 0
        skip = (target,)
    else:
        damaged = _one_too_low(truth)
    result = name_levels(reference.with_array(damaged), hint=hint)
    assert _wrong(result.labels.array, reference, case.annotated_labels, skip) == []
    assert result.naming["anchor"] == "hint"


def _segment(image):
    from SAFNetSpineLib.inference.segmenter import Segmenter
    from SAFNetSpineLib.weights import default_weights_dir

    return Segmenter([default_weights_dir()], device="cpu", precision="fp32").segment(image)


def test_a_case_cut_to_its_top_40_mm_gets_no_level_names(real_data_dir):
    _, image, _ = _case(real_data_dir, "chu_09")
    superior_axis = int(np.argmax(np.abs(image.direction[2])))
    keep = int(round(40.0 / image.spacing[superior_axis]))
    top_first = image.direction[2, superior_axis] < 0  # index 0 is the superior end
    window = [slice(None)] * 3
    window[superior_axis] = slice(0, keep) if top_first else slice(image.shape[superior_axis] - keep, None)
    start = np.array([0, 0, 0])
    start[superior_axis] = 0 if top_first else image.shape[superior_axis] - keep
    origin = image.origin + image.direction @ (start * image.spacing)
    cut = type(image)(np.ascontiguousarray(image.array[tuple(window)]), image.spacing, origin, image.direction)
    result = _segment(cut)
    assert result.naming.naming["status"] == "out_of_range", result.naming.naming
    assert np.asarray(result.labels.array).sum() == 0 and result.volumes_ml == {}


def test_a_noise_volume_gets_no_level_names(real_data_dir):
    _, image, _ = _case(real_data_dir, "myo_05")  # a real grid and intensity range, filled with noise
    values = np.asarray(image.array, dtype=np.float32)
    noise = np.random.default_rng(22).normal(float(values.mean()), float(values.std()), values.shape)
    result = _segment(image.with_array(noise.astype(np.float32)))
    assert result.naming.naming["status"] == "out_of_range", result.naming.naming
    assert np.asarray(result.labels.array).sum() == 0


#: A network that never saw the T1 water-fat source (RESULTS.md, "Checks against a count gone wrong": N4). Before
#: the naming's checks against odd chains it named these two cases confident, with levels wrong.
NAMING_CHECK_NET = Path(__file__).resolve().parents[2] / "Resources" / "Models" / "candidates" / \
    "naming-checks-2026-12-07" / "N4"


@pytest.mark.parametrize("case_id", ["myo_32", "myo_44"])
def test_an_unseen_source_counted_through_an_odd_chain_is_not_confident(real_data_dir, case_id):
    from SAFNetSpineLib.inference.segmenter import Segmenter

    case, image, reference = _case(real_data_dir, case_id)
    result = Segmenter([NAMING_CHECK_NET], device="cpu", precision="fp32").segment(image)
    labels = np.asarray(result.labels.array)
    wrong = [i for i in case.annotated_labels if i and level_named_correctly(labels, np.asarray(reference.array), i) == 0]
    assert wrong  # the network still names some level wrong here ...
    assert result.naming.naming["status"] == "uncertain"  # ... and the naming says so
    assert max(result.naming.name_confidence.values()) <= 0.5
