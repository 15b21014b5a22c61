"""Static checks of the Slicer module: the .ui, the names the Widget uses, compiling, packaging, imports."""

from __future__ import annotations

import ast
import py_compile
import re
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from SAFNetSpineMRML.requirements import read_requirements

REPO = Path(__file__).resolve().parents[2]
MODULE_DIR = REPO / "SAFNetSpine"
MODULE_FILE = MODULE_DIR / "SAFNetSpine.py"
UI_FILE = MODULE_DIR / "Resources" / "UI" / "SAFNetSpine.ui"
#: Slicer/CTK classes the .ui may use; everything else must be a plain Qt class.
SLICER_WIDGETS = {"qMRMLWidget", "qMRMLNodeComboBox", "ctkCollapsibleButton", "ctkPathLineEdit"}


def _ui_widgets() -> dict[str, ET.Element]:
    root = ET.parse(UI_FILE).getroot()
    names = [w.get("name") for w in root.iter("widget")]
    assert len(names) == len(set(names)), "duplicate widget names in the .ui"
    return {w.get("name"): w for w in root.iter("widget")}


def _module_tree() -> ast.Module:
    return ast.parse(MODULE_FILE.read_text(encoding="utf-8"))


def test_ui_parses_and_declares_its_custom_widgets():
    root = ET.parse(UI_FILE).getroot()
    assert root.tag == "ui" and root.find("widget").get("class") == "qMRMLWidget"
    declared = {c.findtext("class") for c in root.iter("customwidget")}
    used = {w.get("class") for w in root.iter("widget")}
    assert used - declared <= {c for c in used if c.startswith("Q")}
    assert declared == used & SLICER_WIDGETS
    # every MRML selector gets the scene from the top-level widget
    selectors = {n for n, w in _ui_widgets().items() if w.get("class") == "qMRMLNodeComboBox"}
    receivers = {c.findtext("receiver") for c in root.iter("connection")
                 if c.findtext("signal") == "mrmlSceneChanged(vtkMRMLScene*)"}
    assert selectors and selectors == receivers


def test_every_ui_name_the_widget_uses_exists():
    used = {node.attr for node in ast.walk(_module_tree())
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute)
            and node.value.attr == "ui" and isinstance(node.value.value, ast.Name) and node.value.value.id == "self"}
    assert len(used) > 20
    missing = used - set(_ui_widgets())
    assert not missing, f"SAFNetSpine.py uses widgets the .ui does not have: {sorted(missing)}"


def test_parameter_node_fields_match_the_ui_bindings():
    tree = _module_tree()
    wrapper = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "SAFNetSpineParameterNode")
    assert any(isinstance(d, ast.Name) and d.id == "parameterNodeWrapper" for d in wrapper.decorator_list)
    fields = {s.target.id for s in wrapper.body if isinstance(s, ast.AnnAssign)}
    bound = {}
    for name, widget in _ui_widgets().items():
        for prop in widget.findall("property"):
            if prop.get("name") == "SlicerParameterName":
                assert prop.get("stdset") == "0", f"{name}: SlicerParameterName must be a dynamic property"
                bound[prop.findtext("string")] = widget.get("class")
    assert set(bound) == fields
    assert bound["epochs"] == "QSpinBox" and bound["useTestTimeAugmentation"] == "QCheckBox"


def test_module_has_the_scripted_module_classes():
    classes = {n.name: [b.id for b in n.bases if isinstance(b, ast.Name)]
               for n in _module_tree().body if isinstance(n, ast.ClassDef)}
    assert classes["SAFNetSpine"] == ["ScriptedLoadableModule"]
    assert classes["SAFNetSpineWidget"][0] == "ScriptedLoadableModuleWidget"
    assert classes["SAFNetSpineLogic"] == ["ScriptedLoadableModuleLogic"]
    assert classes["SAFNetSpineTest"] == ["ScriptedLoadableModuleTest"]
    text = MODULE_FILE.read_text(encoding="utf-8")
    assert "scene aware fusion network" in text and "BMC Neuroscience 24:49" in text
    assert 'slicer.app.connect("startupCompleted()", registerSampleData)' in text


@pytest.mark.parametrize("path", sorted(MODULE_DIR.rglob("*.py")), ids=lambda p: p.name)
def test_module_files_compile(path, tmp_path):
    py_compile.compile(str(path), cfile=str(tmp_path / "out.pyc"), doraise=True)


def _imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            roots |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_library_never_imports_slicer_qt_or_vtk():
    files = sorted((REPO / "SAFNetSpineLib").rglob("*.py"))
    assert len(files) > 10
    forbidden = {"slicer", "qt", "vtk", "ctk", "PythonQt", "PySide6", "PyQt5", "PyQt6", "slicer_core", "SAFNetSpineMRML"}
    offenders = {str(p.relative_to(REPO)): sorted(_imported_roots(p) & forbidden) for p in files}
    assert not {k: v for k, v in offenders.items() if v}


def test_mrml_package_has_no_qt():
    for path in sorted((MODULE_DIR / "SAFNetSpineMRML").rglob("*.py")):
        assert not _imported_roots(path) & {"qt", "ctk", "PythonQt", "PySide6"}, path.name


def test_module_cmake_lists_every_script_and_resource():
    cmake = (MODULE_DIR / "CMakeLists.txt").read_text()
    listed = {line.strip().replace("${MODULE_NAME}", "SAFNetSpine") for line in cmake.splitlines()
              if line.strip().endswith((".py", ".ui", ".png", ".txt")) and not line.strip().startswith("#")}
    scripts = {str(p.relative_to(MODULE_DIR)) for p in MODULE_DIR.rglob("*.py")}
    assert scripts <= listed, f"not installed: {sorted(scripts - listed)}"
    for entry in listed:
        assert (MODULE_DIR / entry).is_file(), entry
    assert "WITH_GENERIC_TESTS" in cmake and "slicer_add_python_unittest(SCRIPT ${MODULE_NAME}.py)" in cmake


def test_extension_cmake_metadata_and_library_install():
    cmake = (REPO / "CMakeLists.txt").read_text()
    for variable in ("EXTENSION_HOMEPAGE", "EXTENSION_CATEGORY", "EXTENSION_CONTRIBUTORS", "EXTENSION_DESCRIPTION",
                     "EXTENSION_ICONURL", "EXTENSION_SCREENSHOTURLS", "EXTENSION_DEPENDS"):
        assert re.search(rf"set\({variable} \"[^\"]+\"", cmake), variable
    assert 'set(EXTENSION_CATEGORY "Segmentation")' in cmake and 'set(EXTENSION_DEPENDS "PyTorch")' in cmake
    for needed in ("find_package(Slicer REQUIRED)", "add_subdirectory(SAFNetSpine)", "SAFNetSpineLib/*.py",
                   "Resources/Models/", "Resources/SampleData/", "Slicer_EXTENSION_GENERATE_CONFIG",
                   "Slicer_EXTENSION_CPACK", "Slicer_QTSCRIPTEDMODULES_LIB_DIR"):
        assert needed in cmake, needed
    for url_variable in ("EXTENSION_ICONURL", "EXTENSION_SCREENSHOTURLS"):
        relative = re.search(rf"set\({url_variable} \"\$\{{SAFNetSpine_REPOSITORY\}}/raw/main/([^\"]+)\"", cmake).group(1)
        assert (REPO / relative).is_file(), relative


def test_in_slicer_requirements_cover_the_library_dependencies():
    from packaging.requirements import Requirement

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    needed = {Requirement(r).name.lower() for r in project["dependencies"]}

    listed = {Requirement(r).name.lower() for r in read_requirements(MODULE_DIR / "Resources" / "requirements.txt")}
    # numpy and SimpleITK ship with Slicer; matplotlib only draws the CLI's optional overlay PNG
    assert needed - listed == {"numpy", "simpleitk", "matplotlib"}
    assert "torch" not in listed  # comes from the PyTorch extension with the right CUDA build
