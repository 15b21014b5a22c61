"""Analytic lumbar spines: convex polygons of known size and angle, rasterised on any grid.

A spine is drawn in the patient's mid-sagittal plane, coordinates (a, s) in mm along
patient anterior (-P) and superior (+S), and extruded +-``half_width`` mm along the
patient's left. Each vertebral body is an isosceles trapezoid whose walls run along its
own axis, so its heights at any fraction of the depth are known exactly; discs are the
quadrilaterals between neighbouring endplates; the sacrum is a block under its
superior endplate. The label map holds the voxels whose centres fall inside.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from SAFNetSpineLib.volume import Volume

#: Endplate tilts (deg) of a gently lordotic L5-L1, for :func:`lumbar_spine`.
GENTLE_LORDOSIS_TILTS = {"L5": 12.0, "L4": 8.0, "L3": 4.0, "L2": 0.0, "L1": -3.0}
NAMES_TO_IDS = {"S": 1, "L5": 2, "L4": 3, "L3": 4, "L2": 5, "L1": 6, "T12": 7}
DISC_IDS = {("L5", "S"): 11, ("L4", "L5"): 12, ("L3", "L4"): 13, ("L2", "L3"): 14, ("L1", "L2"): 15,
            ("T12", "L1"): 16}


def along(tilt_deg: float) -> np.ndarray:
    """Unit endplate direction (pointing anterior) of a given tilt (anterior end lower when positive)."""
    t = np.radians(tilt_deg)
    return np.array([np.cos(t), -np.sin(t)])


def normal(tilt_deg: float) -> np.ndarray:
    """Unit normal (pointing superior) of an endplate of a given tilt."""
    t = np.radians(tilt_deg)
    return np.array([np.sin(t), np.cos(t)])


@dataclass
class Body:
    """A trapezoid body: axis tilt, depth, anterior and posterior heights, corners (a, s)."""

    axis_tilt: float
    depth: float
    anterior: float
    posterior: float
    centre: np.ndarray

    @property
    def corners(self) -> dict[str, np.ndarray]:
        f, u = along(self.axis_tilt), normal(self.axis_tilt)
        half = self.depth / 2
        return {"post_inf": self.centre - half * f - self.posterior / 2 * u,
                "ant_inf": self.centre + half * f - self.anterior / 2 * u,
                "ant_sup": self.centre + half * f + self.anterior / 2 * u,
                "post_sup": self.centre - half * f + self.posterior / 2 * u}

    def polygon(self) -> np.ndarray:
        c = self.corners
        return np.array([c["post_inf"], c["ant_inf"], c["ant_sup"], c["post_sup"]])

    def height_at(self, fraction_from_posterior: float) -> float:
        return self.posterior + fraction_from_posterior * (self.anterior - self.posterior)

    def tilt(self, side: str) -> float:
        c = self.corners
        d = c[f"ant_{side}"] - c[f"post_{side}"]
        return float(np.degrees(np.arctan2(-d[1], d[0])))


@dataclass
class Spine:
    """Bodies by name, the sacrum's superior endplate, discs between them."""

    bodies: dict[str, Body] = field(default_factory=dict)
    sacrum_top: tuple[np.ndarray, np.ndarray] | None = None  # (posterior corner, anterior corner)
    sacrum_length: float = 45.0
    with_discs: bool = True
    polygons: list[tuple[int, np.ndarray]] = field(default_factory=list)

    def endplate(self, name: str, side: str) -> tuple[np.ndarray, np.ndarray]:
        """(posterior corner, anterior corner) of an endplate ("sup"/"inf"); the sacrum's is S1's."""
        if name == "S":
            return self.sacrum_top
        c = self.bodies[name].corners
        return c[f"post_{side}"], c[f"ant_{side}"]

    def tilt(self, name: str, side: str) -> float:
        post, ant = self.endplate(name, side)
        d = ant - post
        return float(np.degrees(np.arctan2(-d[1], d[0])))

    def slip(self, upper: str, lower: str) -> float:
        """Signed slip (mm, + anterior) of the upper body's posterior-inferior corner along the lower endplate."""
        post_l, ant_l = self.endplate(lower, "sup")
        d = (ant_l - post_l) / np.linalg.norm(ant_l - post_l)
        return float((self.endplate(upper, "inf")[0] - post_l) @ d)


def rounded(polygon: np.ndarray, radius: float, segments: int = 8) -> np.ndarray:
    """A convex polygon with every corner replaced by a circular arc of ``radius`` mm tangent to both edges."""
    points = []
    n = len(polygon)
    for i in range(n):
        corner, before, after = polygon[i], polygon[i - 1], polygon[(i + 1) % n]
        u, v = before - corner, after - corner
        u, v = u / np.linalg.norm(u), v / np.linalg.norm(v)
        half = 0.5 * np.arccos(np.clip(u @ v, -1.0, 1.0))  # half the interior angle
        start, end = corner + radius / np.tan(half) * u, corner + radius / np.tan(half) * v
        bisector = (u + v) / np.linalg.norm(u + v)
        centre = corner + radius / np.sin(half) * bisector
        a0, a1 = (np.arctan2(*(p - centre)[::-1]) for p in (start, end))
        a1 = a0 + (a1 - a0 + np.pi) % (2 * np.pi) - np.pi  # the short way round
        angles = np.linspace(a0, a1, segments + 1)
        points.extend(centre + radius * np.stack([np.cos(angles), np.sin(angles)], axis=1))
    return np.array(points)


def lumbar_spine(tilts: dict[str, float], sacrum_tilt: float | None = 38.0, gap: float = 10.0, depth: float = 35.0,
                 heights: dict[str, tuple[float, float]] | None = None, shifts: dict[str, float] | None = None,
                 with_discs: bool = True, posterior_elements: bool = False, corner_radius: float = 0.0) -> Spine:
    """Stack bodies from the bottom up.

    Args:
        tilts: Body axis tilt (deg) by name, listed inferior to superior (e.g. L5 ... L1).
        sacrum_tilt: Tilt of the S1 endplate, or None for no sacrum.
        gap: Disc height (mm) at the middle of each disc.
        depth: Body depth (mm).
        heights: Name -> (anterior, posterior) heights; default 25 mm both.
        shifts: Name -> shift (mm) of that body and every body above it, anterior along
            the lower endplate (a forward slip at the disc below it).
        with_discs: Draw the discs.
        posterior_elements: Add a spinous process to each body, with its label.
        corner_radius: Round each body's corners with arcs of this radius (mm); the
            heights, endplates and corners of the construction stay those of the
            trapezoid (the lines that the rounded outline runs into).
    """
    heights = heights or {}
    shifts = shifts or {}
    spine = Spine(with_discs=with_discs)
    if sacrum_tilt is not None:
        centre = np.zeros(2)
        spine.sacrum_top = (centre - depth / 2 * along(sacrum_tilt), centre + depth / 2 * along(sacrum_tilt))
        post, ant = spine.sacrum_top
        down = -normal(sacrum_tilt) * spine.sacrum_length
        spine.polygons.append((1, np.array([post + down, ant + down, ant, post])))
        below, below_name = (centre, normal(sacrum_tilt), along(sacrum_tilt)), "S"
    else:
        below, below_name = None, None
    for name, tilt in tilts.items():
        ha, hp = heights.get(name, (25.0, 25.0))
        body = Body(tilt, depth, ha, hp, np.zeros(2))
        c0 = body.corners
        inf_offset = 0.5 * (c0["post_inf"] + c0["ant_inf"])  # inferior endplate midpoint - centre
        if below is None:
            inf_mid = np.array([0.0, 0.0])
        else:
            mid, n_below, d_below = below
            bisector = n_below + normal(body.tilt("inf"))
            inf_mid = mid + gap * bisector / np.linalg.norm(bisector) + shifts.get(name, 0.0) * d_below
        body.centre = inf_mid - inf_offset
        spine.bodies[name] = body
        c = body.corners
        sup_mid = 0.5 * (c["post_sup"] + c["ant_sup"])
        d_sup = (c["ant_sup"] - c["post_sup"]) / np.linalg.norm(c["ant_sup"] - c["post_sup"])
        if with_discs and below_name is not None:
            post_b, ant_b = spine.endplate(below_name, "sup")
            spine.polygons.append((DISC_IDS[(name, below_name)], np.array([post_b, ant_b, c["ant_inf"], c["post_inf"]])))
        outline = rounded(body.polygon(), corner_radius) if corner_radius > 0 else body.polygon()
        spine.polygons.append((NAMES_TO_IDS[name], outline))
        if posterior_elements:
            # A spinous process behind a 15 mm canal, with the body's label (MRSpineSeg style).
            f, u = along(tilt), normal(tilt)
            back = body.centre - (depth / 2 + 15.0) * f
            spine.polygons.append((NAMES_TO_IDS[name], np.array(
                [back - 8 * u, back - 30 * f - 10 * u, back - 30 * f + 2 * u, back + 8 * u])))
        below, below_name = (sup_mid, np.array([-d_sup[1], d_sup[0]]), d_sup), name
    return spine


def inside_convex(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """(N, 2) points inside a convex polygon given counter-clockwise or clockwise, (N,) bool."""
    edges = np.roll(polygon, -1, axis=0) - polygon
    cross = edges[None, :, 0] * (points[:, None, 1] - polygon[None, :, 1]) - edges[None, :, 1] * (
        points[:, None, 0] - polygon[None, :, 0])
    return np.all(cross >= 0, axis=1) | np.all(cross <= 0, axis=1)


def rotation(axis, degrees) -> np.ndarray:
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    a = np.radians(degrees)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(a) * k + (1 - np.cos(a)) * k @ k


#: Index axes of a sagittal scan as columns (LPS): i -> left, j -> inferior, k -> posterior.
SAGITTAL = np.array([[1.0, 0, 0], [0, 0, 1.0], [0, -1.0, 0]])
#: name -> LPS direction columns of the oblique grids the spines are drawn on.
OBLIQUE_DIRECTIONS = {
    # sagittal, oblique about a skew axis
    "skew_sagittal": rotation((1, 0.3, 0.2), 20.0) @ SAGITTAL,
    # axes permuted and one flipped, rotated 12 degrees in the sagittal plane
    "permuted_flipped": rotation((1, 0, 0), 12.0) @ SAGITTAL[:, [2, 0, 1]] * np.array([1.0, -1.0, 1.0]),
    # i -> posterior, j -> inferior, k -> right, one axis flipped (left-handed), oblique
    "left_handed": rotation((0, 1, 1), 7.0) @ np.array([[0, 1.0, 0], [0, 0, -1.0], [-1.0, 0, 0]]).T
    @ np.diag([1.0, 1.0, -1.0]),
}
#: name -> (direction, spacing mm): thick slices (3-4 mm) across the spine, anisotropic in plane.
THICK_SLICE_GRIDS = {name: (OBLIQUE_DIRECTIONS[name], spacing) for name, spacing in (
    ("skew_sagittal", (4.0, 0.8, 1.0)), ("permuted_flipped", (1.2, 3.5, 1.2)), ("left_handed", (0.9, 0.9, 3.0)))}
#: name -> (direction, spacing mm): 0.5-1.2 mm voxels.
FINE_OBLIQUE_GRIDS = {name: (OBLIQUE_DIRECTIONS[name], spacing) for name, spacing in (
    ("skew_sagittal", (1.2, 0.5, 0.8)), ("permuted_flipped", (0.7, 1.1, 0.6)), ("left_handed", (1.0, 0.9, 1.2)))}


def height_errors(spine: Spine, vertebrae: dict) -> dict[str, float]:
    """Measured minus constructed size of every body: "L3 anterior_height_mm" -> error (mm).

    The anterior and posterior heights are the walls', the middle height is at the middle
    of the depth; ``vertebrae`` is the measurements document's "vertebrae".
    """
    errors = {}
    for name, body in spine.bodies.items():
        expected = {"anterior_height_mm": body.anterior, "middle_height_mm": body.height_at(0.5),
                    "posterior_height_mm": body.posterior, "ap_depth_mm": body.depth}
        errors.update({f"{name} {field}": vertebrae[name][field] - value for field, value in expected.items()})
    return errors


def rasterise(spine: Spine, direction: np.ndarray, spacing, half_width: float = 20.0, margin: float = 12.0,
              lateral_cover: float | None = None, crop_superior: float | None = None,
              crop_inferior: float | None = None, centre_lps=(3.0, -40.0, 60.0)) -> Volume:
    """The spine's label map on a grid of the given direction (LPS columns) and spacing.

    The grid covers every polygon plus ``margin`` mm; laterally it covers
    +-``lateral_cover`` mm (default: half_width + margin). ``crop_superior`` and
    ``crop_inferior`` cut the field of view there: the grid's face nearest to the superior
    (inferior) direction then passes through the in-plane point (a = 0, s = crop), within
    one voxel; on an oblique grid that face is oblique too.
    """
    direction = np.asarray(direction, float)
    spacing = np.asarray(spacing, float)
    centre = np.asarray(centre_lps, float)
    corners2 = np.concatenate([polygon for _, polygon in spine.polygons])
    lateral = half_width + margin if lateral_cover is None else lateral_cover
    lo = np.array([corners2[:, 0].min() - margin, corners2[:, 1].min() - margin])
    hi = np.array([corners2[:, 0].max() + margin, corners2[:, 1].max() + margin])
    # Box corners in LPS: (a, s, lateral) -> centre + lateral * L - a * P + s * S.
    box = np.array([[a, s, x] for a in (lo[0], hi[0]) for s in (lo[1], hi[1]) for x in (-lateral, lateral)])
    lps = centre[None, :] + np.stack([box[:, 2], -box[:, 0], box[:, 1]], axis=1)
    index = (lps - centre) @ direction / spacing[None, :]
    low, high = np.floor(index.min(axis=0)), np.ceil(index.max(axis=0))
    axis = int(np.argmax(np.abs(direction[2])))  # the grid axis nearest to superior
    for crop, towards in ((crop_superior, 1.0), (crop_inferior, -1.0)):
        if crop is not None:
            at = (np.array([0.0, 0.0, crop]) @ direction / spacing)[axis]  # (a = 0, s = crop) -> index
            if towards * direction[2, axis] > 0:
                high[axis] = np.floor(at)
            else:
                low[axis] = np.ceil(at)
    shape = tuple(int(n) for n in high - low + 1)
    origin = centre + direction @ (spacing * low)
    labels = np.zeros(shape, np.uint8)
    for label_id, polygon in spine.polygons:  # each only over the grid box around its prism, later ones on top
        prism = np.array([[a, s, x] for a, s in polygon for x in (-half_width, half_width)])
        corner_index = (centre[None, :] + np.stack([prism[:, 2], -prism[:, 0], prism[:, 1]], axis=1)
                        - origin[None, :]) @ direction / spacing[None, :]
        start = np.clip(np.floor(corner_index.min(axis=0)).astype(int), 0, shape)
        stop = np.clip(np.ceil(corner_index.max(axis=0)).astype(int) + 1, 0, shape)
        box = tuple(slice(b, e) for b, e in zip(start, stop, strict=True))
        ijk = np.stack(np.meshgrid(*[np.arange(b, e) for b, e in zip(start, stop, strict=True)], indexing="ij"),
                       axis=-1).reshape(-1, 3)
        points = origin[None, :] + (ijk * spacing[None, :]) @ direction.T - centre[None, :]
        inside = (np.abs(points[:, 0]) <= half_width) & inside_convex(np.stack([-points[:, 1], points[:, 2]], axis=1),
                                                                      polygon)
        labels[box][inside.reshape(labels[box].shape)] = label_id
    return Volume(labels, spacing, origin, direction, is_label=True)
