"""Labels and a T2-like image of a built spine (:mod:`.phantom_spine`) at any points.

Intensities are in about [0, 1], a fast-spin-echo T2 look: CSF 0.95, fat 0.8, disc nucleus
0.8, marrow 0.45 with texture, muscle 0.22, annulus (0.17, about 0.4 of marrow as in the real T2
development scans) and cortex dark, air black. Texture is
a sum of random plane waves evaluated at each point, so it is the same on every grid.
"""

from __future__ import annotations

import numpy as np

from SAFNetSpineLib.data.phantom_spine import Body, SpineBuild, _anterior, _id, _normal
from SAFNetSpineLib.labels import structure

#: Nearest-object search radius (mm) in the sagittal plane: points further from a body's centre are skipped.
_REACH_MM = 75.0
#: The dural sac ends at S2: this far (mm, along the canal) below S1's superior endplate.
_SAC_END_BELOW_S1_MM = 35.0
#: Thickness and half-width (mm) of the vestigial disc drawn at a sacral segment junction: it lies between the
#: small segment bodies only; the alae beside them are solid fused bone.
_JUNCTION_MM = 1.6
_JUNCTION_HALF_WIDTH_MM = 16.0


def _waves(points: np.ndarray, rng: np.random.Generator, wavelength_mm: tuple[float, float], n: int = 48):
    """Smooth random texture at points (N, 3): zero mean, unit variance, the given wavelengths."""
    directions = rng.normal(size=(n, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    k = 2 * np.pi / rng.uniform(*wavelength_mm, size=n)
    phase = rng.uniform(0, 2 * np.pi, size=n)
    field = np.zeros(points.shape[0], np.float32)
    for d, kk, p in zip(directions, k, phase, strict=True):
        field += np.cos(points @ (d * kk) + p).astype(np.float32)
    return field * np.float32(np.sqrt(2.0 / n))


def _canal_coordinates(y: np.ndarray, z: np.ndarray, line: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Signed distance from the canal line (positive posterior) and height along it (mm from its start)."""
    best = np.full(y.shape, np.inf)
    signed = np.zeros_like(y)
    along = np.zeros_like(y)
    start = 0.0
    for p0, p1 in zip(line[:-1], line[1:], strict=True):
        e = p1 - p0
        length = float(np.linalg.norm(e))
        e = e / length
        wy, wz = y - p0[0], z - p0[1]
        proj = np.clip(wy * e[0] + wz * e[1], 0.0, length)
        dy, dz = wy - proj * e[0], wz - proj * e[1]
        dist = dy * dy + dz * dz
        closer = dist < best
        best = np.where(closer, dist, best)
        signed = np.where(closer, wy * e[1] - wz * e[0], signed)  # (e_z, -e_y): posterior of an upward line
        along = np.where(closer, start + proj, along)
        start += length
    return signed, along


def _along_of(build: SpineBuild, point: np.ndarray) -> float:
    """Height along the canal line of the point of the line nearest to ``point`` (y, z)."""
    _, along = _canal_coordinates(np.array([point[0]]), np.array([point[1]]), build.canal)
    return float(along[0])


def render_spine(points: np.ndarray, build: SpineBuild, label_posterior: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Labels and T2-like intensity of ``build`` at LPS points.

    Args:
        points: (N, 3) LPS coordinates in mm (x left, y posterior, z superior).
        build: A placed spine (:func:`.phantom_spine.place_spine`).
        label_posterior: Give pedicles, laminae and spinous processes their vertebra's label
            (and the sacrum's posterior arch S); False leaves them 0, still drawn in the image.

    Returns:
        (labels (N,) uint8, intensity (N,) float32).
    """
    rng = np.random.default_rng(build.texture_seed)
    x, y, z = points[:, 0], points[:, 1], points[:, 2]
    fine, coarse = _waves(points, rng, (2.5, 7.0)), _waves(points, rng, (12.0, 40.0))
    d, u = _canal_coordinates(y, z, build.canal)
    intensity = _soft_tissue(build, x, d, u, fine, coarse)
    labels = np.zeros(points.shape[0], np.uint8)
    posterior = np.zeros(points.shape[0], bool)
    canal = (d / (0.5 * build.canal_depth)) ** 2 + (x / (0.5 * build.canal_width)) ** 2 <= 1.0
    canal &= u > _along_of(build, build.sacrum[0].origin) - 60.0
    for body in build.bodies.values():
        _posterior_elements(body, build, x, y, z, ~canal, labels, posterior, intensity, fine)
    for seg in build.sacrum[: len(build.sacrum) * 4 // 5]:  # S1 to about S4, where the sacral hiatus opens
        _sacral_arch(seg, build, x, y, z, ~canal, labels, posterior, intensity, fine)
    for body in [*build.bodies.values(), *build.sacrum[::-1]]:
        _body(body, x, y, z, labels, posterior, intensity, fine)
    for disc in build.discs.values():
        _disc(disc, x, y, z, labels, posterior, intensity, fine)
    if not label_posterior:
        labels[posterior] = 0
    return labels, np.clip(intensity, 0.0, None).astype(np.float32)


def _soft_tissue(build: SpineBuild, x, d, u, fine, coarse) -> np.ndarray:
    """Everything that is not bone or disc: canal contents, muscle, fat, skin, air, abdomen, vessels."""
    cd, cw = build.canal_depth, build.canal_width
    conus = _along_of(build, build.bodies[_id("L1")].corner("pi"))
    bifurcation = _along_of(build, build.bodies[_id("L4")].corner("pi"))
    diaphragm = _along_of(build, build.bodies[_id("T12")].corner("ps"))
    sacral = _along_of(build, build.sacrum[0].origin)
    levels = sorted((_along_of(build, b.origin), b.depth) for b in [*build.bodies.values(), *build.sacrum[1::2]])
    wall = -0.5 * cd - 1.5 - np.interp(u, [a for a, _ in levels], [depth for _, depth in levels])
    skin = build.skin_mm + 6.0 * np.sin(u / 90.0)
    out = np.full(d.shape, 0.02, np.float32)  # air
    back = d > 0
    out = np.where(back & (d < skin + 1.5), np.float32(0.35), out)  # skin
    out = np.where(back & (d < skin - 1.5), np.float32(0.82) + 0.04 * fine, out)  # subcutaneous fat
    muscle = np.float32(0.22) * (1 + 0.12 * fine + 0.06 * coarse)
    out = np.where(back & (d < skin - 1.5 - build.fat_mm), muscle, out)
    out = np.where(back & (np.abs(d - (skin - 1.5 - build.fat_mm)) < 0.8), np.float32(0.08), out)  # fascia
    front = d <= 0
    bowel = np.float32(0.34) + 0.07 * fine + 0.05 * coarse
    bowel = np.where(coarse > 1.25, np.float32(0.62) + 0.05 * fine, bowel)
    bowel = np.where(coarse < -1.6, np.float32(0.05), bowel)
    dome = diaphragm + 0.004 * np.clip(wall - 20.0 - d, 0.0, None) ** 2  # the diaphragm rises anteriorly
    anterior = np.where(u > dome, np.float32(0.17) + 0.03 * fine, bowel)  # liver above, bowel below
    out = np.where(front, anterior, out)
    out = np.where(front & (d > wall), muscle, out)  # psoas and paravertebral muscle beside the bodies
    fat = np.where(u < sacral, 8.0, 3.0)  # presacral fat is thicker than the prevertebral layer
    midline = np.abs(x) < 20.0 + 6.0 * (u < sacral)  # in front of the bodies; beside them the psoas goes on
    out = np.where(front & midline & (d > wall - fat) & (d <= wall), np.float32(0.72) + 0.04 * fine, out)
    aorta = ((d - (wall - 14.0)) ** 2 + (x - 14.0) ** 2 < 100.0) & (u > bifurcation) & (u < diaphragm + 60.0)
    cava = ((d - (wall - 15.0)) ** 2 + (x + 17.0) ** 2 < 110.0) & (u > bifurcation) & (u < diaphragm)
    out = np.where(aorta, np.float32(0.05), np.where(cava, np.float32(0.3) + 0.03 * fine, out))
    # The canal: epidural fat behind a CSF-filled sac that ends at S2; cord down to the conus, nerve roots
    # below; fat and roots fill the sacral canal under the sac.
    canal = ((d / (0.5 * cd)) ** 2 + (x / (0.5 * cw)) ** 2 <= 1.0) & (u > sacral - 60.0)  # ends at S4
    sac = ((d + 1.0) / (0.5 * cd - 1.5)) ** 2 + (x / (0.5 * cw - 1.5)) ** 2 <= 1.0
    sac &= u > sacral - _SAC_END_BELOW_S1_MM
    out = np.where(canal, np.where(u > sacral - 8.0, np.float32(0.7), np.float32(0.6)) + 0.04 * fine, out)
    out = np.where(sac, np.float32(0.95) + 0.02 * fine, out)
    taper = np.clip((u - conus) / 20.0, 0.0, 1.0)
    cord = ((d + 1.5) / (4.2 * taper + 1e-3)) ** 2 + (x / (5.0 * taper + 1e-3)) ** 2 <= 1.0
    out = np.where(cord & (taper > 0.05), np.float32(0.42), out)
    roots = np.zeros(d.shape, bool)
    for dy, dx in ((2.5, -3.0), (2.5, 3.0), (4.0, -6.0), (4.0, 6.0), (1.0, -5.5), (1.0, 5.5)):
        roots |= ((d - dy) ** 2 + (x - dx) ** 2 < 0.8) & (u < conus)
    return np.where(roots & sac, np.float32(0.45), out)


def _near(body: Body, y, z) -> np.ndarray:
    """Indices of points within reach of a body (in the sagittal plane)."""
    centre = body.origin + 0.5 * body.depth * _anterior(body.phi) + (-0.5 if body.hangs else 0.5) * body.h_post * _normal(body.phi)
    return np.flatnonzero((y - centre[0]) ** 2 + (z - centre[1]) ** 2 < _REACH_MM**2)


def _body(body: Body, x, y, z, labels, posterior, intensity, fine) -> None:
    """A body (or sacral segment): textured marrow inside dark cortex and endplates, a basivertebral vein."""
    idx = _near(body, y, z)
    t, s = body.local(y[idx], z[idx])
    r2 = body.footprint(t, x[idx])
    low, high = body.surfaces(t, x[idx])
    fused = body.hangs and body.cup_sup == 0  # a slice of the fused sacrum below S1: no plates of its own
    if fused:
        high = high + 4.0  # overlaps the slice above: no gaps where the axis turns
    inside = (r2 <= 1.0) & (s >= low) & (s <= high)
    edge = (1.0 - np.sqrt(np.clip(r2, 0, 1))) * 0.5 * body.depth
    if not fused:  # S1 has its superior plate only: the sacrum reads as one bone below it
        edge = np.minimum(high - s, edge) if body.hangs else np.minimum(np.minimum(s - low, high - s), edge)
    marrow = np.float32(0.45) * (1 + 0.12 * fine[idx])
    value = np.where(edge < 0.8, np.float32(0.12), marrow)
    mid = -0.5 * body.h_post if body.hangs else 0.5 * body.h_post
    vein = (t > 0.8) & (t < 6.0) & (np.abs(s - mid) < 1.2 + 0.3 * (6.0 - t)) & (np.abs(x[idx]) < 3.0) & ~fused
    value = np.where(vein & (edge >= 0.8), np.float32(0.7), value)
    if body.junction:  # the vestigial disc between two fused sacral segments: a thin darker line
        line = (s > -_JUNCTION_MM) & (s <= 0.0) & (edge >= 0.8) & (np.abs(x[idx]) < _JUNCTION_HALF_WIDTH_MM)
        value = np.where(line, np.float32(0.28) + 0.03 * fine[idx], value)
    hit = idx[inside]
    labels[hit] = body.label
    posterior[hit] = False
    intensity[hit] = value[inside]


def _disc(disc, x, y, z, labels, posterior, intensity, fine) -> None:
    """A disc: the space between the facing endplates; a bright nucleus in a darker annulus."""
    below, above = disc.below, disc.above
    idx = _near(above, y, z)
    tb, sb = below.local(y[idx], z[idx])
    ta, sa = above.local(y[idx], z[idx])
    floor = below.surfaces(tb, x[idx])[1]
    roof = above.surfaces(ta, x[idx])[0]
    r2 = below.footprint(tb, x[idx])
    inside = (r2 <= 1.04) & (sb >= floor) & (sa <= roof) & (labels[idx] != below.label) & (labels[idx] != above.label)
    height = np.maximum((sb - floor) + (roof - sa), 1e-3)
    f = (sb - floor) / height
    core = np.clip(1.0 - r2 / 0.5, 0.0, 1.0) * np.clip(1.0 - np.abs(f - 0.5) / 0.35, 0.0, 1.0)
    value = np.float32(0.17) + np.float32(0.67) * np.sqrt(core).astype(np.float32) + 0.03 * fine[idx]
    hit = idx[inside]
    labels[hit] = disc.label
    posterior[hit] = False
    intensity[hit] = value[inside]


def _posterior_elements(body: Body, build: SpineBuild, x, y, z, outside_canal, labels, posterior, intensity,
                        fine) -> None:
    """Pedicles, laminae with articular processes, and the spinous process of one vertebra."""
    idx = _near(body, y, z)
    t, s = body.local(y[idx], z[idx])
    ax, h, cd, cw = np.abs(x[idx]), body.h_post, build.canal_depth, build.canal_width
    thoracic = structure(body.label).short_name.startswith("T")
    pedicle = (t > -cd) & (t < 1.0) & (s > 0.42 * h) & (s < 0.9 * h) & (ax > 0.5 * cw - 1.0) & (ax < 0.5 * cw + 7.0)
    behind = -t - cd  # mm behind the canal's back wall
    arch = (behind > -3.0) & (behind < 7.0) & (s > 0.05 * h - 0.4 * behind) & (s < 1.0 * h + 2.0) & (ax < 0.5 * cw + 8.0)
    facet = (t > -cd - 3.0) & (t < -cd + 8.0) & (s > -4.0) & (s < h) & (ax > 0.5 * cw - 1.0) & (ax < 0.5 * cw + 9.0)
    slope, half, length = (0.9, 4.5, 30.0) if thoracic else (0.25, 6.5, 28.0)
    spine_c = 0.55 * h - slope * (behind - 7.0)
    spinous = (behind >= 5.0) & (behind < 7.0 + length) & (np.abs(s - spine_c) < half) & (ax < 3.5)
    inside = (pedicle | arch | facet | spinous) & outside_canal[idx] & (labels[idx] == 0)
    value = np.float32(0.4) * (1 + 0.15 * fine[idx])
    hit = idx[inside]
    labels[hit] = body.label
    posterior[hit] = True
    intensity[hit] = value[inside]


def _sacral_arch(seg: Body, build: SpineBuild, x, y, z, outside_canal, labels, posterior, intensity, fine) -> None:
    """The posterior wall of the sacral canal and the median crest behind one sacral segment."""
    idx = _near(seg, y, z)
    t, s = seg.local(y[idx], z[idx])
    behind = -t - 0.8 * build.canal_depth
    arch = (behind > -2.0) & (behind < 9.0) & (s > -seg.h_post) & (s < 2.0) & (np.abs(x[idx]) < 0.5 * seg.width)
    crest = (behind >= 9.0) & (behind < 17.0) & (s > -seg.h_post) & (s < 2.0) & (np.abs(x[idx]) < 4.0)
    inside = (arch | crest) & outside_canal[idx] & (labels[idx] == 0)
    hit = idx[inside]
    labels[hit] = seg.label
    posterior[hit] = True
    intensity[hit] = (np.float32(0.4) * (1 + 0.15 * fine[idx]))[inside]
