"""Expert masks of the real development set give plausible measurements (skipped without the data)."""

import pytest

from SAFNetSpineLib.io import read_volume
from SAFNetSpineLib.measurements import measure_spine

pytestmark = pytest.mark.realdata


@pytest.mark.parametrize("case", ["chu_09", "myo_05"])
def test_expert_mask_bodies_are_plausible(real_data_dir, case):
    labels = read_volume(real_data_dir / "labelsTr" / f"{case}.nii.gz", is_label=True)
    result = measure_spine(labels)
    bodies = {k: v for k, v in result["vertebrae"].items() if "middle_height_mm" in v}
    assert len(bodies) >= 4, result["not_measured"]
    for name, body in bodies.items():
        for field in ("anterior_height_mm", "middle_height_mm", "posterior_height_mm"):
            assert 18.0 <= body[field] <= 36.0, (name, field, body[field])
        assert 22.0 <= body["ap_depth_mm"] <= 50.0, (name, body["ap_depth_mm"])
        assert body["genant_grade"] == 0, name  # no fracture in these volunteers' L1-L5 / T11-L5
    for name, slip in result["listhesis"].items():
        assert slip["slip_mm"] < 5.0, name
    assert 10.0 <= result["angles_deg"]["lumbar_lordosis_L1_L5"] <= 70.0
    assert result["not_measured"]["angles_deg.lumbar_lordosis_L1_S1"] == "S not in the label map"
