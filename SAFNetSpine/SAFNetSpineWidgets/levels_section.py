"""Rename levels: place one point on a level you know, name it, and every level is renamed by counting.

The counting is the library's (:func:`SAFNetSpineLib.inference.naming.name_levels`, through
:func:`SAFNetSpineMRML.renaming.rename_levels`); the segments' voxels are not touched.
After a segmentation whose naming is uncertain the panel asks for such a point.
"""

import qt
import slicer
from SAFNetSpineMRML.renaming import rename_levels
from SAFNetSpineMRML.volume_nodes import remove_node
from slicer.i18n import tr as _

#: Name of the temporary point list the user places the point with.
POINT_NODE_NAME = "SAFNetSpine level point"


class LevelsSection:
    """Args: panel (the module Widget: ui, logic, parameterNode)."""

    def __init__(self, panel):
        self.panel, self.ui = panel, panel.ui
        self._pointNode = self._observer = None
        self.ui.renameLevelsButton.clicked.connect(self.startPlacing)
        combo = self.ui.levelNameComboBox
        combo.addItems(panel.logic.levelNames())
        combo.currentIndex = max(0, combo.findText("L5"))  # the level most often recognised by eye

    def startPlacing(self):
        """Put Slicer into place mode for one point; :meth:`onPointPlaced` renames when it is down."""
        self.stopPlacing()
        scene = slicer.mrmlScene
        self._pointNode = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", POINT_NODE_NAME)
        self._pointNode.SetMaximumNumberOfControlPoints(1)
        self._observer = self._pointNode.AddObserver(slicer.vtkMRMLMarkupsNode.PointPositionDefinedEvent,
                                                     self.onPointPlaced)
        markups = slicer.modules.markups.logic()
        markups.SetActiveList(self._pointNode)
        markups.StartPlaceMode(False)
        self.ui.caseStatusLabel.text = _("Click inside {name} in a slice view.").format(
            name=self.ui.levelNameComboBox.currentText)

    def stopPlacing(self):
        remove_node(slicer.mrmlScene, self._releasePointNode())

    def _releasePointNode(self):
        """Stop observing the point node and forget it; returns it (or None)."""
        node = self._pointNode
        if node is not None:
            node.RemoveObserver(self._observer)
        self._pointNode = self._observer = None
        return node

    def onPointPlaced(self, _caller=None, _event=None):
        point = [0.0, 0.0, 0.0]
        self._pointNode.GetNthControlPointPositionWorld(0, point)
        pointNode = self._releasePointNode()
        # Removed once this event has returned: vtkSlicerMarkupsWidget::PlacePoint goes on using the
        # node after PointPositionDefinedEvent, so removing it here would free it under the widget.
        qt.QTimer.singleShot(0, lambda: remove_node(slicer.mrmlScene, pointNode))
        node = self.panel.parameterNode
        name = self.ui.levelNameComboBox.currentText
        try:
            result = rename_levels(slicer.mrmlScene, node.outputSegmentation, point, name, node.inputVolume)
        except Exception as error:  # SpineInputError: one sentence (point outside the image, ...)
            self.ui.caseStatusLabel.text = _("Levels not renamed: {error}").format(error=error)
            return
        changed = ", ".join(f"{old} -> {new}" for old, new in result.renamed.values()) or _("no name changed")
        warnings = [_("several levels in one segment: {names}").format(names=", ".join(result.split_segments))
                    ] if result.split_segments else []
        self.ui.caseStatusLabel.text = "; ".join([_("Renamed from {name}: {changed}").format(
            name=name, changed=changed), *warnings])
        self.ui.namingStatusLabel.text = _("Level names: {status} ({reason}).").format(
            status=result.naming.get("status", "?"), reason=result.naming.get("reason", ""))
        self.ui.namingStatusLabel.styleSheet = ""

    def askAfterUncertainNaming(self, reason):
        """The prompt after a segmentation whose level names are uncertain."""
        if slicer.util.confirmYesNoDisplay(
                _("The level names are uncertain: {reason}\n\nPlace a point on one level you know (choose its name "
                  "under 'Rename levels' first) so the others are named from it?").format(reason=reason),
                windowTitle=_("SAFNetSpine - confirm a level")):
            self.startPlacing()
