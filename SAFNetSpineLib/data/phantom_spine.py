"""The "lumbar" phantom anatomy: a plausible adult spine built as a chain of rigid bodies.

The spine is built in the sagittal plane (LPS ``y`` posterior, ``z`` superior, mm) from
the sacrum upwards. S1's superior endplate has the sacral slope; above it each disc is a
wedge whose posterior height sits on the lower body's posterior-superior corner (so no
slip is built in), and each vertebral body is a wedge of its own, with elliptical
cross-sections and concave endplates. The wedge angles are shared out of a drawn L1-S1
lordosis (40-60 degrees) and a mild thoracic kyphosis. Because everything is placed by
construction, the measurements a reader would make (heights, segmental angles, the
lordosis, slips, Genant grades) are known: :meth:`SpineBuild.truth`.

:func:`evaluate_spine` turns the build into labels and a T2-like image at any points:
bodies with dark cortex and textured marrow, discs with a bright nucleus and dark annulus,
pedicles, laminae and spinous processes, a canal with CSF, cord and cauda equina,
paraspinal muscle, subcutaneous fat and skin following the curve, and abdominal contents
with a vessel in front. All shapes are functions of position, so image and labels agree
on any grid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from SAFNetSpineLib.labels import SUPERIOR_TO_INFERIOR_IDS, structure
from SAFNetSpineLib.measurements.definitions import ENDPLATE_COLUMNS, ENDPLATE_FIT_RANGE, HEIGHT_POSITIONS

#: Spine ids from the sacrum up: S, L5/S, L5, L4/L5, ..., T9/T10, T9.
_UPWARD = SUPERIOR_TO_INFERIOR_IDS[::-1]
#: Posterior body heights (mm), T9 ... L5, before the per-phantom scale.
_BODY_HEIGHT = {"T9": 20.0, "T10": 21.0, "T11": 22.0, "T12": 23.5, "L1": 25.0, "L2": 26.0, "L3": 26.5,
                "L4": 26.5, "L5": 26.0}
#: Body AP depths (mm) at the mid-sagittal plane.
_BODY_DEPTH = {"T9": 28.0, "T10": 29.0, "T11": 30.5, "T12": 32.0, "L1": 33.0, "L2": 34.0, "L3": 35.0,
               "L4": 36.0, "L5": 36.0}
#: Middle disc heights (mm) between the rim planes of the two endplates (concavities come on top).
_DISC_HEIGHT = {"T9/T10": 5.5, "T10/T11": 6.0, "T11/T12": 6.5, "T12/L1": 7.0, "L1/L2": 7.5, "L2/L3": 8.5,
                "L3/L4": 9.0, "L4/L5": 9.5, "L5/S": 9.0}
#: Share of the L1-S1 lordosis taken by each lumbar disc and body (sums to 1).
_LORDOSIS_SHARE = {"L5/S": 0.30, "L4/L5": 0.24, "L3/L4": 0.16, "L2/L3": 0.10, "L1/L2": 0.06,
                   "L5": 0.08, "L4": 0.04, "L3": 0.02, "L2": 0.0, "L1": 0.0}
#: Thoracic wedges (degrees, negative = kyphotic) for discs and bodies above L1.
_THORACIC_WEDGE = {"T12/L1": 0.0, "T11/T12": -2.0, "T10/T11": -2.0, "T9/T10": -2.0,
                   "T12": -2.0, "T11": -3.0, "T10": -3.0, "T9": -3.0}
#: Sacrum: S1 (posterior height, depth, width in mm; the width takes in the alae, about 100 mm in adults),
#: then the fused rest as short slices whose depth and
#: width shrink linearly to the tip while each turns the axis anteriorly (the sacral kyphosis). The slices
#: share one smooth anterior surface with S1 (the pelvic surface has no steps); their posterior surface,
#: the front of the sacral canal, comes forward as they thin.
_S1 = (24.0, 38.0, 96.0)
_SACRAL_SLICES = 30  # thin, so that their steps and turns stay under a voxel
_SACRAL_REST_MM = 72.0
_SACRAL_TIP = (14.0, 20.0)  # depth, width at the tip
_SACRAL_TURN_DEG = 45.0  # over the lower two thirds of the slices below S1: S1-S2 are straight, S3-S5 curve
#: Segment junctions S1/S2 ... S4/S5, mm below S1 along the sacrum: each is drawn as a vestigial disc.
_SACRAL_JUNCTIONS_MM = (0.0, 22.0, 42.0, 58.0)


def _normal(phi: float) -> np.ndarray:
    """Unit superior axis (y, z) tilted anteriorly (towards -y) by ``phi`` radians."""
    return np.array([-np.sin(phi), np.cos(phi)])


def _anterior(phi: float) -> np.ndarray:
    """Unit anterior axis (y, z) perpendicular to :func:`_normal`."""
    return np.array([-np.cos(phi), -np.sin(phi)])


@dataclass
class Body:
    """One vertebral body or sacral segment, in its own frame.

    The frame's origin is the posterior-inferior rim corner (the posterior-superior one
    for a sacral segment, which hangs below it); ``t`` runs anteriorly along the inferior
    endplate, ``s`` superiorly along the walls.

    Attributes:
        label: Label id.
        origin: (y, z) of the frame origin, mm.
        phi: Tilt of the frame's superior axis towards anterior, radians.
        depth: AP depth at the mid-sagittal plane, mm.
        width: Left-right width, mm.
        h_post: Posterior height (rim to rim), mm.
        h_ant: Anterior height, mm.
        cup_inf: Depth of the inferior endplate's concavity at its centre, mm.
        cup_sup: Depth of the superior endplate's concavity, mm.
        hangs: True for sacral segments: the body lies below the origin (s in [-h, 0]).
        junction: A fused sacral slice whose top is the junction of two sacral segments (S1/S2 ...).
    """

    label: int
    origin: np.ndarray
    phi: float
    depth: float
    width: float
    h_post: float
    h_ant: float
    cup_inf: float = 1.5
    cup_sup: float = 1.5
    hangs: bool = False
    junction: bool = False

    @property
    def wedge(self) -> float:
        """Angle between the two endplates, radians, positive when taller anteriorly."""
        return float(np.arctan((self.h_ant - self.h_post) / self.depth))

    def top_phi(self) -> float:
        """Tilt of the superior endplate (a sacral segment's frame is its superior endplate's)."""
        return self.phi if self.hangs else self.phi - self.wedge

    def local(self, y: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(t, s) of points (y, z) in this body's frame."""
        dy, dz = y - self.origin[0], z - self.origin[1]
        a, n = _anterior(self.phi), _normal(self.phi)
        return dy * a[0] + dz * a[1], dy * n[0] + dz * n[1]

    def footprint(self, t: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Squared elliptical radius of (t, x) in the body's cross-section (1 on the wall)."""
        return ((t - 0.5 * self.depth) / (0.5 * self.depth)) ** 2 + (x / (0.5 * self.width)) ** 2

    def rim_top(self, t: np.ndarray) -> np.ndarray:
        """Height s of the superior rim plane at ``t``."""
        return self.h_post + (self.h_ant - self.h_post) * t / self.depth

    def surfaces(self, t: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(inferior, superior) endplate surfaces s(t, x), concavities included."""
        cup = np.clip(1.0 - self.footprint(t, x), 0.0, 1.0)
        if self.hangs:
            return -self.h_post + 0.0 * t, -self.cup_sup * cup
        return self.cup_inf * cup, self.rim_top(t) - self.cup_sup * cup

    def corner(self, which: str) -> np.ndarray:
        """(y, z) of a rim corner: "pi", "ai", "ps", "as" (posterior/anterior, inferior/superior)."""
        a, n = _anterior(self.phi), _normal(self.phi)
        t = self.depth if which[0] == "a" else 0.0
        s = (self.rim_top(t) if which[1] == "s" else 0.0) if not self.hangs else (0.0 if which[1] == "s" else -self.h_post)
        return self.origin + t * a + s * n


@dataclass
class Disc:
    """The disc between two bodies: the space between their facing endplates, in the lower body's footprint.

    Attributes:
        label: Label id.
        below: The body under the disc (its superior endplate is the disc's floor).
        above: The body over the disc (its inferior endplate is the roof).
        h_post: Posterior height between the rim planes, mm.
        h_ant: Anterior height between the rim planes, mm.
    """

    label: int
    below: Body
    above: Body
    h_post: float
    h_ant: float


@dataclass
class SpineBuild:
    """A whole built spine: bodies (T9 ... L5 and the sacral segments), discs, canal line, sizes.

    Attributes:
        bodies: Vertebral bodies by label id (T9 ... L5) and the sacral segments under id 1 (a list).
        discs: Discs by label id.
        canal: (K, 2) polyline (y, z) of the canal's centre, from below the sacrum's canal to above T9.
        canal_depth: AP diameter of the canal, mm.
        canal_width: Left-right width of the canal, mm.
        skin_mm: Distance from the canal centre to the skin of the back, mm.
        fat_mm: Thickness of the subcutaneous fat, mm.
        sacral_slope_deg: Angle of S1's superior endplate to the horizontal (the LPS axial plane).
        texture_seed: Seed of the tissue texture.
    """

    bodies: dict
    sacrum: list
    discs: dict
    canal: np.ndarray
    canal_depth: float
    canal_width: float
    skin_mm: float
    fat_mm: float
    sacral_slope_deg: float
    texture_seed: int

    def truth(self) -> dict:
        """What the measurements of this spine's label map should find (mm, degrees).

        Heights are read as :mod:`SAFNetSpineLib.measurements.definitions` defines them, in the
        mid-sagittal plane: a body's anterior and posterior heights between its endplate lines
        (fitted to the concave endplates over ``ENDPLATE_FIT_RANGE`` of the depth) at its walls,
        its middle height and a disc's three heights between the outlines at
        ``HEIGHT_POSITIONS`` of the depth; angles are Cobb angles between endplate rim lines,
        positive when lordotic. No slip and no fracture is built in.
        """
        vertebrae = {}
        for body in self.bodies.values():
            fit_t = np.linspace(*ENDPLATE_FIT_RANGE, ENDPLATE_COLUMNS) * body.depth
            lines = [np.polyfit(fit_t, surface, 1) for surface in body.surfaces(fit_t, np.zeros_like(fit_t))]
            walls = {"anterior": body.depth, "posterior": 0.0}
            low, high = body.surfaces(np.array(HEIGHT_POSITIONS["middle"] * body.depth), np.array(0.0))
            heights = {f"{k}_height_mm": round(float(np.polyval(lines[1], t) - np.polyval(lines[0], t)), 2)
                       for k, t in walls.items()}
            heights["middle_height_mm"] = round(float(high - low), 2)
            heights = {f"{k}_height_mm": heights[f"{k}_height_mm"] for k in HEIGHT_POSITIONS}  # report order
            ratio_ap = heights["anterior_height_mm"] / heights["posterior_height_mm"]
            ratio_mp = heights["middle_height_mm"] / heights["posterior_height_mm"]
            vertebrae[structure(body.label).short_name] = {
                **heights, "ap_depth_mm": round(body.depth, 2),
                "height_ratio_anterior_posterior": round(ratio_ap, 3),
                "height_ratio_middle_posterior": round(ratio_mp, 3),
                "genant_grade": 0, "wedge_deg": round(float(np.degrees(body.wedge)), 2)}
        discs, segmental = {}, {}
        for disc in self.discs.values():
            name = structure(disc.label).short_name
            heights = {}
            for k, f in HEIGHT_POSITIONS.items():
                cup = 1.0 - ((f - 0.5) / 0.5) ** 2
                base = disc.h_post + (disc.h_ant - disc.h_post) * f
                heights[f"{k}_height_mm"] = round(float(base + cup * (disc.below.cup_sup + disc.above.cup_inf)), 2)
            discs[name] = heights
            segmental[name] = round(float(np.degrees(disc.below.top_phi() - disc.above.phi)), 2)
        s1 = self.sacrum[0]
        l1 = self.bodies[_id("L1")]
        l5 = self.bodies[_id("L5")]
        lordosis_s1 = np.degrees(s1.top_phi() - l1.top_phi())
        lordosis_l5 = np.degrees(l5.phi - l1.top_phi())
        return {
            "vertebrae": vertebrae,
            "discs": discs,
            "angles_deg": {"lumbar_lordosis_L1_S1": round(float(lordosis_s1), 2),
                           "lumbar_lordosis_L1_L5": round(float(lordosis_l5), 2),
                           "sacral_slope": round(self.sacral_slope_deg, 2), "segmental": segmental},
            "listhesis_mm": {name: 0.0 for name in discs},
            "built_in_findings": [],
        }


def _id(name: str) -> int:
    """Label id of a short name."""
    return next(i for i in _UPWARD if structure(i).short_name == name)


def build_spine(rng: np.random.Generator) -> SpineBuild:
    """Draw a plausible adult spine from the sacrum up (sizes within about +-8 %).

    Args:
        rng: Random generator (sizes, lordosis 40-60 degrees, sacral slope, canal, soft tissue).

    Returns:
        The build; place it with :func:`place_spine`.
    """
    scale = rng.uniform(0.93, 1.07)
    lordosis = np.radians(rng.uniform(42.0, 58.0))
    slope = np.radians(np.degrees(lordosis) - rng.uniform(8.0, 14.0))
    width_scale = rng.uniform(0.95, 1.05)
    # Sacral segments hang below S1's superior endplate, turning anteriorly as they go down, along one
    # anterior surface: each slice starts where the one above ends anteriorly.
    sacrum, phi = [], slope
    sizes = [_S1] + [(_SACRAL_REST_MM / _SACRAL_SLICES,
                      _S1[1] + (_SACRAL_TIP[0] - _S1[1]) * (k + 1) / _SACRAL_SLICES,
                      _S1[2] + (_SACRAL_TIP[1] - _S1[2]) * k / (_SACRAL_SLICES - 1)) for k in range(_SACRAL_SLICES)]
    front = sizes[0][1] * scale * _anterior(phi)  # S1's anterior-superior corner (the promontory)
    step = _SACRAL_REST_MM / _SACRAL_SLICES
    junctions = {round(j / step) for j in _SACRAL_JUNCTIONS_MM}
    for k, (height, depth, width) in enumerate(sizes):
        origin = front - depth * scale * _anterior(phi)
        sacrum.append(Body(_id("S"), origin, phi, depth * scale, width * width_scale, height * scale,
                           height * scale, cup_inf=0.0, cup_sup=1.5 if k == 0 else 0.0, hangs=True,
                           junction=k - 1 in junctions))
        front = front - height * scale * _normal(phi)
        if k > _SACRAL_SLICES // 3:
            phi = phi - np.radians(_SACRAL_TURN_DEG / (_SACRAL_SLICES - _SACRAL_SLICES // 3))
    bodies, discs = {}, {}
    below, corner, phi = sacrum[0], np.zeros(2), slope  # S1's posterior-superior corner and its tilt
    upward = list(_UPWARD[1:])
    for disc_id, body_id in zip(upward[0::2], upward[1::2], strict=True):
        dname, bname = structure(disc_id).short_name, structure(body_id).short_name
        d_wedge = np.radians(_LORDOSIS_SHARE.get(dname, 0.0) * np.degrees(lordosis) + _THORACIC_WEDGE.get(dname, 0.0))
        b_wedge = np.radians(_LORDOSIS_SHARE.get(bname, 0.0) * np.degrees(lordosis) + _THORACIC_WEDGE.get(bname, 0.0))
        depth = _BODY_DEPTH[bname] * scale
        mid = _DISC_HEIGHT[dname] * scale
        d_post = mid - 0.5 * depth * np.tan(d_wedge)
        d_ant = mid + 0.5 * depth * np.tan(d_wedge)
        # The upper body's posterior-inferior corner sits straight above the lower one's posterior-superior
        # corner (along the lower endplate's normal): no slip.
        origin = corner + d_post * _normal(phi)
        phi_body = phi - d_wedge
        h_post = _BODY_HEIGHT[bname] * scale
        body = Body(body_id, origin, phi_body, depth, depth * 1.45 * width_scale, h_post,
                    h_post + depth * np.tan(b_wedge))
        bodies[body_id] = body
        discs[disc_id] = Disc(disc_id, below, body, d_post, d_ant)
        below, corner, phi = body, body.corner("ps"), body.top_phi()
    canal_depth = rng.uniform(15.0, 18.0) * scale
    build = SpineBuild(bodies=bodies, sacrum=sacrum, discs=discs, canal=np.zeros((0, 2)), canal_depth=canal_depth,
                       canal_width=rng.uniform(20.0, 24.0), skin_mm=rng.uniform(62.0, 75.0),
                       fat_mm=rng.uniform(10.0, 20.0), sacral_slope_deg=float(np.degrees(slope)),
                       texture_seed=int(rng.integers(0, 2**31 - 1)))
    build.canal = _canal_line(build)
    return build


def _canal_line(build: SpineBuild) -> np.ndarray:
    """Canal centre line: behind each body's posterior wall at mid-height, extended straight at both ends."""
    points = []
    for seg in build.sacrum[::3][::-1]:  # along the whole sacral curve
        mid = seg.origin - 0.5 * seg.h_post * _normal(seg.phi)
        points.append(mid - (0.5 * build.canal_depth) * _anterior(seg.phi) * 0.8)
    for body_id in _UPWARD[2::2]:
        body = build.bodies[body_id]
        mid = body.origin + 0.5 * body.h_post * _normal(body.phi)
        points.append(mid - 0.5 * build.canal_depth * _anterior(body.phi))
    points = np.array(points)
    head = points[-1] + 400.0 * (points[-1] - points[-2]) / np.linalg.norm(points[-1] - points[-2])
    tail = points[0] + 400.0 * (points[0] - points[1]) / np.linalg.norm(points[0] - points[1])
    return np.vstack([tail, points, head])


def place_spine(build: SpineBuild, top_z: float, lumbar_wall_y: float) -> None:
    """Translate the build so T9's top is at ``top_z`` and L1-L5's mean posterior wall at ``lumbar_wall_y``."""
    t9 = build.bodies[_id("T9")]
    top = max(t9.corner("ps")[1], t9.corner("as")[1])
    walls = np.mean([build.bodies[_id(n)].origin[0] for n in ("L1", "L2", "L3", "L4", "L5")])
    shift = np.array([lumbar_wall_y - walls, top_z - top])
    for body in [*build.bodies.values(), *build.sacrum]:
        body.origin = body.origin + shift
    build.canal = build.canal + shift
