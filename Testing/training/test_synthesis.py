"""Synthesis from generation label maps: maps, alignment, seeding, independent label intensities, mixing."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from block_maps import blocks

from SAFNetSpineLib.cli import build_parser
from SAFNetSpineLib.cli.train import config_from_args
from SAFNetSpineLib.errors import SpineInputError
from SAFNetSpineLib.labels import NUM_CLASSES
from SAFNetSpineLib.training import TrainConfig, train
from SAFNetSpineLib.training.augment_config import AugmentConfig
from SAFNetSpineLib.training.augmentation import build_augmentation
from SAFNetSpineLib.training.cache import PreprocessedCase
from SAFNetSpineLib.training.dataset import TrainingCases
from SAFNetSpineLib.training.synth_config import SynthConfig
from SAFNetSpineLib.training.synth_image import Synthesizer, label_texture, smooth_field
from SAFNetSpineLib.training.synth_maps import (
    CLUSTER_BASE,
    GENERATION_LABELS,
    generation_map,
    generation_maps,
    kmeans_1d,
)

ALL_SPATIAL = AugmentConfig.off().replace(rotate_prob=1.0, scale_prob=1.0, fov_prob=1.0, elastic_prob=1.0,
                                          elastic_magnitude=(2.0, 4.0), bend_prob=1.0, slip_prob=1.0,
                                          collapse_prob=1.0)
#: No within-label spread, no blur, no resolution change, no scanner chain: a piecewise-constant image.
FLAT = SynthConfig(std_range=(0.0, 0.0), partial_volume_sigma=(0.0, 0.0), slice_mm=(1.0, 1.0),
                   inplane_mm=(0.5, 0.5), gamma_prob=0.0, bias_prob=0.0, ringing_prob=0.0, noise_prob=0.0,
                   tissue_share_prob=0.0)


def _block_case():
    """A generation map (expert blocks + 3 clusters of a 3-plateau background) and its expert labels."""
    image, label = blocks(depth=6)
    background = np.zeros_like(image)
    background[:, :, 12:] = 5.0
    background[:, :5] = 9.0
    image = np.where(label == 0, background, image)
    annotated = np.zeros(NUM_CLASSES, bool)
    annotated[[0, 2, 3, 12]] = True
    return generation_map(image, label, annotated, None, 3), label


def test_generation_map_keeps_experts_adds_unannotated_predictions_and_clusters_the_rest():
    image, label = blocks(depth=4)
    annotated = np.zeros(NUM_CLASSES, bool)
    annotated[[0, 3, 2]] = True  # the disc (12) is not annotated in this case
    prediction = np.zeros_like(label)
    prediction[:, 10:22, 8:24] = 4  # a wrong name over an annotated body: must not win
    prediction[:, 26:34, 8:24] = 12  # the unannotated disc
    prediction[:, 55:60, 8:24] = 1  # a sacrum on background
    result = generation_map(image, label, annotated, prediction, 4)
    assert result.dtype == np.uint8 and result.shape == label.shape
    assert (result[label == 3] == 3).all() and (result[label == 2] == 2).all()
    assert (result[:, 26:34, 8:24] == 12).all() and (result[:, 55:60, 8:24] == 1).all()
    rest = (label == 0) & (prediction == 0)
    assert (result[rest] >= CLUSTER_BASE).all() and (result[rest] < CLUSTER_BASE + 4).all()
    without = generation_map(image, label, annotated, None, 4)
    assert (without[:, 26:34, 8:24] >= CLUSTER_BASE).all()  # no prediction: the disc is just a cluster
    with pytest.raises(ValueError):
        generation_map(image, label, annotated, None, 13)


def test_kmeans_separates_plateaus():
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.normal(m, 0.05, 500) for m in (0.0, 1.0, 3.0)])
    centres = kmeans_1d(values, 3)
    assert np.allclose(centres, [0.0, 1.0, 3.0], atol=0.05)
    _, label = _block_case()
    generation, _ = _block_case()
    background = generation[label == 0]
    assert len(np.unique(background)) == 3  # the three plateaus, one cluster each


def test_label_map_and_image_stay_aligned():
    generation, label = _block_case()
    synth = Synthesizer(ALL_SPATIAL, FLAT)
    moved_any = False
    for seed in range(6):
        image, moved = synth(torch.from_numpy(generation.astype(np.int64)), torch.from_numpy(label.astype(np.int64)),
                             seed)
        assert image.shape == label.shape and moved.dtype == torch.int64
        assert set(torch.unique(moved).tolist()) <= {0, 2, 3, 12}
        moved_any |= not torch.equal(moved, torch.from_numpy(label.astype(np.int64)))
        values = {}
        for structure in (2, 3, 12):
            inside = image[moved == structure]
            if inside.numel() > 20:
                # every voxel the moved label calls this structure has this structure's intensity
                assert float(inside.max() - inside.min()) < 1e-4
                values[structure] = float(inside.mean())
        assert len(values) >= 2 and len({round(v, 3) for v in values.values()}) == len(values)
    assert moved_any


def test_a_synthetic_sample_can_show_a_collapsed_body_with_its_target():
    generation, label = _block_case()
    synth = Synthesizer(AugmentConfig.off().replace(collapse_prob=1.0, collapse_keep=(0.5, 0.5)), FLAT)
    image, moved = synth(torch.from_numpy(generation.astype(np.int64)), torch.from_numpy(label.astype(np.int64)), 0)
    heights = {i: len(np.flatnonzero((moved[0, :, 9] == i).numpy())) for i in (2, 3)}
    assert sorted(heights.values()) in ([6, 12], [5, 12], [7, 12]), heights  # one body kept to half in front
    short = min(heights, key=heights.get)
    inside = image[moved == short]
    assert float(inside.max() - inside.min()) < 1e-4  # the image shows that body where the target has it


def test_same_seed_same_sample_other_seed_other_sample():
    generation, label = _block_case()
    synth = Synthesizer(AugmentConfig(), SynthConfig())
    g, lab = torch.from_numpy(generation.astype(np.int64)), torch.from_numpy(label.astype(np.int64))
    a, b, c = synth(g, lab, 11), synth(g, lab, 11), synth(g, lab, 12)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])
    assert torch.isfinite(a[0]).all() and abs(float(a[0].mean())) < 1e-3


def test_intensities_are_drawn_independently_per_label():
    generation, label = _block_case()
    synth = Synthesizer(AugmentConfig.off(), FLAT)
    g, lab = torch.from_numpy(generation.astype(np.int64)), torch.from_numpy(label.astype(np.int64))
    means = []
    for seed in range(200):
        image, moved = synth(g, lab, seed)
        means.append([float(image[moved == s].mean()) for s in (2, 3, 12)])
    means = np.array(means)
    for i, j in ((0, 1), (0, 2), (1, 2)):
        brighter = float(np.mean(means[:, i] > means[:, j]))
        assert 0.3 < brighter < 0.7  # either tissue is brighter about half the time
        assert abs(np.corrcoef(means[:, i], means[:, j])[0, 1]) < 0.35


def _neighbour_correlation(values: torch.Tensor) -> float:
    """Correlation of each voxel with its next along W, within a (D, H, W) block."""
    a, b = values[..., :-1].reshape(-1), values[..., 1:].reshape(-1)
    return float(np.corrcoef(a.numpy(), b.numpy())[0, 1])


def test_texture_makes_a_tissue_patchy_scaled_per_label_and_off_draws_nothing():
    generation, label = _block_case()
    g, lab = torch.from_numpy(generation.astype(np.int64)), torch.from_numpy(label.astype(np.int64))
    textured = dataclasses.replace(FLAT, texture_range=(0.2, 0.4), texture_mm=(4.0, 4.0))
    flat_image, _ = Synthesizer(AugmentConfig.off(), FLAT)(g, lab, 5)
    image, moved = Synthesizer(AugmentConfig.off(), textured)(g, lab, 5)
    assert torch.equal(moved, lab)  # the texture moves no label
    for structure in (2, 3, 12):
        flat_inside = flat_image[lab == structure]
        assert float(flat_inside.max() - flat_inside.min()) < 1e-4  # without texture a tissue is flat
        block = torch.where(lab == structure, image, torch.nan)
        rows = block[:, ~torch.isnan(block).all(dim=(0, 2))][:, :, ~torch.isnan(block).all(dim=(0, 1))]
        assert not torch.isnan(rows).any()  # the blocks are boxes
        assert float(rows.std()) > 0.05
        assert _neighbour_correlation(rows) > 0.8  # smooth patches, not voxel noise
    # one field, scaled by an amplitude of each label's own: texture / field is constant within a label
    amplitude_draw = torch.Generator().manual_seed(3)
    texture = label_texture(g, textured, torch.Generator().manual_seed(3))
    torch.rand(GENERATION_LABELS, generator=amplitude_draw)  # the amplitudes come first
    field = smooth_field(tuple(g.shape), textured, amplitude_draw)
    scale = {s: (texture[lab == s] / field[lab == s]) for s in (2, 3, 12)}
    for ratio in scale.values():
        assert 0.2 - 1e-4 <= float(ratio.min()) and float(ratio.max()) <= 0.4 + 1e-4
        assert float(ratio.max() - ratio.min()) < 1e-3
    assert len({round(float(r.mean()), 3) for r in scale.values()}) == 3
    # Off (the default): the sample is the same draw for draw as a config that never heard of texture
    plain = SynthConfig()
    assert plain.texture_range == (0.0, 0.0)
    a, _ = Synthesizer(AugmentConfig(), plain)(g, lab, 9)
    b, _ = Synthesizer(AugmentConfig(), SynthConfig(texture_mm=(9.0, 9.0)))(g, lab, 9)
    assert torch.equal(a, b)
    with pytest.raises(SpineInputError):
        SynthConfig(texture_mm=(0.0, 4.0))


def test_synthetic_samples_keep_the_expert_labels_as_target_and_mix_at_the_share(tmp_path):
    generation, label = _block_case()
    image, _ = blocks(depth=6)
    annotated = np.zeros(NUM_CLASSES, bool)
    annotated[[0, 2, 3, 12]] = True
    cases = [PreprocessedCase(f"c{i}", image, label, annotated) for i in range(40)]
    dataset = TrainingCases(cases, build_augmentation(AugmentConfig()), seed=3,
                            synthesizer=Synthesizer(AugmentConfig(), SynthConfig()),
                            generation_maps=[generation] * 40, synth_fraction=0.5)
    dataset.set_epoch(1)
    flags = [dataset.is_synthetic(i) for i in range(40)]
    assert 8 <= sum(flags) <= 32
    sample = dataset[flags.index(True)]
    assert set(torch.unique(sample["label"]).tolist()) <= {0, 2, 3, 12}  # never a generation label
    assert torch.equal(sample["annotated"], torch.from_numpy(annotated))
    off = TrainingCases(cases, build_augmentation(AugmentConfig()), seed=3)
    off.set_epoch(1)
    real = flags.index(False)
    assert torch.equal(off[real]["image"], dataset[real]["image"])  # real samples draw as without synthesis
    with pytest.raises(ValueError):
        TrainingCases(cases, None, synthesizer=Synthesizer(AugmentConfig(), SynthConfig()), generation_maps=[],
                      synth_fraction=0.5)


def test_generation_maps_are_cached(small_phantoms, tmp_path):
    from SAFNetSpineLib.data.cases import load_case_folder
    from SAFNetSpineLib.training.cache import preprocess_cases

    cases = load_case_folder(small_phantoms)[:2]
    preprocess = {"target_shape": [8, 64, 32], "ap_crop_fraction": 0.5}
    data = preprocess_cases(cases, preprocess, tmp_path)
    first = generation_maps(cases, data, preprocess, 6, "bundled", tmp_path)  # other grid: predicted on its own
    files = sorted(tmp_path.glob("*.gen-k6-*-own-a*.npy"))
    assert len(files) == 2
    for path in files:  # changed entries are what the second call reads
        np.save(path, np.full_like(first[0], 7))
    second = generation_maps(cases, data, preprocess, 6, "bundled", tmp_path)
    assert all({int(v) for v in np.unique(m)} == {7} for m in second)
    assert not any({int(v) for v in np.unique(m)} == {7} for m in first)


def test_the_predictor_serves_a_run_on_another_grid_by_predicting_on_its_own(tmp_path):
    """A run on another grid (here half the rows, and a widened field of view) still gets the bundled
    network's discs and sacrum where they are: predicted on the network's own grid, restored onto the scan,
    resampled onto the run's grid. Run on the run's grid directly, the network finds them far worse."""
    from SAFNetSpineLib.data.cases import load_case_folder
    from SAFNetSpineLib.data.phantom import SAMPLE_OPTIONS, SAMPLE_SEED, make_phantom
    from SAFNetSpineLib.io import write_volume
    from SAFNetSpineLib.labels import SACRUM_ID, structure_by_name
    from SAFNetSpineLib.preprocessing.config import PreprocessConfig
    from SAFNetSpineLib.preprocessing.grid import NetworkGrid
    from SAFNetSpineLib.preprocessing.pipeline import preprocess_label
    from SAFNetSpineLib.training.cache import preprocess_cases
    from SAFNetSpineLib.training.synth_maps import _predictor, predicted_labels

    image, labels = make_phantom(SAMPLE_SEED, SAMPLE_OPTIONS)
    bodies = [2, 3, 4, 5, 6]  # the case annotates L1-L5 only, as the myo_ scans do
    (tmp_path / "imagesTr").mkdir()
    (tmp_path / "labelsTr").mkdir()
    write_volume(image, tmp_path / "imagesTr" / "sample.nii.gz")
    write_volume(labels.with_array(np.where(np.isin(labels.array, bodies), labels.array, 0), is_label=True),
                 tmp_path / "labelsTr" / "sample.nii.gz")
    (tmp_path / "dataset.json").write_text(json.dumps({"cases": [{
        "case": "sample", "image": "imagesTr/sample.nii.gz", "label": "labelsTr/sample.nii.gz",
        "annotated_labels": bodies}]}))
    cases = load_case_folder(tmp_path)
    run = {"target_shape": [18, 128, 64], "ap_crop_fraction": 0.625, "min_fov_mm": 300.0}
    data = preprocess_cases(cases, run, None)
    (generation,) = generation_maps(cases, data, run, 6, "bundled", None)
    truth = preprocess_label(labels, NetworkGrid.covering(image, PreprocessConfig.from_dict(run)))
    model, _, _ = _predictor("bundled")
    direct = predicted_labels(model, data[0].image)
    unannotated = (SACRUM_ID, structure_by_name("L5/S").label_id, structure_by_name("L3/L4").label_id)
    found = np.array([[2 * ((m == i) & (truth == i)).sum() / ((m == i).sum() + (truth == i).sum()) for i in unannotated]
                      for m in (generation, direct)])  # (route, structure) Dice on the run's grid
    assert (found[0] >= 0.75).all(), found  # 0.88-0.94 when written
    assert found[1].mean() < found[0].mean() - 0.2, found  # run on this grid directly: 0.58, 0.05, 0.0
    assert set(np.unique(generation[np.isin(truth, bodies)])) <= set(bodies)  # the expert bodies stay


def test_flags_reach_the_config_and_bad_values_are_refused():
    args = build_parser().parse_args(["train", "--data", "d", "--out", "o", "--synth-fraction", "0.4",
                                      "--synth-clusters", "10", "--synth-prediction", "", "--synth-option",
                                      "slice_mm=[2, 6]", "--sacrum-review", "review.json"])
    config = config_from_args(args)
    assert (config.synth_fraction, config.synth_clusters, config.synth_prediction) == (0.4, 10, "")
    assert config.sacrum_review == "review.json"
    assert config.synth_config().slice_mm == (2.0, 6.0)
    for bad in ({"synth_fraction": 1.5}, {"synth_clusters": 0}, {"synthesis": {"slice_mm": [8, 1]}},
                {"synthesis": {"colour": 1}}):
        with pytest.raises(SpineInputError):
            TrainConfig(**bad)


def test_training_with_synthesis_runs_and_resumes(small_phantoms, tmp_path):
    from SAFNetSpineLib.data.cases import load_case_folder

    cases = load_case_folder(small_phantoms)
    config = TrainConfig(width=8, epochs=1, batch_size=2, device="cpu", precision="fp32", synth_fraction=0.5,
                         preprocess={"target_shape": [8, 64, 32], "ap_crop_fraction": 0.5})
    result = train(config, cases[:4], cases[4:], tmp_path / "run")
    assert result.epochs_run == 1 and result.weights_dir is not None
    assert sorted((tmp_path / "run" / "cache").glob("*.gen-k8-*-own-a*.npy"))  # bundled, on its own grid
    resumed = train(config.replace(epochs=2), cases[:4], cases[4:], tmp_path / "run", resume=True)
    assert resumed.epochs_run == 2
    with pytest.raises(SpineInputError, match="synth_fraction"):
        train(config.replace(epochs=3, synth_fraction=0.2), cases[:4], cases[4:], tmp_path / "run", resume=True)
