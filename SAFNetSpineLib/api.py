"""Segment and measure one volume in a few lines (a notebook, a script)::

    import SAFNetSpineLib as sp
    result = sp.segment("case.nii.gz")          # active or bundled weights, CPU or GPU
    print(result.naming, result.volumes_ml)
    m = sp.measure(result.labels)

The command line (``python -m SAFNetSpineLib segment``) resolves its weights with the same
:func:`resolve_weights`. Loaded networks are kept per settings, so calling :func:`segment`
in a loop loads the weights once.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from SAFNetSpineLib.errors import SpineInputError

if TYPE_CHECKING:  # torch is imported on the first segment(), not with the package
    from SAFNetSpineLib.inference.naming import LevelHint
    from SAFNetSpineLib.inference.segmenter import SegmentationResult, Segmenter
    from SAFNetSpineLib.volume import Volume


def resolve_weights(weights: str | Path | list[str | Path] | None = None,
                    models: str | Path | None = None) -> list[Path]:
    """The weights folder(s) to run: ``weights`` if given, else the active version of ``models``, else the bundled.

    Args:
        weights: A weights folder, or several (an ensemble), or None.
        models: A models folder of fine-tuned versions (``models list``), or None.

    Returns:
        One or more weights folders.

    Raises:
        SpineInputError: ``models`` is not a folder (a typo must not fall back to the bundled weights).
    """
    if isinstance(weights, (str, Path)):  # one folder, not its characters
        weights = [weights]
    if weights:
        return [Path(w) for w in weights]
    if models is not None:
        from SAFNetSpineLib.stores import ModelStore

        if not Path(models).is_dir():
            raise SpineInputError(models, "models folder not found (see `models list --models DIR`)")
        return [ModelStore(models).active()]
    from SAFNetSpineLib.weights import default_weights_dir

    return [default_weights_dir()]


@lru_cache(maxsize=4)
def _segmenter(weights: tuple[Path, ...], device: str, precision: str, tta: bool, cleanup: str,
               turns: bool, fit_fov: bool) -> Segmenter:
    """A loaded :class:`Segmenter`, kept for the next call with the same settings."""
    from SAFNetSpineLib.inference.segmenter import Segmenter

    return Segmenter(list(weights), device=device, precision=precision, tta=tta, cleanup=cleanup, turns=turns,
                     fit_fov=fit_fov)


def segment(image: str | Path | Volume, weights: str | Path | list[str | Path] | None = None, models: str | Path | None = None,
            device: str = "auto", precision: str = "auto", tta: bool = False, cleanup: str | None = None,
            level_hint: LevelHint | None = None, turns: bool | None = None,
            fit_fov: bool | None = None) -> SegmentationResult:
    """Segment one volume level by level.

    Args:
        image: An image file (NIfTI, NRRD, MHA, a DICOM folder) or a :class:`~SAFNetSpineLib.volume.Volume`.
        weights: A weights folder, or a list of them (an ensemble); default: see :func:`resolve_weights`.
        models: Models folder whose active version to use when ``weights`` is not given.
        device: "auto" (CUDA, then MPS, then CPU), "cpu", "cuda", "cuda:N" or "mps".
        precision: "auto", "fp32", "bf16" or "fp16".
        tta: Also segment the left-right mirror and average.
        cleanup: Post-processing (``segment --cleanup``); None: the default.
        level_hint: One structure's name at a point, to count the others from.
        turns: Also read the image turned in its sagittal plane (``segment --turns``,
            :mod:`SAFNetSpineLib.inference.turns`); None: the default (off).
        fit_fov: Widen a field of view far smaller than the training scans' and segment one far
            larger in a window (``segment --fit-fov``); None: the default (on); False: the grid fits the whole scan.

    Returns:
        The :class:`~SAFNetSpineLib.inference.segmenter.SegmentationResult`: ``labels`` (a label
        Volume on the input's exact grid), ``volumes_ml`` (mL by short name), ``naming`` (how
        far the level names can be trusted), ``timings_s``.

    Raises:
        SpineInputError: an unreadable or untrustworthy input, or unusable weights (one sentence).
    """
    from SAFNetSpineLib.inference.field_of_view import DEFAULT_FIT_FOV
    from SAFNetSpineLib.inference.postprocess import DEFAULT_CLEANUP
    from SAFNetSpineLib.inference.turns import DEFAULT_TURNS
    from SAFNetSpineLib.volume import Volume

    if not isinstance(image, Volume):
        from SAFNetSpineLib.io.volume_io import read_volume

        image = read_volume(Path(image))
    folders = tuple(p.resolve() for p in resolve_weights(weights, models))
    segmenter = _segmenter(folders, device, precision, tta, cleanup or DEFAULT_CLEANUP,
                           DEFAULT_TURNS if turns is None else turns, DEFAULT_FIT_FOV if fit_fov is None else fit_fov)
    return segmenter.segment(image, level_hint=level_hint)


def measure(labels: str | Path | Volume) -> dict:
    """Spine measurements of a label map: body and disc heights, Genant grades, slips, lordosis.

    Args:
        labels: A label Volume (e.g. ``segment(...).labels``) or a label map file.

    Returns:
        The measurements document (docs/INTERFACES.md, "NAME_measurements.json"): mm, degrees, mL.
    """
    from SAFNetSpineLib.measurements import measure_spine
    from SAFNetSpineLib.volume import Volume

    if not isinstance(labels, Volume):
        from SAFNetSpineLib.io.volume_io import read_volume

        labels = read_volume(Path(labels), is_label=True)
    return measure_spine(labels)
