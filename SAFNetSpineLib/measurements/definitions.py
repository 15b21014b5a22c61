"""What every spine measurement means, where it is taken, and how it is graded.

This module is the one place that defines the measurements; the geometry code
(:mod:`.section`, :mod:`.outline`, :mod:`.spine`) only carries the definitions out.
All lengths are millimetres, angles degrees and volumes millilitres, in the patient
frame (LPS), whatever the grid of the label map.

Frame. The lateral axis is the patient's left, made perpendicular to the spine's
overall axis (the first principal axis of the structure centroids). Every
measurement is taken in a sagittal plane perpendicular to that axis through the
centroid of the structure measured (its mid-sagittal plane), sampled on the native
grid by trilinear interpolation of the structure's mask and averaged over
:data:`SECTION_LATERAL_OFFSETS_MM`; its outline is the 0.5 level of that average.
In a vertebra's plane only the anterior part (the body) is measured: the posterior
elements are cut off by the spinal canal there.

Body frame. Each body gets its own superior axis in that plane: the bisector of the
normals of its two endplates (found iteratively from the direction of the chain of
centroids), so heights are measured perpendicular to the body's mean endplate, and
a wedged body is measured along its own axis.

* Endplates: least-squares lines through the superior (inferior) outline between
  :data:`ENDPLATE_FIT_RANGE` of the depth, clear of rounded corners and osteophytes;
  their corners are where an outline parallel to the endplate,
  :data:`CORNER_INSET_FRACTION` of the middle height inside the body, meets the
  anterior and posterior walls, projected onto the endplate line. The sacrum's superior
  endplate is S1's (the sacrum has no inferior endplate here).
* Anterior and posterior heights: distance between the superior and inferior endplate
  lines along the body's superior axis, at the anterior (posterior) wall, where that
  wall's two corners are: the six points of quantitative morphometry, placed at the
  corners. The inset of the line fits and of the corner outline keeps rounded corners
  out; the heights themselves are taken at the walls, so a wedge keeps its full
  deformity. Middle height: distance between the superior and inferior outline along
  the same axis at the middle of the depth (it sees a concave endplate). Each outline
  height is the mean over a band of +-:data:`HEIGHT_BAND_MM`. References: Black DM et
  al., "Defining incident vertebral deformity: a prospective comparison of several
  approaches", J Bone Miner Res 1999;14:90-101 (six-point morphometry); Frobin W et
  al., "Precision measurement of disc height, vertebral height and sagittal plane
  displacement from lateral radiographic views of the lumbar spine", Clin Biomech
  1997;12 Suppl 1:S1-S63.
* AP depth: extent of the body along the anterior axis, through its centre.
* Endplate tilt: angle of the endplate line in the sagittal plane, positive when
  its anterior end is lower (the endplate faces anteriorly).
* Genant grade: :func:`genant_grade` (Genant HK, Wu CY, van Kuijk C, Nevitt MC,
  "Vertebral fracture assessment using a semiquantitative technique", J Bone Miner
  Res 1993;8:1137-1148), applied here to measured height ratios, and confirmed against
  the neighbours: the body's smallest height over the mean posterior height of the
  whole bodies next to it (``height_ratio_neighbours``) must show the same mild loss.
  That second criterion is the one of McCloskey-Kanis morphometry (McCloskey EV et al.,
  "The assessment of vertebral deformity: a method for use in population studies and
  clinical trials", Osteoporos Int 1993;3:138-147), which added it to cut the false
  deformities that a single ratio gives through normal shape and measurement error.
* Lumbar lordosis L1-S1: Cobb angle between the superior endplates of L1 and S1
  (Cobb JR, "Outline for the study of scoliosis", Instr Course Lect 1948;5:261-275;
  L1-S1 as in Vialle R et al., J Bone Joint Surg Am 2005;87:260-267), positive for a
  lordotic (posteriorly concave) curve. L1-L5 (superior endplate of L1 to inferior
  endplate of L5) is also given, for label maps without the sacrum.
* Segmental angle at a disc: the same Cobb angle between the inferior endplate of
  the body above and the superior endplate of the body below; positive when the disc
  space opens anteriorly (lordotic).
* Listhesis: displacement of the upper body's posterior-inferior corner from the
  lower body's posterior-superior corner, measured along the lower body's superior
  endplate (positive = anterior = anterolisthesis); percent of that endplate's
  length; graded by :func:`meyerding_grade` (Meyerding HW, "Spondylolisthesis",
  Surg Gynecol Obstet 1932;54:371-377).
* Disc heights: between the disc's own upper and lower outline at
  :data:`HEIGHT_POSITIONS` of its depth (anterior and posterior 10 % inside its margins).
* Volume: voxel count times voxel volume of the whole label (a vertebra label holds
  the posterior elements too where they are labelled).

A piece of a body. A body whose depth is far under its neighbours' (:data:`MIN_DEPTH_SHARE`) is
the part of a body that the label map holds (typically the top of the field of view, where a
network finds part of the vertebra in view), not a whole one: nothing is measured from it. So is
an endplate measured on its own (below) that spans under that share of the endplate it faces.

Measured in view. A structure cut by the image edge in its mid-sagittal section (its
outline within :data:`EDGE_MARGIN_VOXELS` of a face of the grid) loses
only what needs the cut part: a body loses its heights, depth and grade, and each
endplate that the cut comes near (:data:`CUT_CLEARANCE_MM`), but an endplate in view
is measured on its own (like S1's, the top of its outline), with the angles and slips
it takes part in. So a sacrum cut by the lower image edge still gives S1's endplate,
the L1-S1 lordosis and the L5/S angle and slip. A structure touching the edge only
outside its mid-sagittal section (a spinous process, a lateral side) is measured whole.
Volumes are those of the label as it is in the image.

A measurement that cannot be made is left out and its reason recorded under
``not_measured``: a part cut by the image edge, a missing neighbour (or one too far
away to be the next level: :data:`MAX_DISC_SPACE_MM`), an outline that cannot be traced.
"""

from __future__ import annotations

#: Identifies the measurements JSON layout (docs/INTERFACES.md).
SCHEMA = "safnet-spine-measurements/1"

#: Lateral offsets (mm) of the planes averaged into a structure's mid-sagittal section.
SECTION_LATERAL_OFFSETS_MM: tuple[float, ...] = (-1.0, 0.0, 1.0)
#: Pixel size (mm) of the sampled mid-sagittal section.
SECTION_STEP_MM = 0.25
#: Sections with less area than this (mm^2) are too small to measure (a fragment).
MIN_SECTION_AREA_MM2 = 60.0
#: A face of the grid whose normal is within this cosine of the lateral axis is named
#: "left" or "right" in reasons.
LATERAL_FACE_COSINE = 0.7
#: An outline within this many voxels of a grid face's last voxel centres is cut by that
#: face (faces across the section plane; a label fading out at the border of a network's
#: prediction stops a voxel or so short of the edge).
EDGE_MARGIN_VOXELS = 2.0
#: An endplate measured on its own is kept only when the part of the outline cut by the
#: image edge stays further than this (mm) from the band its line and corners are traced
#: in (the segment between its corners, widened by :data:`LONE_ENDPLATE_INSET_MM`).
CUT_CLEARANCE_MM = 2.0

#: Where the outline heights are taken, as a fraction of the AP depth from the posterior
#: margin: a body's middle height, and a disc's three heights.
HEIGHT_POSITIONS: dict[str, float] = {"anterior": 0.9, "middle": 0.5, "posterior": 0.1}
#: Half-width (mm) of the band of columns averaged into one height.
HEIGHT_BAND_MM = 1.0
#: Part of the depth (fractions from the posterior margin) the endplate lines are fitted over.
ENDPLATE_FIT_RANGE = (0.1, 0.9)
#: Number of outline columns each endplate line is fitted to.
ENDPLATE_COLUMNS = 17
#: Inset of the corner-finding outline from the endplate, as a fraction of the middle height.
CORNER_INSET_FRACTION = 0.10
#: Inset (mm) of the corner and depth outline under an endplate measured on its own
#: (S1's, or the one in view of a cut body).
LONE_ENDPLATE_INSET_MM = 4.0

#: Genant height-loss limits: grade 1 from 20 %, grade 2 from 25 %, grade 3 over 40 %.
GENANT_LOSS_LIMITS = (0.20, 0.25, 0.40)
#: Meyerding: one grade per 25 % of the endplate length (grade 5: over 100 %, spondyloptosis).
MEYERDING_STEP_PERCENT = 25.0
#: A body measured whole whose AP depth is under this share of the mean depth of the whole bodies
#: next to it is a piece of a body (partly in view or partly found), and nothing is measured from it:
#: neighbouring bodies differ in depth by a few percent, and a fracture does not make a body shallower.
MIN_DEPTH_SHARE = 0.75
#: Two bodies further apart than this (mm, between facing endplate centres), or overlapping
#: by more than :data:`MAX_BODY_OVERLAP_MM`, are not neighbours (a level missing from the
#: label map, or a misplaced label): no angle or slip is given between them.
MAX_DISC_SPACE_MM = 25.0
MAX_BODY_OVERLAP_MM = 5.0
#: Slips below this (mm) are within measurement error: reported, graded 0, not flagged.
SLIP_FLAG_MM = 3.0

#: Decimal places of each kind of value in the JSON and the CSV (both round the same way).
DECIMALS = {"mm": 2, "deg": 2, "ml": 3, "ratio": 3, "percent": 1}


def decimals_of(field: str) -> int:
    """Decimal places a field is rounded to, from its unit suffix or name."""
    if field.endswith("_mm") or field == "slip_mm":
        return DECIMALS["mm"]
    if field.endswith("_ml"):
        return DECIMALS["ml"]
    if field.endswith("_percent"):
        return DECIMALS["percent"]
    if field.startswith("height_ratio"):
        return DECIMALS["ratio"]
    return DECIMALS["deg"]


def rounded(field: str, value: float) -> float:
    """A value rounded as its field is stored (:func:`decimals_of`)."""
    return round(float(value), decimals_of(field))


def genant_grade(ratio_anterior_posterior: float, ratio_middle_posterior: float,
                 ratio_neighbours: float | None = None) -> int:
    """Genant semi-quantitative grade from the two height ratios, confirmed against the neighbours.

    The height loss is ``1 - min(ratios)``: grade 0 below 20 %, grade 1 (mild) for
    20-25 %, grade 2 (moderate) for 25-40 %, grade 3 (severe) over 40 % (Genant et al.
    1993). Genant's grading is visual; applied to measured heights it is the usual
    quantitative reading of its limits. A crush deformity that shortens the posterior
    height as much as the others is not caught by ratios within one body.

    The grade stands only where the body is also short against its neighbours: its
    smallest height at least the mild loss (20 %) under their mean posterior height
    (McCloskey et al. 1993). A wedge or biconcave fracture shortens one height and
    leaves the posterior wall, so it passes both; a ratio lowered by a posterior wall
    taller than the neighbours' (an endplate traced tilted, or a normal body's shape)
    does not. A neighbour that is itself crushed (posterior wall shortened too) lowers
    the reference and can hide a fracture next to it.

    Args:
        ratio_anterior_posterior: Anterior / posterior height.
        ratio_middle_posterior: Middle / posterior height.
        ratio_neighbours: Smallest of the three heights / the mean posterior height of the
            whole bodies next to it; None where no neighbour was measured (the ratios alone grade).

    Returns:
        The grade, 0-3.
    """
    loss = 1.0 - min(ratio_anterior_posterior, ratio_middle_posterior)
    mild, moderate, severe = GENANT_LOSS_LIMITS
    if loss < mild or (ratio_neighbours is not None and 1.0 - ratio_neighbours < mild):
        return 0
    if loss < moderate:
        return 1
    if loss <= severe:
        return 2
    return 3


def meyerding_grade(slip_mm: float, slip_percent: float) -> int:
    """Meyerding grade of a slip.

    Grade 1 up to 25 % of the lower endplate's length, 2 up to 50 %, 3 up to 75 %, 4 up
    to 100 %, 5 beyond (spondyloptosis) (Meyerding 1932). A slip under
    :data:`SLIP_FLAG_MM` is within the reproducibility of the measurement and graded 0
    (no listhesis), as a radiologist would not call it.

    Args:
        slip_mm: Size of the slip (mm, not negative).
        slip_percent: Slip as a percentage of the lower body's superior endplate length.

    Returns:
        The grade, 0-5.
    """
    if abs(slip_mm) < SLIP_FLAG_MM:
        return 0
    grade = int(-(-abs(slip_percent) // MEYERDING_STEP_PERCENT))  # ceil
    return min(max(grade, 1), 5)
