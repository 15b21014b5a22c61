"""Render the SAFNetSpine module panel (its Qt Designer .ui) to a PNG without Slicer.

Slicer's CTK/qMRML widgets do not exist outside Slicer, so the .ui is rewritten to
their Qt base classes before loading (qMRMLNodeComboBox -> QComboBox, ctkPathLineEdit
-> QLineEdit, ctkCollapsibleButton -> a QFrame headed by a flat button, as Slicer draws
its collapsible sections) and then filled with the texts the module itself shows.

    QT_QPA_PLATFORM=offscreen .venv/bin/python Testing/slicer/render_panel_screenshot.py

writes ``Resources/Screenshots/SAFNetSpine-panel.png`` (used by the README and the
extension's ``EXTENSION_SCREENSHOTURLS``). With ``--icons`` it also draws the module and
extension icons (a sagittal column of vertebrae and discs in the label table's colours).
"""

from __future__ import annotations

import math
import os
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
UI_FILE = REPO / "SAFNetSpine" / "Resources" / "UI" / "SAFNetSpine.ui"
OUTPUT = REPO / "Resources" / "Screenshots" / "SAFNetSpine-panel.png"
ICONS = (REPO / "SAFNetSpine" / "Resources" / "Icons" / "SAFNetSpine.png", REPO / "Resources" / "Icons" / "SAFNetSpine.png")

#: CTK / qMRML class -> the Qt class it is drawn as.
STAND_INS = {
    "qMRMLWidget": "QWidget",
    "qMRMLNodeComboBox": "QComboBox",
    "ctkPathLineEdit": "QLineEdit",
    "ctkCollapsibleButton": "QFrame",
    "qMRMLSegmentationShow3DButton": "QPushButton",
}
#: Properties that only the CTK/qMRML classes know.
CTK_PROPERTIES = {"nodeTypes", "showChildNodeTypes", "addEnabled", "removeEnabled", "noneEnabled",
                  "noneDisplay", "filters", "collapsed", "SlicerParameterName"}

STYLE = """
QWidget { font-family: "DejaVu Sans"; font-size: 9pt; color: #202020; }
QWidget#SAFNetSpine { background: #fbfbfb; }
QFrame[sectionTitle] { border: 1px solid #c6c6c6; border-radius: 3px; background: #fbfbfb; }
QPushButton[sectionHeader="true"] { text-align: left; padding: 4px 8px; font-weight: bold; border-radius: 2px;
              background: qlineargradient(x1:0, y1:0, x2:0, y2:1, stop:0 #f6f6f6, stop:1 #dedede); }
QPushButton { padding: 4px 10px; border: 1px solid #b9b9b9; border-radius: 3px;
              background: qlineargradient(x1:0, y1:0, x2:0, y2:1, stop:0 #ffffff, stop:1 #e9e9e9); }
QPushButton:disabled { color: #9a9a9a; }
QPushButton#segmentButton, QPushButton#startFinetuneButton { font-weight: bold; }
QLabel#namingStatusLabel { color: #1e7b34; }
QComboBox, QLineEdit, QPlainTextEdit, QTableWidget { border: 1px solid #b9b9b9; border-radius: 2px;
              background: white; padding: 2px 4px; }
QProgressBar { border: 1px solid #b9b9b9; border-radius: 2px; text-align: center; background: white; height: 16px; }
QProgressBar::chunk { background: #4a90d9; }
QHeaderView::section { background: #eeeeee; border: 0px; border-right: 1px solid #d0d0d0; padding: 2px 4px; }
"""


def rewrite_ui(path: Path) -> bytes:
    """The .ui with CTK/qMRML widgets replaced by Qt classes QUiLoader can build."""
    tree = ET.parse(path)
    root = tree.getroot()
    for widget in root.iter("widget"):
        cls = widget.get("class")
        if cls in STAND_INS:
            widget.set("class", STAND_INS[cls])
        for prop in list(widget.findall("property")):
            if prop.get("name") in CTK_PROPERTIES:
                widget.remove(prop)
            elif cls == "ctkCollapsibleButton" and prop.get("name") == "text":
                prop.set("name", "sectionTitle")
                prop.set("stdset", "0")
    for tag in ("customwidgets", "connections"):
        for element in root.findall(tag):
            root.remove(element)
    return ET.tostring(root, encoding="utf-8")


def _fill_table(table, QtWidgets, columns, rows, visible_rows) -> None:
    table.setColumnCount(len(columns))
    table.setHorizontalHeaderLabels(list(columns))
    table.setRowCount(len(rows))
    for r, row in enumerate(rows):
        for c, value in enumerate(row):
            table.setItem(r, c, QtWidgets.QTableWidgetItem(value))
    table.verticalHeader().setVisible(False)
    table.horizontalHeader().setStretchLastSection(True)
    table.resizeColumnsToContents()
    row_height = table.rowHeight(0) if rows else 22
    table.setFixedHeight(table.horizontalHeader().height() + visible_rows * row_height + 6)


def fill_panel(panel, QtWidgets) -> None:
    """Put in the texts the module itself shows while it segments the bundled phantom.

    No result numbers are shown that no run produced: the model table shows the bundled
    model's own recorded figures (its ``model.json``), the status lines show no Dice or
    run time, and the naming line is the module's wording for a confident result.
    """
    sys.path.insert(0, str(REPO / "SAFNetSpine"))
    sys.path.insert(0, str(REPO))
    from SAFNetSpineJobs import commands, requirements
    from SAFNetSpineJobs.model_versions import TABLE_COLUMNS, ModelChoice

    from SAFNetSpineLib.labels import STRUCTURES, SUPERIOR_TO_INFERIOR_IDS
    from SAFNetSpineLib.weights import read_manifest

    find = panel.findChild
    folder = REPO / "Resources" / "Models" / "safnet-default"
    manifest = read_manifest(folder)
    bundled = ModelChoice("safnet-default", folder, "bundled", True, created=manifest.created,
                          metrics=manifest.metrics if isinstance(manifest.metrics, dict) else None)
    find(QtWidgets.QComboBox, "inputVolumeSelector").addItem("SAFNetSpinePhantom")
    find(QtWidgets.QComboBox, "modelComboBox").addItem(bundled.label)
    for name in ("deviceComboBox", "finetuneDeviceComboBox"):
        find(QtWidgets.QComboBox, name).addItems([label for _, label in commands.device_labels(None)])
    find(QtWidgets.QComboBox, "segmentationSelector").addItem("Create new segmentation")
    levels = find(QtWidgets.QComboBox, "levelNameComboBox")
    levels.addItems([STRUCTURES[i].short_name for i in SUPERIOR_TO_INFERIOR_IDS])
    levels.setCurrentIndex(levels.findText("L5"))
    find(QtWidgets.QPushButton, "show3DButton").setText("Show 3D")
    find(QtWidgets.QCheckBox, "show3DCheckBox").setChecked(True)
    find(QtWidgets.QPushButton, "segmentButton").setEnabled(False)
    find(QtWidgets.QPushButton, "cancelSegmentButton").setEnabled(True)
    find(QtWidgets.QProgressBar, "segmentProgressBar").setValue(45)
    find(QtWidgets.QLabel, "segmentStatusLabel").setText("inference: sliding window on the network grid")
    find(QtWidgets.QLabel, "namingStatusLabel").setText(
        commands.naming_text({"naming": {"status": "confident", "reason": "counted up from the sacrum"}})[0])
    find(QtWidgets.QLabel, "inputProblemLabel").setVisible(False)  # shown only for a bad input
    find(QtWidgets.QLabel, "caseStatusLabel").setText(
        "Correct the segments, then save: every structure present as a segment counts as reviewed.")
    find(QtWidgets.QLabel, "storeCountLabel").setText("0 in corrected-cases")
    find(QtWidgets.QProgressBar, "finetuneProgressBar").setValue(0)
    find(QtWidgets.QLabel, "finetuneStatusLabel").setText("Save at least one corrected case to fine-tune.")
    find(QtWidgets.QLabel, "finetuneOutcomeLabel").setVisible(False)
    find(QtWidgets.QLabel, "measureStatusLabel").setText(
        "Measure: body and disc heights, Genant grades, slips and lordosis of the output segmentation.")
    _fill_table(find(QtWidgets.QTableWidget, "measurementsTable"), QtWidgets,
                [title for _key, title in commands.MEASUREMENT_COLUMNS], [], 2)
    _fill_table(find(QtWidgets.QTableWidget, "modelVersionsTable"), QtWidgets, TABLE_COLUMNS, [bundled.table_row()], 3)
    find(QtWidgets.QLineEdit, "workFolderPathLineEdit").setText("~/.local/share/NA-MIC/Slicer/SAFNetSpine")
    statuses = requirements.dependency_status(REPO / "SAFNetSpine" / "Resources" / "requirements.txt")
    find(QtWidgets.QLabel, "dependenciesLabel").setText(requirements.status_text(statuses))
    for frame in panel.findChildren(QtWidgets.QFrame):
        title = frame.property("sectionTitle")
        if not title:
            continue
        # Every section drawn open (Advanced starts collapsed in Slicer) so all controls show.
        header = QtWidgets.QPushButton("\u25be  " + title)
        header.setProperty("sectionHeader", True)
        frame.layout().insertRow(0, header)


def render(output: Path = OUTPUT, width: int = 480) -> Path:
    """Render the panel to ``output`` (PNG) and return the path."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6 import QtCore, QtUiTools, QtWidgets

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    app.setStyle("Fusion")
    app.setStyleSheet(STYLE)
    data = QtCore.QByteArray(rewrite_ui(UI_FILE))
    buffer = QtCore.QBuffer(data)
    buffer.open(QtCore.QIODevice.ReadOnly)
    panel = QtUiTools.QUiLoader().load(buffer)
    if panel is None:
        raise RuntimeError(f"QUiLoader could not build {UI_FILE}")
    fill_panel(panel, QtWidgets)
    panel.resize(width, panel.sizeHint().height())
    panel.adjustSize()
    panel.resize(width, panel.sizeHint().height())
    output.parent.mkdir(parents=True, exist_ok=True)
    if not panel.grab().save(str(output), "PNG"):
        raise RuntimeError(f"could not write {output}")
    return output


def draw_icon(output: Path, size: int = 128) -> Path:
    """A sagittal stack L1 ... S with discs between, coloured from the label table."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6 import QtCore, QtGui, QtWidgets

    from SAFNetSpineLib.labels import structure_by_name

    QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    image = QtGui.QImage(size, size, QtGui.QImage.Format_ARGB32)
    image.fill(QtCore.Qt.transparent)
    painter = QtGui.QPainter(image)
    painter.setRenderHint(QtGui.QPainter.Antialiasing)
    painter.setBrush(QtGui.QColor(38, 44, 56))
    painter.setPen(QtCore.Qt.NoPen)
    painter.drawRoundedRect(QtCore.QRectF(2, 2, size - 4, size - 4), size * 0.16, size * 0.16)
    levels = ["L1", "L1/L2", "L2", "L2/L3", "L3", "L3/L4", "L4", "L4/L5", "L5", "L5/S", "S"]
    unit = size / 15.5
    y = size * 0.08
    for n, name in enumerate(levels):
        s = structure_by_name(name)
        disc = s.kind == "disc"
        height = unit * (0.55 if disc else 1.45)
        width = size * (0.36 if disc else 0.40)
        # lumbar lordosis: the column bows anteriorly (to the left, as in a sagittal view)
        centre = size * (0.44 - 0.07 * math.sin(math.pi * n / (len(levels) - 1)))
        colour = QtGui.QColor(*s.color)
        if not disc:  # posterior elements: a darker process behind each body
            painter.setBrush(colour.darker(150))
            painter.drawRoundedRect(QtCore.QRectF(centre + width / 2 - unit * 0.2, y + height * 0.3,
                                                  size * 0.2, height * 0.5), unit * 0.25, unit * 0.25)
        painter.setBrush(colour)
        painter.drawRoundedRect(QtCore.QRectF(centre - width / 2, y, width, height), unit * 0.35, unit * 0.35)
        y += height + unit * 0.18
    painter.end()
    output.parent.mkdir(parents=True, exist_ok=True)
    if not image.save(str(output), "PNG"):
        raise RuntimeError(f"could not write {output}")
    return output


if __name__ == "__main__":
    arguments = sys.argv[1:]
    if "--icons" in arguments:
        arguments.remove("--icons")
        for icon in ICONS:
            print(draw_icon(icon))
    print(render(Path(arguments[0]) if arguments else OUTPUT))
