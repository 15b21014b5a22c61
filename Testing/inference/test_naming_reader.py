"""Issue 22 on synthetic spines: S1 recognised as a reader would, a hint that always works, out of range."""

from __future__ import annotations

import numpy as np
import pytest
from spine_maps import DIRECTIONS, FULL, centre_ras, grid, hint_text, layers, names_of, paint, spine

from SAFNetSpineLib.inference.naming import ClassEvidence, name_levels, parse_level_hint
from SAFNetSpineLib.inference.pieces import SPECK_ML, clean_pieces
from SAFNetSpineLib.labels import NUM_CLASSES, structure_by_name

#: The top of the sacrum alone (S1 as the network often paints it), half a body tall.
S1_ONLY = [("S", 12.0), *FULL[1:]]


def network(anatomy, names=None, p_named: float = 0.9) -> ClassEvidence:
    """Probabilities on a coarse axis-aligned network grid: ``p_named`` on the painted name."""
    coarse = grid(np.eye(3), layers(anatomy)[-1][2], thick_mm=4.0, fine_mm=2.0)
    painted = paint(coarse, anatomy, names).array
    probabilities = np.full((NUM_CLASSES, *coarse.shape), (1 - p_named) / (NUM_CLASSES - 1), np.float32)
    for label_id in range(NUM_CLASSES):
        probabilities[label_id][painted == label_id] = p_named
    return ClassEvidence(probabilities, coarse.affine_lps)


@pytest.mark.parametrize("direction", ["oblique", "permuted_sagittal"])
def test_s1_alone_with_a_normal_disc_above_is_an_anchor(direction):
    result = name_levels(spine(S1_ONLY, direction), network(S1_ONLY))
    assert result.naming["status"] == "confident" and result.naming["anchor"] == "sacrum"
    assert result.naming["counted_from"] == "counted from S1"
    assert names_of(result.labels, S1_ONLY) == [n if isinstance(n, str) else n[0] for n in S1_ONLY]


def test_s1_without_the_networks_s_or_without_a_disc_above_is_no_anchor():
    labels_only = name_levels(spine(S1_ONLY))  # an input label map: its "S" says nothing about anatomy
    assert labels_only.naming["anchor"] == "none" and labels_only.naming["status"] == "uncertain"
    no_disc = [("S", 12.0), ("L5/S", 2.0), *FULL[2:]]  # a rudimentary L5/S disc: transitional?
    result = name_levels(spine(no_disc), network(no_disc))
    assert result.naming["status"] == "uncertain"
    assert "transitional lumbosacral vertebra" in result.naming["reason"]


def test_a_lumbar_body_at_the_lower_edge_called_s_by_the_network_is_no_anchor():
    anatomy = FULL[2:]  # L5 up; the network calls every level one too low (L5 "S", L4/L5 "L5/S" ...)
    names = ["S", "L5/S", "L5", "L4/L5", "L4", "L3/L4", "L3", "L2/L3", "L2", "L1/L2", "L1"]
    result = name_levels(spine(anatomy, names=names), network(anatomy, names))
    assert result.naming["status"] == "uncertain" and result.naming["anchor"] == "none"
    assert "a height unlike a lumbar body's" in result.naming["reason"]
    assert max(result.name_confidence.values()) <= 0.5


# The network painted a disc across the lower two thirds of L3 (joined to the L3/L4 disc below it) and
# named every level one too low; the user points at the true centre of L3.
L3_CUT = [*FULL[:5], "L3/L4", ("L3", 16.0), ("L3", 8.0), *FULL[7:]]
L3_CUT_NAMES = ["S", "L5/S", "S", "L5/S", "L5", "L4/L5", "L4/L5", "L4", *[n for n in FULL[5:-2]]]


@pytest.mark.parametrize("direction", ["oblique", "flipped_oblique"])
def test_a_hint_on_a_disc_the_network_painted_across_the_body_re_splits_it(direction):
    labels = spine(L3_CUT, direction, names=L3_CUT_NAMES)
    stack = layers(L3_CUT)
    l3_centre_mm = (stack[6][1] + stack[7][2]) / 2  # inside the "disc" part (16 mm of 24)
    r, a, _ = centre_ras(L3_CUT, 6)
    result = name_levels(labels, hint=parse_level_hint(hint_text("L3", (r, a, l3_centre_mm))))
    expected = [n if isinstance(n, str) else n[0] for n in L3_CUT]
    assert names_of(result.labels, L3_CUT) == expected
    assert result.naming["anchor"] == "hint" and result.naming["counted_from"] == "counted from your L3"
    assert "the segmentation had a disc (labelled L4/L5) at the point" in result.naming["reason"]


def test_a_hint_where_the_network_found_nothing_counts_an_unseen_body_there():
    names = [n if n != "L3" else 0 for n in FULL]  # L3 not segmented at all
    labels = spine(FULL, "oblique", names=[*names[:6], 0, *["L3/L4", "L3", "L2/L3", "L2", "L1/L2", "L1"]])
    result = name_levels(labels, hint=parse_level_hint(hint_text("L3", centre_ras(FULL, 6))))
    assert names_of(result.labels, FULL) == [*FULL[:6], None, *FULL[7:]]
    assert "no vertebra was segmented at the point" in result.naming["reason"]


def test_a_body_named_at_a_point_in_front_of_it_is_that_body():
    labels = spine(FULL, "oblique", names=["S", "L5/S", "S", *FULL[1:-2]])
    r, a, s = centre_ras(FULL, 6)
    result = name_levels(labels, hint=parse_level_hint(hint_text("L3", (r, a + 30.0, s))))
    assert names_of(result.labels, FULL) == FULL


def _specks(volume, names, ml: float):
    """Cubes of ``ml`` mL labelled ``names``, 30 mm apart along the volume's middle."""
    out = np.zeros(volume.shape, np.uint8)
    side = max(1, int(round((ml / volume.voxel_volume_ml) ** (1 / 3))))
    centre = np.array(volume.shape) // 2
    for n, name in enumerate(names):
        at = centre.copy()
        axis = int(np.argmax(volume.shape))
        at[axis] = min(volume.shape[axis] - side, max(0, centre[axis] + (n - 2) * 8))
        out[tuple(slice(int(c), int(c) + side) for c in at)] = structure_by_name(name).label_id
    return volume.with_array(out, is_label=True)


def test_specks_of_a_scan_outside_the_spine_give_no_level_names():
    """A cervical T2 gave 5 specks of 0.00-0.07 mL named S, L3, L2, L1 and T12/L1."""
    volume = grid(DIRECTIONS["oblique"], 200.0)
    specks = _specks(volume, ["S", "L3", "L2", "L1", "T12/L1"], 0.07)
    assert 0 < (specks.array > 0).sum() * specks.voxel_volume_ml < 5 * SPECK_ML
    assert clean_pieces(specks).array.sum() == 0
    result = name_levels(specks)
    assert result.naming["status"] == "out_of_range" and result.labels.array.sum() == 0
    assert result.name_confidence == {}


def test_a_spine_cut_to_its_top_40_mm_is_out_of_range():
    labels = spine(FULL, "oblique")
    top = layers(FULL)[-1][2]
    cut = labels.with_array(np.asarray(paint(labels, [(0, top - 40.0), *[("L2", 40.0)]]).array > 0)
                            * np.asarray(labels.array))
    result = name_levels(cut)
    assert result.naming["status"] == "out_of_range" and result.naming["anchor"] == "none"
    assert "no lumbar or lower thoracic spine in view" in result.naming["reason"]
    assert result.labels.array.sum() == 0 and (np.asarray(cut.array) > 0).any()


# L3 and L2 with a collapsed disc between them, all three labelled L3: one piece 1.6 bodies tall.
TALL = [*FULL[:6], ("L3", 18.0), ("L2/L3", 2.5), ("L2", 18.0), *FULL[9:]]
TALL_NAMES = [*FULL[:6], "L3", "L3", "L3", *FULL[9:]]


def test_a_tall_body_with_a_disc_the_network_sees_inside_is_two_bodies_without_doubt():
    labels = spine(TALL, "oblique", names=TALL_NAMES)
    result = name_levels(labels, network(TALL))  # the network sees the thin disc it did not outline
    found = names_of(result.labels, TALL)
    assert found[6] == "L3" and found[8] == "L2" and found[9:] == FULL[9:]
    assert "split" not in result.naming["reason"]
    assert result.naming["status"] == "confident", result.naming


def test_a_tall_body_without_disc_evidence_is_not_confident():
    labels = spine(TALL, "oblique", names=TALL_NAMES)
    result = name_levels(labels, network(TALL, TALL_NAMES))  # the network sees one body
    assert result.naming["status"] == "uncertain"


def test_a_stack_of_cervical_sized_bodies_is_out_of_range():
    cervical = [(n, 12.0 if "/" not in n else 4.0) for n in FULL[2:]]  # bodies of 2 mL, as C3-C7 are
    labels = spine(cervical, "oblique", depth_mm=14.0, width_mm=14.0)
    result = name_levels(labels)
    assert result.naming["status"] == "out_of_range" and "cervical" in result.naming["reason"]
    lumbar = name_levels(spine(FULL[2:], "oblique"))  # the same stack at lumbar size is named
    assert lumbar.naming["status"] == "uncertain"


def test_a_lumbar_body_cut_by_the_lower_edge_and_called_s_is_no_anchor():
    anatomy = FULL[2:]  # L5 up, the network calls every level one too low
    names = ["S", "L5/S", "L5", "L4/L5", "L4", "L3/L4", "L3", "L2/L3", "L2", "L1/L2", "L1"]
    full = spine(anatomy, "axis_aligned", names=names)  # index k runs inferior -> superior
    k0 = int(np.ceil((12.0 - full.origin[2]) / full.spacing[2]))  # the view starts half way up L5
    origin = full.origin + np.array([0.0, 0.0, k0 * full.spacing[2]])
    cut = type(full)(np.ascontiguousarray(full.array[:, :, k0:]), full.spacing, origin, full.direction, True)
    result = name_levels(cut, network(anatomy, names))
    assert result.naming["anchor"] == "none" and result.naming["status"] == "uncertain"
    assert "not cut by the image's lower edge" in result.naming["reason"]
