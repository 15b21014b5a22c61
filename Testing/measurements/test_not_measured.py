"""What cannot be measured is absent, with a reason: cut bodies, missing neighbours, fragments."""

import numpy as np
import pytest
from spine_model import SAGITTAL, lumbar_spine, rasterise

from SAFNetSpineLib.measurements import measure_spine
from SAFNetSpineLib.volume import Volume

TILTS = {"L5": 20.0, "L4": 12.0, "L3": 5.0, "L2": 0.0, "L1": -4.0}
GRID = (SAGITTAL, (3.0, 1.0, 1.0))


@pytest.fixture(scope="module")
def spine():
    return lumbar_spine(TILTS)


@pytest.mark.parametrize("gap_voxels", [0, 1])
def test_body_cut_by_the_field_of_view_keeps_the_endplate_in_view(spine, gap_voxels):
    """L1 cut 8 mm under its top: no heights, no superior endplate; its inferior endplate gives L1/L2.

    With ``gap_voxels=1`` the label stops one voxel short of the edge, as a network's
    prediction fading at the border does: it is cut all the same.
    """
    top = max(c[1] for c in spine.bodies["L1"].corners.values())
    labels = rasterise(spine, *GRID, crop_superior=top - 8.0)
    array = labels.array.copy()
    array[:, :gap_voxels, :] = 0  # index axis 1 runs inferior: its first rows are the superior edge
    result = measure_spine(labels.with_array(array))
    nm = result["not_measured"]
    l1 = result["vertebrae"]["L1"]
    assert "anterior_height_mm" not in l1 and "genant_grade" not in l1 and "superior_endplate_tilt_deg" not in l1
    assert set(l1["landmarks_lps_mm"]) == {"inferior_endplate"}
    assert nm["vertebrae.L1.heights"] == "cut by the field of view (touches its superior edge)"
    assert nm["vertebrae.L1.superior_endplate"] == "cut by the field of view (touches its superior edge)"
    assert "vertebrae.L1" not in nm and "vertebrae.L1.inferior_endplate" not in nm
    assert result["angles_deg"]["segmental"]["L1/L2"] == pytest.approx(spine.tilt("L2", "sup") - spine.tilt("L1", "inf"),
                                                                       abs=2.0)
    assert result["listhesis"]["L1/L2"]["slip_mm"] == pytest.approx(abs(spine.slip("L1", "L2")), abs=1.5)
    assert "lumbar_lordosis_L1_S1" not in result["angles_deg"] and "lumbar_lordosis_L1_L5" not in result["angles_deg"]
    assert nm["angles_deg.lumbar_lordosis_L1_S1"] == (
        "L1's superior endplate not measured: cut by the field of view (touches its superior edge)")
    assert "anterior_height_mm" in result["vertebrae"]["L2"]  # the rest is measured
    assert not [k for k in nm if "L2" in k or "L3" in k]


def test_body_cut_near_its_inferior_endplate_gives_nothing(spine):
    """L1 cut 3 mm above its inferior endplate's anterior corner: too little wall for its corners, L1 gives nothing."""
    corners = spine.bodies["L1"].corners
    labels = rasterise(spine, *GRID, crop_superior=max(corners["post_inf"][1], corners["ant_inf"][1]) + 3.0)
    result = measure_spine(labels)
    nm = result["not_measured"]
    assert nm["vertebrae.L1"].startswith("cut by the field of view (touches its superior edge)")
    assert nm["vertebrae.L1"].count("field of view") == 1  # said once, whichever endplates it cost
    assert set(result["vertebrae"]["L1"]) == {"volume_ml"}
    assert nm["listhesis.L1/L2"] == "L1 not measured"
    assert "L1/L2" not in result["listhesis"]


def test_bodies_touching_the_lateral_edges_are_still_measured(spine):
    labels = rasterise(spine, *GRID, lateral_cover=6.0)  # bodies 40 mm wide, field of view 12 mm
    result = measure_spine(labels)
    assert not any(k.startswith("vertebrae.L") for k in result["not_measured"])
    assert result["vertebrae"]["L3"]["middle_height_mm"] == pytest.approx(25.0, abs=1.0)


def test_missing_neighbour_and_missing_sacrum():
    spine = lumbar_spine(TILTS, sacrum_tilt=None)
    labels = rasterise(spine, *GRID)
    array = labels.array.copy()
    array[array == 4] = 0  # L3 removed
    result = measure_spine(labels.with_array(array))
    nm = result["not_measured"]
    for disc in ("L3/L4", "L2/L3"):
        assert disc not in result["listhesis"] and disc not in result["angles_deg"]["segmental"]
        assert nm[f"listhesis.{disc}"] == "L3 not in the label map"
        assert nm[f"angles_deg.segmental.{disc}"] == "L3 not in the label map"
    assert nm["angles_deg.lumbar_lordosis_L1_S1"] == "S not in the label map"
    assert "lumbar_lordosis_L1_L5" in result["angles_deg"]
    assert "L5/S" not in result["listhesis"] and nm["listhesis.L5/S"] == "S not in the label map"
    # No measurement is ever a placeholder number.
    for entry in (*result["vertebrae"].values(), *result["discs"].values(), *result["listhesis"].values()):
        for value in entry.values():
            if isinstance(value, float):
                assert np.isfinite(value)


def test_fragment_is_too_small_and_empty_map_measures_nothing():
    array = np.zeros((20, 60, 60), np.uint8)
    array[10, 30:33, 30:33] = 3  # a 3-voxel L4 "fragment"
    volume = Volume(array, (1.0, 1.0, 1.0), (0, 0, 0), SAGITTAL, is_label=True)
    result = measure_spine(volume)
    assert result["not_measured"]["vertebrae.L4"] == "too small in its mid-sagittal plane"
    assert result["vertebrae"]["L4"] == {"volume_ml": pytest.approx(0.009, abs=1e-6)}
    empty = measure_spine(volume.with_array(np.zeros_like(array)))
    assert empty["vertebrae"] == {} and empty["discs"] == {} and empty["listhesis"] == {}
    assert empty["angles_deg"]["segmental"] == {}


def test_posterior_elements_do_not_change_body_heights(spine):
    with_elements = lumbar_spine(TILTS, posterior_elements=True)
    plain = measure_spine(rasterise(spine, *GRID))["vertebrae"]
    full = measure_spine(rasterise(with_elements, *GRID))["vertebrae"]
    for name in TILTS:
        for field in ("anterior_height_mm", "middle_height_mm", "posterior_height_mm", "ap_depth_mm"):
            assert full[name][field] == pytest.approx(plain[name][field], abs=0.3), (name, field)
        assert full[name]["volume_ml"] > plain[name]["volume_ml"]  # the whole label's volume


def test_bodies_too_far_apart_are_not_neighbours():
    """L4 removed and L3 labelled L4 (a misnamed level): L4 sits 45 mm above L5, no L4/L5 slip or angle."""
    spine = lumbar_spine({"L5": 10.0, "L4": 10.0, "L3": 10.0}, sacrum_tilt=10.0)
    labels = rasterise(spine, *GRID)
    array = labels.array.copy()
    array[array == 3] = 0
    array[array == 4] = 3
    result = measure_spine(labels.with_array(array))
    assert "L4/L5" not in result["listhesis"] and "L4/L5" not in result["angles_deg"]["segmental"]
    assert "not neighbouring levels" in result["not_measured"]["listhesis.L4/L5"]
    assert "L5/S" in result["listhesis"] and "anterior_height_mm" in result["vertebrae"]["L4"]
