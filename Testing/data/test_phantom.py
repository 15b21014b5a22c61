import numpy as np
import pytest

from SAFNetSpineLib.data.phantom import PhantomOptions, make_phantom, write_phantom_dataset
from SAFNetSpineLib.labels import FOREGROUND_IDS, SUPERIOR_TO_INFERIOR_IDS


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_phantom_has_all_19_structures_on_one_grid(seed):
    image, labels = make_phantom(seed)
    assert image.same_grid(labels)
    assert set(np.unique(labels.array)) == {0, *FOREGROUND_IDS}
    assert image.array.dtype == np.float32 and np.isfinite(image.array).all()
    assert labels.is_label and not image.is_label


def test_same_seed_same_phantom_other_seed_differs():
    a, la = make_phantom(7)
    b, lb = make_phantom(7)
    c, _ = make_phantom(8)
    np.testing.assert_array_equal(a.array, b.array)
    np.testing.assert_array_equal(la.array, lb.array)
    assert a.shape != c.shape or not np.allclose(a.direction, c.direction)


def test_levels_are_stacked_superior_to_inferior():
    _, labels = make_phantom(11)
    superior = []
    for label_id in SUPERIOR_TO_INFERIOR_IDS:
        ijk = np.argwhere(labels.array == label_id).mean(axis=0)
        superior.append((labels.affine_lps @ np.r_[ijk, 1.0])[2])  # LPS z = superior
    assert np.all(np.diff(superior) < 0), "levels must run from superior to inferior"


def test_orientations_vary_and_discs_are_brighter_than_vertebrae():
    directions = {tuple(np.round(make_phantom(s)[0].direction, 0).reshape(-1)) for s in range(8)}
    assert len(directions) >= 4
    image, labels = make_phantom(5, PhantomOptions(random_orientation=False))
    disc = image.array[np.isin(labels.array, [12, 13, 14])].mean()
    bone = image.array[np.isin(labels.array, [3, 4, 5])].mean()
    assert disc > 1.2 * bone  # T2: hydrated discs are brighter than marrow


def test_write_dataset_layout(tmp_path):
    import json

    from SAFNetSpineLib.io import read_volume

    out = write_phantom_dataset(tmp_path / "ds", n=2, seed=3)
    data = json.loads((out / "dataset.json").read_text())
    assert [c["case"] for c in data["cases"]] == ["phantom_0003", "phantom_0004"]
    case = data["cases"][0]
    assert case["annotated_labels"] == list(FOREGROUND_IDS)
    image = read_volume(out / case["image"])
    labels = read_volume(out / case["label"], is_label=True)
    expected_image, expected_labels = make_phantom(3)
    assert image.same_grid(expected_image)
    np.testing.assert_array_equal(labels.array, expected_labels.array)


def test_bodies_only_option_unlabels_posterior_elements_but_keeps_the_image():
    image, labels = make_phantom(4)
    image_b, labels_b = make_phantom(4, PhantomOptions(label_posterior_elements=False))
    np.testing.assert_array_equal(image.array, image_b.array)
    removed = (labels.array > 0) & (labels_b.array == 0)
    assert removed.sum() > 0
    assert np.all(labels_b.array[~removed] == labels.array[~removed])
    # Only vertebrae lose voxels (posterior elements), never discs.
    assert set(np.unique(labels.array[removed])) <= set(range(2, 11))
