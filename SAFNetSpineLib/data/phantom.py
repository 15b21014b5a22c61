"""Synthetic T2-like sagittal lumbar-spine MR phantoms with all 19 structures labelled.

Each phantom is built in patient space (LPS, mm) and then sampled on a scanner grid of
random orientation (any of the 48 axis permutations/flips, optionally oblique), slice
count, spacing, intensity scale, noise and bias field. Because the anatomy is a
function of physical position, image and label agree exactly whatever the grid.

Two anatomies (:attr:`PhantomOptions.anatomy`), both T9, T9/T10, T10, ... L5, L5/S, S:

* ``"classic"`` (the default; the training phantoms ``phantom --n 20 --seed 1000`` are these):
  each vertebra is a body (elliptic cylinder along a warped spine axis) plus pedicles and a
  spinous process; discs sit between bodies; the sacrum is a tapered block. A canal, soft
  tissue, a fat ring and air surround it. A cartoon: bodies are staggered along the curve,
  so measurements of it find slips that were not meant.
* ``"lumbar"`` (the bundled sample): a plausible adult spine built as a chain of rigid
  bodies from the sacrum up (:mod:`.phantom_spine`), with concave endplates, disc and body
  wedges giving a 40-60 degree lordosis over a drawn sacral slope, posterior elements, a
  canal with cord and cauda equina, and textured T2-like soft tissue
  (:mod:`.phantom_render`). Its construction is known: :func:`phantom_truth`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from SAFNetSpineLib.atomic import write_json_atomic
from SAFNetSpineLib.data.phantom_render import render_spine
from SAFNetSpineLib.data.phantom_spine import SpineBuild, build_spine, place_spine
from SAFNetSpineLib.io import write_volume
from SAFNetSpineLib.labels import DISC_IDS, FOREGROUND_IDS, SUPERIOR_TO_INFERIOR_IDS
from SAFNetSpineLib.volume import Volume

_SPINE_ORDER = SUPERIOR_TO_INFERIOR_IDS
_DISC_IDS = set(DISC_IDS)


@dataclass(frozen=True)
class PhantomOptions:
    """Ranges the random phantom parameters are drawn from.

    Attributes:
        slices: (min, max) number of sagittal slices.
        slice_spacing_mm: (min, max) slice spacing along left-right.
        inplane_spacing_mm: (min, max) in-plane pixel size.
        fov_mm: In-plane field of view (superior-inferior, anterior-posterior).
        oblique_deg: Maximum in-plane rotation of the grid about the left-right axis.
        random_orientation: Draw one of the 48 axis permutations/flips for the array.
        label_posterior_elements: Label pedicles and spinous processes with their
            vertebra (MRSpineSeg style); False labels vertebral bodies only (as in the
            real development set), the posterior elements staying visible in the image.
        anatomy: "classic" (the cartoon the training phantoms use) or "lumbar" (a
            plausible spine whose measurements are known, see :func:`phantom_truth`).
        fov_centre_z_mm: Height (LPS z, mm) of the field of view's centre over the phantom's
            centre, for the "lumbar" anatomy (negative: towards the feet).
    """

    slices: tuple[int, int] = (12, 18)
    slice_spacing_mm: tuple[float, float] = (3.0, 4.5)
    inplane_spacing_mm: tuple[float, float] = (1.1, 1.5)
    fov_mm: tuple[float, float] = (390.0, 280.0)
    oblique_deg: float = 8.0
    random_orientation: bool = True
    label_posterior_elements: bool = True
    anatomy: str = "classic"
    fov_centre_z_mm: float = 0.0


#: The anatomies :class:`PhantomOptions` offers.
ANATOMIES = ("classic", "lumbar")
#: Where a "lumbar" spine is placed: top of T9 (LPS z, mm) and mean posterior wall of L1-L5 (LPS y, mm),
#: relative to the phantom's centre.
_LUMBAR_TOP_Z_MM = 165.0
_LUMBAR_WALL_Y_MM = 22.0
#: The bundled sample volume, ``Resources/SampleData/SAFNetSpinePhantom.nii.gz``: make_phantom(SAMPLE_SEED,
#: SAMPLE_OPTIONS), stored as int16 (:func:`write_sample`). A field of view like the real T2 development scans'
#: (381 mm): 370 mm from just under the top of T9 to below the tip of the sacrum (the whole sacrum in view),
#: 15 sagittal slices of 4 mm, 1 mm pixels.
SAMPLE_SEED = 2026
SAMPLE_OPTIONS = PhantomOptions(slices=(15, 15), slice_spacing_mm=(4.0, 4.0), inplane_spacing_mm=(1.0, 1.0),
                                fov_mm=(370.0, 280.0), oblique_deg=5.0, random_orientation=False,
                                label_posterior_elements=False, anatomy="lumbar", fov_centre_z_mm=-22.0)


def _grid(rng: np.random.Generator, opts: PhantomOptions) -> tuple[tuple[int, int, int], np.ndarray, np.ndarray]:
    """Draw a sagittal scanner grid: (shape, spacing, direction) in canonical LR/SI/AP axis order."""
    n_slices = int(rng.integers(opts.slices[0], opts.slices[1] + 1))
    slice_spacing = rng.uniform(*opts.slice_spacing_mm)
    pixel = rng.uniform(*opts.inplane_spacing_mm)
    n_si = int(round(opts.fov_mm[0] / pixel))
    n_ap = int(round(opts.fov_mm[1] / pixel))
    angle = np.deg2rad(rng.uniform(-opts.oblique_deg, opts.oblique_deg))
    # Columns: the LR axis (towards patient left), the SI axis (towards inferior), the AP axis
    # (towards posterior), the latter two rotated about LR by the oblique angle.
    c, s = np.cos(angle), np.sin(angle)
    direction = np.array([[1.0, 0.0, 0.0], [0.0, s, c], [0.0, -c, s]])
    shape = (n_slices, n_si, n_ap)
    spacing = np.array([slice_spacing, pixel, pixel])
    return shape, spacing, direction


def _reorder(shape, spacing, direction, rng: np.random.Generator):
    """Randomly permute and flip the three array axes (geometry follows)."""
    perm = rng.permutation(3)
    signs = rng.choice([-1.0, 1.0], size=3)
    return (tuple(shape[p] for p in perm), spacing[perm], direction[:, perm] * signs[None, :])


def _spine_geometry(rng: np.random.Generator) -> dict:
    """Random sizes of bodies and discs and the curve of the spine axis."""
    n = len(_SPINE_ORDER)
    heights = np.array([rng.uniform(7.0, 11.0) if i in _DISC_IDS else rng.uniform(21.0, 27.0)
                        for i in _SPINE_ORDER])
    heights[-1] = rng.uniform(60.0, 80.0)  # sacrum
    # Thoracic bodies are smaller than lumbar ones.
    scale = np.linspace(0.8, 1.05, n)
    return {
        "heights": heights,
        "depth_mm": rng.uniform(30.0, 38.0) * scale,
        "width_mm": rng.uniform(38.0, 48.0) * scale,
        "lordosis_mm": rng.uniform(5.0, 25.0),
        "canal_mm": rng.uniform(13.0, 18.0),
        "top_mm": rng.uniform(160.0, 180.0),
    }


def _anatomy(points: np.ndarray, geo: dict, label_posterior: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Evaluate label and T2-like intensity at LPS points.

    Args:
        points: (N, 3) LPS coordinates in mm, phantom centre at the origin.
        geo: Output of :func:`_spine_geometry`.
        label_posterior: Give posterior elements their vertebra's label (else 0).

    Returns:
        (labels (N,) uint8, intensity (N,) float32 in about [0, 1]).
    """
    x, y, z = points[:, 0], points[:, 1], points[:, 2]  # left, posterior, superior
    length = geo["heights"].sum()
    top = geo["top_mm"]
    # Lordotic spine axis: anterior bulge (negative y) in the lumbar part.
    t = np.clip((top - z) / length, 0.0, 1.0)
    axis_y = -geo["lordosis_mm"] * np.sin(np.pi * t) + 10.0 * t
    slope = (-geo["lordosis_mm"] * np.pi * np.cos(np.pi * t) + 10.0) / length
    theta = np.arctan(slope)
    # Distance along the spine from the top (u) and anterior-posterior offset from the axis (v).
    u = (top - z) * np.cos(theta) + (y - axis_y) * np.sin(theta)
    v = (y - axis_y) * np.cos(theta) - (top - z) * np.sin(theta)

    bounds = np.concatenate([[0.0], np.cumsum(geo["heights"])])
    index = np.clip(np.searchsorted(bounds, u, side="right") - 1, 0, len(_SPINE_ORDER) - 1)
    inside_run = (u >= 0) & (u < bounds[-1])
    depth = geo["depth_mm"][index]
    width = geo["width_mm"][index]
    ids = np.array(_SPINE_ORDER)[index]
    is_disc = np.isin(ids, list(_DISC_IDS))
    is_sacrum = ids == 1

    # Sacrum tapers and tilts backwards along its length.
    frac = np.clip((u - bounds[-2]) / geo["heights"][-1], 0.0, 1.0)
    taper = np.where(is_sacrum, 1.0 - 0.55 * frac, 1.0)
    shift = np.where(is_sacrum, 25.0 * frac, 0.0)
    shrink = np.where(is_disc, 0.94, 1.0)
    ell = (x / (0.5 * width * taper * shrink)) ** 2 + ((v - shift) / (0.5 * depth * taper * shrink)) ** 2
    body = inside_run & (ell <= 1.0)

    canal_front = 0.5 * depth + 1.5
    canal_back = canal_front + geo["canal_mm"]
    in_canal_ap = (v > canal_front) & (v < canal_back)
    canal = inside_run & ~is_sacrum & in_canal_ap & (np.abs(x) < 9.0)
    # Posterior elements belong to the vertebra at that level (not to discs).
    vertebral_level = ~is_disc & ~is_sacrum & inside_run
    pedicle = vertebral_level & in_canal_ap & (np.abs(x) >= 9.0) & (np.abs(x) < 15.0)
    spinous = vertebral_level & (v >= canal_back) & (v < canal_back + 32.0) & (np.abs(x) < 5.0 + 4.0 * (v < canal_back + 8))

    labels = np.zeros(points.shape[0], np.uint8)
    labels[body] = ids[body]
    posterior = pedicle | spinous
    labels[posterior] = ids[posterior]

    # T2-like intensities: air 0, soft tissue 0.3, fat 0.7, bone marrow 0.45 (darker cortex),
    # disc nucleus bright, CSF brightest, cord grey.
    body_r = np.sqrt((x / 120.0) ** 2 + ((y - 20.0) / 110.0) ** 2)
    intensity = np.where(body_r < 1.0, 0.3, 0.0)
    intensity = np.where((body_r >= 0.88) & (body_r < 1.0), 0.7, intensity)
    intensity = np.where(canal, 0.95, intensity)
    cord = canal & (np.abs(x) < 4.5) & (np.abs(v - 0.5 * (canal_front + canal_back)) < 4.0) & (u < bounds[9])
    intensity = np.where(cord, 0.5, intensity)
    marrow = np.where(ell < 0.75, 0.48, 0.25)
    disc_core = np.where(ell < 0.5, 0.85, 0.45)
    intensity = np.where(labels > 0, np.where(np.isin(labels, list(_DISC_IDS)), disc_core, marrow), intensity)
    if not label_posterior:
        labels[posterior] = 0
    return labels, intensity.astype(np.float32)


def make_phantom(seed: int, options: PhantomOptions | None = None) -> tuple[Volume, Volume]:
    """Generate one phantom.

    Args:
        seed: Random seed; the same seed always gives the same phantom.
        options: Parameter ranges and anatomy (defaults: :class:`PhantomOptions`).

    Returns:
        (image Volume float32, label Volume uint8 with ids 1..19) on the same grid.
    """
    opts = options or PhantomOptions()
    rng, shape, spacing, direction, origin, points, build = _draw(seed, opts)
    if build is None:
        labels, intensity = _anatomy(points, _spine_geometry(rng), opts.label_posterior_elements)
    else:
        labels, intensity = render_spine(points, build, opts.label_posterior_elements)
    labels = labels.reshape(shape)
    intensity = intensity.reshape(shape)

    image = _acquisition(intensity, spacing, direction, origin, rng)
    return (Volume(image, spacing, origin, direction),
            Volume(labels, spacing, origin, direction, is_label=True))


def phantom_truth(seed: int, options: PhantomOptions) -> dict:
    """What the measurements of a "lumbar" phantom's label map should find, from its construction.

    Args:
        seed: The phantom's seed.
        options: Its options (``anatomy="lumbar"``).

    Returns:
        :meth:`.phantom_spine.SpineBuild.truth` (heights in mm, angles in degrees, no slip, no
        fracture), plus the generator call under ``"generator"``.

    Raises:
        ValueError: for the "classic" anatomy, whose construction does not define them.
    """
    if options.anatomy != "lumbar":
        raise ValueError(f"only the 'lumbar' anatomy records its construction, not {options.anatomy!r}")
    build = _draw(seed, options)[-1]
    generator = {"function": "SAFNetSpineLib.data.phantom.make_phantom", "seed": seed, "options": asdict(options)}
    return {"generator": generator, **build.truth()}


def write_sample(folder: str | Path) -> list[Path]:
    """Write the bundled sample: ``SAFNetSpinePhantom.nii.gz`` (int16) and its ``_truth.json``.

    ``make_phantom(SAMPLE_SEED, SAMPLE_OPTIONS)``, rounded to int16 as a scanner stores it, and
    :func:`phantom_truth` of the same call. ``Resources/SampleData/`` holds exactly these.

    Returns:
        The two paths written.
    """
    from SAFNetSpineLib.bundled import SAMPLE_NAME, TRUTH_SUFFIX

    image, _ = make_phantom(SAMPLE_SEED, SAMPLE_OPTIONS)
    stored = Volume(np.round(image.array).astype(np.int16), image.spacing, image.origin, image.direction)
    folder = Path(folder)
    paths = [folder / f"{SAMPLE_NAME}.nii.gz", folder / f"{SAMPLE_NAME}{TRUTH_SUFFIX}"]
    write_volume(stored, paths[0])
    write_json_atomic(phantom_truth(SAMPLE_SEED, SAMPLE_OPTIONS), paths[1])
    return paths


def _draw(seed: int, opts: PhantomOptions) -> tuple:
    """The random draws of a phantom, in the order the generator has always made them.

    Returns:
        (rng, shape, spacing, direction, origin, points (N, 3) relative to the anatomy's centre,
        the placed :class:`SpineBuild` for the "lumbar" anatomy or None for "classic", whose
        geometry is drawn from ``rng`` next).
    """
    if opts.anatomy not in ANATOMIES:
        raise ValueError(f"unknown phantom anatomy {opts.anatomy!r}; one of {', '.join(ANATOMIES)}")
    rng = np.random.default_rng(seed)
    shape, spacing, direction = _grid(rng, opts)
    if opts.random_orientation:
        shape, spacing, direction = _reorder(shape, spacing, direction, rng)
    centre = rng.normal(0.0, 8.0, size=3)
    extent = direction @ (spacing * (np.array(shape) - 1))
    origin = centre - 0.5 * extent + rng.normal(0.0, 10.0, size=3)
    offset = origin - centre  # anatomy is built around `centre`

    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1).reshape(-1, 3)
    points = ijk * spacing[None, :] @ direction.T + offset[None, :]
    build: SpineBuild | None = None
    if opts.anatomy == "lumbar":
        points -= 0.5 * (points.min(axis=0) + points.max(axis=0))  # the field of view is centred on the spine
        points[:, 2] += opts.fov_centre_z_mm
        build = build_spine(rng)
        place_spine(build, _LUMBAR_TOP_Z_MM, _LUMBAR_WALL_Y_MM)
    return rng, shape, spacing, direction, origin, points, build


def _acquisition(intensity: np.ndarray, spacing, direction, origin, rng: np.random.Generator) -> np.ndarray:
    """Blur (partial volume), bias field, Rician-like noise and scanner scale."""
    import SimpleITK as sitk

    smooth = Volume(intensity, spacing, origin, direction).to_sitk()
    smooth = sitk.SmoothingRecursiveGaussian(smooth, [0.6 * s for s in spacing])
    blurred = Volume.from_sitk(smooth).array
    grids = np.meshgrid(*[np.linspace(-1, 1, n) for n in intensity.shape], indexing="ij")
    coeffs = rng.normal(0.0, 0.15, size=3)
    bias = np.exp(sum(c * g for c, g in zip(coeffs, grids, strict=True)))
    sigma = rng.uniform(0.02, 0.06)
    real = blurred * bias + rng.normal(0.0, sigma, intensity.shape)
    imag = rng.normal(0.0, sigma, intensity.shape)
    magnitude = np.sqrt(real**2 + imag**2)
    return (magnitude * rng.uniform(300.0, 2000.0)).astype(np.float32)


def write_phantom_dataset(out_dir: str | Path, n: int, seed: int = 0, options: PhantomOptions | None = None) -> Path:
    """Write ``n`` phantoms in the common ``imagesTr/ labelsTr/ dataset.json`` layout.

    Case i uses seed ``seed + i``. Every case lists all 19 structures as annotated.

    Returns:
        The dataset folder.

    Raises:
        SpineInputError: ``out_dir`` holds another dataset's ``dataset.json``
            (:func:`check_phantom_folder`); nothing is written.
    """
    out = check_phantom_folder(out_dir)
    (out / "imagesTr").mkdir(parents=True, exist_ok=True)
    (out / "labelsTr").mkdir(parents=True, exist_ok=True)
    cases = []
    for i in range(n):
        name = f"phantom_{seed + i:04d}"
        image, label = make_phantom(seed + i, options)
        write_volume(image, out / "imagesTr" / f"{name}.nii.gz")
        write_volume(label, out / "labelsTr" / f"{name}.nii.gz")
        cases.append({
            "case": name,
            "image": f"imagesTr/{name}.nii.gz",
            "label": f"labelsTr/{name}.nii.gz",
            "source": f"{PHANTOM_SOURCE}, seed {seed + i}",
            "sequence": "synthetic T2-like",
            "annotated_labels": list(FOREGROUND_IDS),
            "shape": list(image.shape),
            "spacing_mm": [round(float(s), 4) for s in image.spacing],
        })
    write_json_atomic({"label_scheme": "MRSpineSeg ids", "cases": cases}, out / "dataset.json")
    return out


#: How every phantom case's ``source`` in ``dataset.json`` begins.
PHANTOM_SOURCE = "SAFNetSpineLib synthetic phantom"


def check_phantom_folder(out_dir: str | Path) -> Path:
    """Refuse a folder whose ``dataset.json`` indexes anything but phantoms (it would be replaced).

    Raises:
        SpineInputError: naming the index, when it is unreadable or lists a case that
            is not a phantom.
    """
    from SAFNetSpineLib.errors import SpineInputError
    from SAFNetSpineLib.json_files import read_json_object

    out = Path(out_dir)
    index = out / "dataset.json"
    if not index.exists():
        return out
    try:
        cases = read_json_object(index, "dataset.json").get("cases")
    except SpineInputError as error:
        raise SpineInputError(index, f"another dataset's index is here ({error.problem}); write the phantoms to "
                                     "a new folder") from None
    listed = cases if isinstance(cases, list) else []
    foreign = [c for c in listed if not (isinstance(c, dict) and str(c.get("source", "")).startswith(PHANTOM_SOURCE))]
    if foreign or not isinstance(cases, list):
        example = f", e.g. {foreign[0].get('case', '?')!r}" if foreign and isinstance(foreign[0], dict) else ""
        raise SpineInputError(index, f"indexes another dataset ({len(listed)} cases{example}, not phantoms) that "
                                     "would be replaced; write the phantoms to a new folder")
    return out
