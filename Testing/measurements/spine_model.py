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


def lumbar_spine(tilts: dict[str, float], sacrum_tilt: float | None = 38.0, gap: float = 10.0, depth: float = 35.0,
                 heights: dict[str, tuple[float, float]] | None = None, shifts: dict[str, float] | None = None,
                 with_discs: bool = True, posterior_elements: bool = False) -> Spine:
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
        spine.polygons.append((NAMES_TO_IDS[name], body.polygon()))
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


def rasterise(spine: Spine, direction: np.ndarray, spacing, half_width: float = 20.0, margin: float = 12.0,
              lateral_cover: float | None = None, crop_superior: float | None = None,
              centre_lps=(3.0, -40.0, 60.0)) -> Volume:
    """The spine's label map on a grid of the given direction (LPS columns) and spacing.

    The grid covers every polygon plus ``margin`` mm; laterally it covers
    +-``lateral_cover`` mm (default: half_width + margin); ``crop_superior`` cuts the
    field of view at that in-plane superior coordinate.
    """
    direction = np.asarray(direction, float)
    spacing = np.asarray(spacing, float)
    centre = np.asarray(centre_lps, float)
    corners2 = np.concatenate([polygon for _, polygon in spine.polygons])
    lateral = half_width + margin if lateral_cover is None else lateral_cover
    lo = np.array([corners2[:, 0].min() - margin, corners2[:, 1].min() - margin])
    hi = np.array([corners2[:, 0].max() + margin, corners2[:, 1].max() + margin])
    if crop_superior is not None:
        hi[1] = crop_superior
    # Box corners in LPS: (a, s, lateral) -> centre + lateral * L - a * P + s * S.
    box = np.array([[a, s, x] for a in (lo[0], hi[0]) for s in (lo[1], hi[1]) for x in (-lateral, lateral)])
    lps = centre[None, :] + np.stack([box[:, 2], -box[:, 0], box[:, 1]], axis=1)
    index = (lps - centre) @ direction / spacing[None, :]
    low, high = np.floor(index.min(axis=0)), np.ceil(index.max(axis=0))
    shape = tuple(int(n) for n in high - low + 1)
    origin = centre + direction @ (spacing * low)
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1).reshape(-1, 3)
    points = origin[None, :] + (ijk * spacing[None, :]) @ direction.T - centre[None, :]
    a, s, x = -points[:, 1], points[:, 2], points[:, 0]
    keep = np.abs(x) <= half_width
    labels = np.zeros(len(points), np.uint8)
    plane = np.stack([a, s], axis=1)
    for label_id, polygon in spine.polygons:
        inside = keep & inside_convex(plane, polygon)
        labels[inside] = label_id
    return Volume(labels.reshape(shape), spacing, origin, direction, is_label=True)
