import numpy as np
import pytest

from SAFNetSpineLib import labels


def test_ids_are_contiguous_and_match_mrspineseg():
    assert [s.label_id for s in labels.STRUCTURES] == list(range(20))
    assert labels.NUM_CLASSES == 20
    assert labels.structure(1).short_name == "S"
    assert labels.structure(2).short_name == "L5"
    assert labels.structure(10).short_name == "T9"
    assert labels.structure(11).short_name == "L5/S"
    assert labels.structure(19).short_name == "T9/T10"


def test_kinds_partition_foreground():
    assert set(labels.VERTEBRA_IDS) == set(range(1, 11))
    assert set(labels.DISC_IDS) == set(range(11, 20))
    assert set(labels.VERTEBRA_IDS) | set(labels.DISC_IDS) == set(labels.FOREGROUND_IDS)


def test_paper_subset_is_17_without_t9():
    assert len(labels.PAPER_17_IDS) == 17
    assert 10 not in labels.PAPER_17_IDS and 19 not in labels.PAPER_17_IDS


def test_names_colours_codes_unique():
    fg = labels.STRUCTURES[1:]
    assert len({s.short_name for s in fg}) == 19
    assert len({s.full_name for s in fg}) == 19
    assert len({s.color for s in fg}) == 19
    codes = [s.snomed_code for s in fg]
    assert all(codes) and len(set(codes)) == 19
    assert all(0.0 <= c <= 1.0 for s in fg for c in s.color_float)


def test_vertebra_and_disc_colour_families_differ():
    # Vertebrae are warm (red > blue), discs cool (blue > red).
    assert all(s.color[0] > s.color[2] for s in labels.STRUCTURES if s.kind == "vertebra")
    assert all(s.color[2] > s.color[0] for s in labels.STRUCTURES if s.kind == "disc")


def test_discs_sit_between_their_vertebrae_in_spine_order():
    order = labels.SUPERIOR_TO_INFERIOR_IDS
    assert sorted(order) == list(range(1, 20))
    for position, label_id in enumerate(order):
        s = labels.structure(label_id)
        if s.kind == "disc":
            above, below = s.short_name.split("/")
            assert labels.structure(order[position - 1]).short_name == above
            assert labels.structure(order[position + 1]).short_name == below


@pytest.mark.parametrize("name, expected", [
    ("L4/L5", 12), ("l4-l5", 12), ("L5/S1", 11), ("Lumbar vertebra 3", 4), ("L3 vertebra", 4),
    ("T12/L1 disc", 16), ("S", 1), ("sacrum", 1),
])
def test_structure_by_name(name, expected):
    assert labels.structure_by_name(name).label_id == expected


def test_unknown_name_and_id():
    assert labels.structure_by_name("Spinal cord") is None
    with pytest.raises(KeyError):
        labels.structure(20)
    assert np.array(labels.table_fingerprint()).shape == (20, 2)


def test_named_ids_and_positions_follow_the_spine_order():
    name = {s.label_id: s.short_name for s in labels.STRUCTURES}
    assert [name[i] for i in (labels.SACRUM_ID, labels.L5_ID, labels.L1_ID, labels.T9_ID)] == ["S", "L5", "L1", "T9"]
    assert [name[i] for i in (labels.L5_S_ID, labels.T9_T10_ID)] == ["L5/S", "T9/T10"]
    bottom_up = [name[labels.id_at_position(p)] for p in range(19)]
    assert bottom_up[:5] == ["S", "L5/S", "L5", "L4/L5", "L4"] and bottom_up[-1] == "T9"
    assert all(labels.spine_position(labels.id_at_position(p)) == p for p in range(19))
    assert labels.id_at_position(-1) == 0 and labels.id_at_position(19) == 0
    assert name[labels.neighbour(labels.L5_ID, 2)] == "L4" and name[labels.neighbour(labels.L5_ID, -1)] == "L5/S"
    assert labels.neighbour(labels.T9_ID, 1) == 0
    for disc in labels.DISC_IDS:
        upper, lower = labels.disc_vertebrae(disc)
        assert name[disc] == f"{name[upper]}/{name[lower]}"
    with pytest.raises(KeyError):
        labels.disc_vertebrae(labels.L5_ID)
