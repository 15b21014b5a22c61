import numpy as np
import pytest
import torch

from SAFNetSpineLib.data.phantom import PhantomOptions, make_phantom
from SAFNetSpineLib.errors import SpineInputError
from SAFNetSpineLib.inference import Segmenter
from SAFNetSpineLib.preprocessing import preprocess_image
from SAFNetSpineLib.runtime import resolve_device

SMALL_PHANTOM = PhantomOptions(slices=(6, 8), inplane_spacing_mm=(3.0, 3.5))


def test_label_map_has_the_input_geometry_exactly(tiny_weights, oblique_volume):
    result = Segmenter([tiny_weights], device="cpu", precision="fp32").segment(oblique_volume)
    assert result.labels.shape == oblique_volume.shape
    assert np.array_equal(result.labels.spacing, oblique_volume.spacing)
    assert np.array_equal(result.labels.origin, oblique_volume.origin)
    assert np.array_equal(result.labels.direction, oblique_volume.direction)
    assert result.labels.is_label and result.labels.array.dtype == np.uint8
    assert set(result.timings_s) == {"preprocess", "network", "restore", "postprocess"}


def test_tta_averages_the_mirrored_prediction(tiny_weights):
    image, _ = make_phantom(1, SMALL_PHANTOM)
    plain = Segmenter([tiny_weights], device="cpu", precision="fp32", turns=False)
    tta = Segmenter([tiny_weights], device="cpu", precision="fp32", tta=True, turns=False)
    x, _ = preprocess_image(image, plain.preprocess_config)
    p = plain.predict_probabilities(x)
    p_mirror = torch.flip(plain.predict_probabilities(np.flip(x, axis=0).copy()), dims=[1])
    torch.testing.assert_close(tta.predict_probabilities(x), (p + p_mirror) / 2, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(p.sum(dim=0), torch.ones_like(p[0]), atol=1e-4, rtol=0)


def test_ensemble_is_the_mean_of_its_members(tmp_path, make_tiny_weights):
    a = make_tiny_weights(tmp_path / "a", seed=1, version="a")
    b = make_tiny_weights(tmp_path / "b", seed=2, version="b")
    image, _ = make_phantom(2, SMALL_PHANTOM)
    seg_a = Segmenter([a], device="cpu", precision="fp32", turns=False)
    seg_b = Segmenter([b], device="cpu", precision="fp32", turns=False)
    both = Segmenter([a, b], device="cpu", precision="fp32", turns=False)
    assert both.version == "a+b"
    x, _ = preprocess_image(image, both.preprocess_config)
    expected = (seg_a.predict_probabilities(x) + seg_b.predict_probabilities(x)) / 2
    torch.testing.assert_close(both.predict_probabilities(x), expected, atol=1e-5, rtol=1e-4)


def test_ensemble_with_other_preprocessing_is_rejected(tmp_path, tiny_weights, make_tiny_weights):
    import json

    other = make_tiny_weights(tmp_path / "other")
    manifest = json.loads((other / "model.json").read_text())
    manifest["preprocess"]["ap_crop_fraction"] = 0.8
    (other / "model.json").write_text(json.dumps(manifest))
    with pytest.raises(SpineInputError, match="different preprocessing"):
        Segmenter([tiny_weights, other], device="cpu")


def test_device_and_precision_errors(tiny_weights):
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")
    if not torch.cuda.is_available():
        with pytest.raises(SpineInputError, match="no CUDA GPU"):
            resolve_device("cuda")
    with pytest.raises(SpineInputError, match="fp16"):
        Segmenter([tiny_weights], device="cpu", precision="fp16")
    with pytest.raises(SpineInputError, match="no weights"):
        Segmenter([], device="cpu")
