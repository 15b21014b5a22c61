"""Kept panel choices, the rename point and the Measure markups against real MRML (issue 21, defects 2, 3, 8).

slicer-core has the real ``vtkMRMLScriptedModuleNode`` (what the parameter node wraps) and the
real ``vtkSlicerMarkupsLogic``; the place-mode widget itself needs a running Slicer, so the
rename point's removal is checked against the module's source.
"""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

import pytest
from SAFNetSpineJobs.choices import KEPT_CHOICES, MAX_EPOCHS, KeptChoices

REPO = Path(__file__).resolve().parents[2]
MODULE_DIR = REPO / "SAFNetSpine"
LEVELS_SECTION = MODULE_DIR / "SAFNetSpineWidgets" / "levels_section.py"
DEFAULTS = {name: default for name, _key, default, _convert in KEPT_CHOICES}
KEYS = {name: key for name, key, _default, _convert in KEPT_CHOICES}


class ScriptedNodeFields:
    """Attributes kept as parameters of a real ``vtkMRMLScriptedModuleNode``, as parameterNodeWrapper
    keeps them: every change is ``SetParameter`` and fires the node's ModifiedEvent."""

    def __init__(self, node):
        object.__setattr__(self, "node", node)
        for name, default in DEFAULTS.items():
            node.SetParameter(name, json.dumps(default))

    def __setattr__(self, name, value):
        self.node.SetParameter(name, json.dumps(value))

    def __getattr__(self, name):
        return json.loads(self.node.GetParameter(name))


def _panel(scene, settings):
    """The parameter node and the Widget's observer: every ModifiedEvent runs updateButtons, which saves."""
    import vtk

    node = scene.AddNewNodeByClass("vtkMRMLScriptedModuleNode", "SAFNetSpine")
    fields = ScriptedNodeFields(node)
    choices = KeptChoices(lambda key, default: settings.get(key, default), settings.__setitem__)
    node.AddObserver(vtk.vtkCommand.ModifiedEvent, lambda _caller, _event: choices.save(fields))
    return fields, choices


def test_saved_choices_survive_a_restart(scene):
    # QSettings hands back strings on Linux: what the previous session stored.
    settings = {KEYS["epochs"]: "25", KEYS["useTestTimeAugmentation"]: "true", KEYS["showResultIn3D"]: "true",
                KEYS["useUprightPasses"]: "true"}
    fields, choices = _panel(scene, settings)
    choices.restore(fields)
    assert (fields.epochs, fields.useTestTimeAugmentation, fields.showResultIn3D) == (25, True, True)
    assert fields.useUprightPasses is True
    assert settings[KEYS["useTestTimeAugmentation"]] == "true" and settings[KEYS["showResultIn3D"]] == "true"
    fields.showResultIn3D = False  # a change in this session is saved at once
    assert settings == {KEYS["epochs"]: 25, KEYS["useTestTimeAugmentation"]: True, KEYS["showResultIn3D"]: False,
                        KEYS["useUprightPasses"]: True}
    again, restored = _panel(scene, settings)  # the next session
    restored.restore(again)
    assert (again.epochs, again.useTestTimeAugmentation, again.showResultIn3D) == (25, True, False)
    assert again.useUprightPasses is True


def test_the_old_order_loses_choices_on_the_same_node(scene):
    """The control: restoring one at a time with saving already on writes defaults over the others."""
    settings = {KEYS["epochs"]: "25", KEYS["useTestTimeAugmentation"]: "true", KEYS["showResultIn3D"]: "true"}
    fields, choices = _panel(scene, settings)
    choices.restored = True  # saving on before restoring, as the module did
    for name, key, default, convert in KEPT_CHOICES:
        setattr(fields, name, convert(settings.get(key, default)))
    assert fields.epochs == 25 and fields.useTestTimeAugmentation is False  # lost


def test_stored_values_are_converted_and_bounded():
    settings = {KEYS["epochs"]: "9999", KEYS["useTestTimeAugmentation"]: False, KEYS["showResultIn3D"]: "garbage"}

    class Target:
        pass

    target = Target()
    KeptChoices(lambda key, default: settings.get(key, default), settings.__setitem__).restore(target)
    assert (target.epochs, target.useTestTimeAugmentation, target.showResultIn3D) == (MAX_EPOCHS, False, False)
    KeptChoices(lambda key, default: {}.get(key, default), settings.__setitem__).restore(target)
    assert (target.epochs, target.useTestTimeAugmentation, target.showResultIn3D) == (0, False, False)


def test_the_widget_restores_through_kept_choices_and_saves_nowhere_else():
    text = (MODULE_DIR / "SAFNetSpine.py").read_text(encoding="utf-8")
    init = text[text.index("    def initializeParameterNode"):text.index("    def setParameterNode")]
    assert "self.choices.restore(self._parameterNode)" in init
    update = text[text.index("    def updateButtons"):text.index("    @property")]
    assert "self.choices.save(node)" in update and "setValue" not in update
    assert "MAX_EPOCHS" in text[text.index("class SAFNetSpineParameterNode"):text.index("class SAFNetSpineWidget")]


def _methods(tree: ast.Module) -> dict[str, ast.FunctionDef]:
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "LevelsSection")
    return {n.name: n for n in cls.body if isinstance(n, ast.FunctionDef)}


def _deferred(call: ast.Call) -> bool:
    return isinstance(call.func, ast.Attribute) and call.func.attr == "singleShot"


def _synchronous_calls(function: ast.FunctionDef) -> list[ast.Call]:
    """Calls made while ``function`` runs (not those inside ``qt.QTimer.singleShot(...)`` arguments)."""
    found, stack = [], [function]
    while stack:
        node = stack.pop()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Call):
                found.append(child)
                if _deferred(child):
                    stack.append(child.func)  # its arguments run later
                    continue
            stack.append(child)
    return found


def test_the_rename_point_is_removed_only_after_its_placement_event():
    """Issue 21, defect 2: vtkSlicerMarkupsWidget::PlacePoint uses the node after PointPositionDefinedEvent."""
    tree = ast.parse(LEVELS_SECTION.read_text(encoding="utf-8"))
    methods = _methods(tree)
    handlers = [c.args[1].attr for c in ast.walk(tree) if isinstance(c, ast.Call)
                and isinstance(c.func, ast.Attribute) and c.func.attr == "AddObserver"
                and "PointPositionDefinedEvent" in ast.unparse(c.args[0])]
    assert handlers == ["onPointPlaced"]
    reached, todo = set(), list(handlers)
    while todo:  # the handler and every method of the section it calls synchronously
        name = todo.pop()
        if name in reached or name not in methods:
            continue
        reached.add(name)
        for call in _synchronous_calls(methods[name]):
            if isinstance(call.func, ast.Attribute) and isinstance(call.func.value, ast.Name) \
                    and call.func.value.id == "self":
                todo.append(call.func.attr)
            called = call.func.attr if isinstance(call.func, ast.Attribute) else getattr(call.func, "id", "")
            assert called not in ("RemoveNode", "remove_node"), f"{name} removes a node inside the event"
    handler = methods["onPointPlaced"]
    deferred = [c for c in ast.walk(handler) if isinstance(c, ast.Call) and _deferred(c)]
    assert deferred and "remove_node" in ast.unparse(deferred[0])
    # The lambda reads its variables when the timer fires: none may be bound to something else by then.
    late = {n.id for n in ast.walk(deferred[0].args[1]) if isinstance(n, ast.Name)} - {"slicer", "remove_node"}
    bound = [t.id for a in ast.walk(handler) if isinstance(a, ast.Assign) for t in a.targets if isinstance(t, ast.Name)]
    assert late and all(bound.count(name) == 1 for name in late), late


def _markups_logic(scene):
    """The selection node Slicer's application logic keeps, and the real Markups logic watching the scene."""
    slicer = pytest.importorskip("slicer")
    selection = slicer.vtkMRMLSelectionNode()
    selection.SetSingletonTag("Singleton")
    scene.AddNode(selection)
    logic = slicer.vtkSlicerMarkupsLogic()
    logic.SetMRMLScene(scene)
    return selection, logic


def test_the_rename_point_list_is_made_active_with_set_active_list(scene):
    text = LEVELS_SECTION.read_text(encoding="utf-8")
    assert "SetActiveListID" not in text and "markups.SetActiveList(self._pointNode)" in text
    selection, logic = _markups_logic(scene)
    scene.StartState(scene.BatchProcessState)
    point = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "SAFNetSpine level point")
    scene.EndState(scene.BatchProcessState)
    logic.SetActiveList(point)
    assert selection.GetActivePlaceNodeID() == point.GetID()
    assert selection.GetActivePlaceNodeClassName() == "vtkMRMLMarkupsFiducialNode"
    assert hasattr(logic, "StartPlaceMode")


def test_measure_leaves_the_active_place_node_alone(scene):
    """Issue 21, defect 8: the Markups logic makes each markups node added outside a batch the active one."""
    sys.path.insert(0, str(REPO / "Testing" / "measurements"))
    from SAFNetSpineMRML.measurement_nodes import show_measurements
    from spine_model import SAGITTAL, lumbar_spine, rasterise

    from SAFNetSpineLib.measurements import measure_spine

    selection, _logic = _markups_logic(scene)
    mine = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "my points")
    assert selection.GetActivePlaceNodeID() == mine.GetID()  # the logic is listening
    measurements = measure_spine(rasterise(lumbar_spine({"L5": 20.0, "L4": 12.0, "L3": 5.0, "L2": 0.0, "L1": -5.0}),
                                           SAGITTAL, (3.0, 1.1, 1.1)))
    nodes = show_measurements(scene, measurements, "spine")
    assert nodes.height_lines and nodes.lordosis is not None
    assert selection.GetActivePlaceNodeID() == mine.GetID()
    assert selection.GetActivePlaceNodeClassName() == "vtkMRMLMarkupsFiducialNode"
    assert all(n.GetDisplayNode() is not None for n in nodes.height_lines)
