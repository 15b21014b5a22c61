"""Spine measurements -> MRML: a table node, markups lines for the heights, an angle for lordosis.

The measurements come from ``NAME_measurements.json`` (written by
``python -m SAFNetSpineLib measure`` or ``segment --measure``; the layout is the
library's, see docs/INTERFACES.md). Points there are LPS; markups are placed in RAS.
The table holds exactly the CSV's rows (:func:`SAFNetSpineLib.measurements.measurement_rows`),
and the one-line summary is the library's (:func:`SAFNetSpineLib.measurements.summary_line`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from SAFNetSpineLib.errors import SpineInputError
from SAFNetSpineLib.measurements import measurement_rows, summary_line
from SAFNetSpineLib.measurements.definitions import SCHEMA
from SAFNetSpineLib.measurements.report import ROW_COLUMNS

from .volume_nodes import remove_node

#: Attribute set on every node created here (value: the measurements' name), to find and replace them.
MEASUREMENT_ATTRIBUTE = "SAFNetSpine.Measurements"
#: Text columns of the table; every other column is a number (NaN where not measured).
TEXT_COLUMNS = ("level", "kind", "direction", "not_measured")
_HEIGHT_COLOURS = {"anterior": (0.0, 0.9, 1.0), "middle": (1.0, 1.0, 1.0), "posterior": (1.0, 0.3, 0.82)}
_LORDOSIS_COLOUR = (0.49, 0.99, 0.0)


@dataclass
class MeasurementNodes:
    """Nodes made for one set of measurements.

    Attributes:
        table: The vtkMRMLTableNode (one row per level, columns :data:`ROW_COLUMNS`).
        height_lines: vtkMRMLMarkupsLineNode per body and disc height, named "L4 anterior height".
        lordosis: vtkMRMLMarkupsAngleNode for the L1-S1 lordosis, or None when not measured.
        summary: The one-line summary.
    """

    table: object
    height_lines: list = field(default_factory=list)
    lordosis: object | None = None
    summary: str = ""

    def all_nodes(self) -> list:
        return [self.table, *self.height_lines, *([self.lordosis] if self.lordosis is not None else [])]


def read_measurements(path: str | Path) -> dict:
    """Read a measurements JSON file.

    Raises:
        SpineInputError: missing file, not JSON, or another schema.
    """
    path = Path(path)
    if not path.is_file():
        raise SpineInputError(path, "file not found")
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SpineInputError(path, f"not a measurements JSON file ({error.__class__.__name__})") from None
    if not isinstance(document, dict) or document.get("schema") != SCHEMA:
        raise SpineInputError(path, f"not a measurements file of schema {SCHEMA}")
    return document


def _ras(point_lps) -> list[float]:
    return [-float(point_lps[0]), -float(point_lps[1]), float(point_lps[2])]


def _mark(node, name: str) -> None:
    node.SetAttribute(MEASUREMENT_ATTRIBUTE, name)


def measurements_table(scene, measurements: dict, name: str):
    """A table node with the measurement rows.

    Args:
        scene: The MRML scene.
        measurements: The measurements document.
        name: Node name.

    Returns:
        The vtkMRMLTableNode; numeric cells are NaN where a value is absent.
    """
    import vtk

    node = scene.AddNewNodeByClass("vtkMRMLTableNode", name)
    _mark(node, name)
    table = node.GetTable()
    rows = measurement_rows(measurements)
    for column in ROW_COLUMNS:
        array = vtk.vtkStringArray() if column in TEXT_COLUMNS else vtk.vtkDoubleArray()
        array.SetName(column)
        array.SetNumberOfValues(len(rows))
        for index, row in enumerate(rows):
            value = row[column]
            if column in TEXT_COLUMNS:
                array.SetValue(index, str(value))
            else:
                array.SetValue(index, math.nan if value == "" else float(value))
        table.AddColumn(array)
    for column in ROW_COLUMNS:
        unit = ("mm" if column.endswith("_mm") else "mL" if column.endswith("_ml") else
                "deg" if column.endswith("_deg") else "%" if column.endswith("_percent") else "")
        if unit:
            node.SetColumnUnitLabel(column, unit)
        node.SetColumnTitle(column, column.replace("_", " "))
    node.SetUseColumnTitleAsColumnHeader(True)
    node.Modified()
    return node


def _locked_markup(scene, class_name: str, title: str, points_lps, colour, tag: str):
    """A locked markups node of ``class_name`` through ``points_lps`` (LPS mm), in ``colour``."""
    node = scene.AddNewNodeByClass(class_name, title)
    _mark(node, tag)
    for point in points_lps:
        node.AddControlPoint(_ras(point))
    node.SetLocked(True)
    node.CreateDefaultDisplayNodes()
    display = node.GetDisplayNode()
    if display is not None:
        display.SetSelectedColor(*colour)
        display.SetColor(*colour)
    return node


def _line(scene, title: str, points_lps, colour, tag: str):
    node = _locked_markup(scene, "vtkMRMLMarkupsLineNode", title, points_lps, colour, tag)
    display = node.GetDisplayNode()
    if display is not None:
        display.SetPropertiesLabelVisibility(False)
    return node


def height_lines(scene, measurements: dict, tag: str) -> list:
    """One locked markups line per height of every measured body and disc (endpoints on the endplates)."""
    nodes = []
    for section in ("vertebrae", "discs"):
        for level, entry in measurements[section].items():
            marks = entry.get("landmarks_lps_mm", {})
            for kind, colour in _HEIGHT_COLOURS.items():
                if f"{kind}_height" in marks and f"{kind}_height_mm" in entry:
                    nodes.append(_line(scene, f"{level} {kind} height", marks[f"{kind}_height"], colour, tag))
    return nodes


def lordosis_angle(scene, measurements: dict, tag: str):
    """An angle markup between L1's and S1's superior endplates, or None when the lordosis is not measured."""
    points = measurements.get("landmarks_lps_mm", {}).get("lumbar_lordosis_L1_S1")
    if not points:
        return None
    return _locked_markup(scene, "vtkMRMLMarkupsAngleNode", "L1-S1 lordosis", points, _LORDOSIS_COLOUR, tag)


def remove_measurement_nodes(scene, name: str) -> int:
    """Remove every node made for measurements called ``name``; returns how many."""
    found = []
    for index in range(scene.GetNumberOfNodes()):
        node = scene.GetNthNode(index)
        if node is not None and node.GetAttribute(MEASUREMENT_ATTRIBUTE) == name:
            found.append(node)
    for node in found:
        remove_node(scene, node)
    return len(found)


def show_measurements(scene, measurements: dict, name: str) -> MeasurementNodes:
    """Replace the nodes of measurements ``name`` with new ones: table, height lines, lordosis angle.

    Args:
        scene: The MRML scene.
        measurements: The measurements document (e.g. from :func:`read_measurements`).
        name: Name of the set (e.g. the segmentation's name); the table is "<name> measurements".

    Returns:
        The nodes and the one-line summary. On failure nothing new is left in the scene.
    """
    # Added in a batch: the Markups logic makes every markups node added outside one the active
    # place node (vtkSlicerMarkupsLogic::OnMRMLSceneNodeAdded), which would switch the toolbar's
    # place mode to Angle.
    scene.StartState(scene.BatchProcessState)
    try:
        remove_measurement_nodes(scene, name)
        try:
            table = measurements_table(scene, measurements, f"{name} measurements")
            _mark(table, name)
            nodes = MeasurementNodes(table, height_lines(scene, measurements, name),
                                     lordosis_angle(scene, measurements, name), summary_line(measurements))
        except Exception:
            remove_measurement_nodes(scene, name)
            raise
    finally:
        scene.EndState(scene.BatchProcessState)
    return nodes
