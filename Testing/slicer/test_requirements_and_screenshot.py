"""In-Slicer dependency checks and the install flow (issue 13, defect 6; issue 21, defects 4 and 7), and the
offscreen panel screenshot."""

from __future__ import annotations

import ast
import importlib.metadata
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from SAFNetSpineJobs import requirements
from SAFNetSpineJobs.install import (
    ALREADY_INSTALLING,
    RESTART_AFTER_TORCH,
    Installer,
    InstallRuns,
    install_dependencies,
)
from SAFNetSpineJobs.requirements import PackageStatus

REPO = Path(__file__).resolve().parents[2]
MODULE_DIR = REPO / "SAFNetSpine"


def test_read_requirements_skips_comments_options_and_blanks(tmp_path):
    path = tmp_path / "requirements.txt"
    path.write_text("# comment\n\nmonai>=1.4  # inline\n--index-url https://example.org\nslicerio\n")
    assert requirements.read_requirements(path) == ["monai>=1.4", "slicerio"]


def test_package_status_reports_the_installed_version_and_the_requirement(tmp_path):
    numpy_version = importlib.metadata.version("numpy")
    ok = requirements.package_status(f"numpy=={numpy_version}")
    assert ok.satisfied and ok.installed == numpy_version and ok.text == f"numpy {numpy_version}"
    old = requirements.package_status("numpy>=9999")
    assert not old.satisfied and old.installed == numpy_version and old.text == f"numpy {numpy_version} (needs >=9999)"
    absent = requirements.package_status("a-package-that-is-not-installed-here>=1")
    assert absent.installed is None and not absent.satisfied and absent.text.endswith("not installed")
    assert requirements.package_status('numpy>=9999; sys_platform == "no-such-platform"').satisfied
    path = tmp_path / "requirements.txt"
    path.write_text(f"numpy=={numpy_version}\nnumpy>=9999\n")
    assert requirements.missing_requirements(path) == ["numpy>=9999"]


def test_torch_is_checked_against_the_version_the_library_needs():
    statuses = requirements.dependency_status(MODULE_DIR / "Resources" / "requirements.txt")
    torch = statuses[0]
    assert torch.name == "torch" and torch.requirement == f"torch{requirements.TORCH_REQUIREMENT}"
    installed = importlib.metadata.version("torch")
    assert torch.installed == installed and torch.satisfied  # this venv's torch 2.x meets >=2.1
    too_new = requirements.package_status("torch>=99")
    assert not too_new.satisfied and too_new.installed == installed  # "present" is not enough
    assert [s.name for s in statuses[1:]] == ["monai", "safetensors", "slicerio", "scipy"]


def test_save_case_needs_only_what_slicer_ships():
    statuses = [PackageStatus("torch>=2.1", "torch", None, False), PackageStatus("monai>=1.4", "monai", None, False)]
    assert requirements.unmet(statuses, "save_case") == []
    assert [s.name for s in requirements.unmet(statuses, "segment")] == ["torch", "monai"]


def test_saving_a_case_works_with_torch_and_monai_absent(tmp_path):
    """The save path in a Python where torch, monai, safetensors and slicerio cannot be imported."""
    script = textwrap.dedent(f"""
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("torch", "monai", "safetensors", "slicerio", "scipy"):
                    raise ImportError("blocked: " + name)
        sys.meta_path.insert(0, Block())
        sys.path[:0] = [{str(REPO)!r}, {str(MODULE_DIR)!r}]
        import numpy as np
        from SAFNetSpineLib.stores.case_store import CaseStore
        from SAFNetSpineLib.volume import Volume
        image = Volume(np.random.default_rng(0).normal(size=(6, 8, 10)).astype(np.float32), (1, 1, 3), (0, 0, 0), np.eye(3))
        labels = image.with_array(np.full(image.shape, 3, np.uint8), is_label=True)
        print(CaseStore({str(tmp_path / "store")!r}).add(image, labels, [3], "manual"))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "store" / "cases" / done.stdout.strip() / "case.json").is_file()


def test_pip_arguments_really_update():
    statuses = [PackageStatus("torch>=2.1", "torch", "2.0.1", False), PackageStatus("monai>=1.4", "monai", "1.3.0", False),
                PackageStatus("safetensors>=0.4", "safetensors", "0.4.5", True)]
    assert requirements.pip_arguments(statuses) == ["--upgrade", "monai>=1.4"]
    assert requirements.pip_arguments(statuses, upgrade_all=True) == ["--upgrade", "monai>=1.4", "safetensors>=0.4"]
    assert requirements.pip_arguments(statuses[2:]) == []
    question = requirements.install_question(statuses)
    assert "update 2.0.1 to torch>=2.1" in question and "monai>=1.4: update from 1.3.0" in question
    assert "safetensors" not in question and question.strip().endswith("Continue?")


class Recorder:
    """The Slicer side of installing, as plain callables that record what they were asked."""

    def __init__(self, confirm=True, child_fails=False, pip_fails=False, during_pip=None):
        self.calls = []
        self.constraints = None
        self._confirm, self._child_fails, self._pip_fails = confirm, child_fails, pip_fails
        self._during_pip = during_pip
        self.installer = Installer(self.confirm, self.error, self.info, self.run, self.pip_install, "PythonSlicer")

    def confirm(self, question):
        self.calls.append(("confirm", question))
        return self._confirm

    def error(self, message, details):
        self.calls.append(("error", message))

    def info(self, message):
        self.calls.append(("info", message))

    def run(self, args):
        self.calls.append(("run", args))
        if self._child_fails:
            raise subprocess.CalledProcessError(1, args)

    def pip_install(self, args):
        self.calls.append(("pip", args))
        self.constraints = (Path(args[1]), Path(args[1]).read_text()) if args[:1] == ["-c"] else None
        if self._during_pip is not None:
            self._during_pip()  # what a click handled while pip's output is shown does
        if self._pip_fails:
            raise subprocess.CalledProcessError(1, "pip install")


def test_install_flow_asks_once_then_updates_torch_and_pip_packages():
    statuses = [PackageStatus("torch>=2.1", "torch", "2.0.1", False), PackageStatus("monai>=1.4", "monai", None, False)]
    run = Recorder()
    assert install_dependencies(statuses, run.installer) is True
    assert [c[0] for c in run.calls] == ["confirm", "run", "run", "run", "pip", "info"]
    assert [c[1] for c in run.calls[1:4]] == requirements.torch_install_commands("PythonSlicer")
    assert run.calls[2][1][1:] == ["-m", "light_the_torch", "install", f"torch{requirements.TORCH_REQUIREMENT}"]
    assert run.calls[4][1][0] == "-c" and run.calls[4][1][2:] == ["--upgrade", "monai>=1.4"]
    assert run.calls[5] == ("info", RESTART_AFTER_TORCH)


def test_pip_never_replaces_torch_nor_slicers_own_packages():
    """Issue 21, defect 4: a constraints file holds the installed torch, numpy, scipy and SimpleITK."""
    statuses = requirements.dependency_status(MODULE_DIR / "Resources" / "requirements.txt")
    statuses = [PackageStatus("monai>=1.4", "monai", "1.3.0", False) if s.name == "monai" else s for s in statuses]
    run = Recorder()
    assert install_dependencies(statuses, run.installer, ask=False) is True
    path, text = run.constraints
    assert not path.exists()  # removed after pip ran
    pinned = dict(line.split("==") for line in text.splitlines())
    for name in ("torch", "numpy", "scipy", "SimpleITK"):
        assert pinned[name] == importlib.metadata.version(name), name
    assert "monai" not in pinned and "slicerio" not in pinned


def test_upgrade_all_leaves_slicers_scipy_alone_unless_it_is_too_old():
    statuses = [PackageStatus("torch>=2.1", "torch", "2.5.0", True), PackageStatus("monai>=1.4", "monai", "1.4.0", True),
                PackageStatus("scipy>=1.11", "scipy", "1.13.1", True)]
    assert requirements.pip_arguments(statuses, upgrade_all=True) == ["--upgrade", "monai>=1.4"]
    assert "scipy" not in requirements.install_question(statuses, upgrade_all=True)
    old_scipy = [*statuses[:2], PackageStatus("scipy>=1.11", "scipy", "1.10.0", False)]
    assert requirements.pip_arguments(old_scipy, upgrade_all=True) == ["--upgrade", "scipy>=1.11", "monai>=1.4"]
    held = [PackageStatus("scipy>=1.11", "scipy", "1.10.0", False), PackageStatus("torch>=2.1", "torch", "2.5.0", True),
            PackageStatus("monai", "monai", "1.4.0", True)]
    assert requirements.constraints_text(held) == "torch==2.5.0\n"  # a too-old scipy is not held; monai never


def test_torch_is_installed_and_checked_in_children_never_imported_here():
    """Issue 21, defect 4: PyTorchUtilsLogic.installTorch ends with ``import torch`` inside Slicer."""
    commands = requirements.torch_install_commands("PythonSlicer")
    assert commands[0] == ["PythonSlicer", "-m", "pip", "install", requirements.LIGHT_THE_TORCH]
    assert commands[-1][:2] == ["PythonSlicer", "-c"] and "import torch" in commands[-1][2]
    for path in MODULE_DIR.rglob("*.py"):
        assert "installTorch(" not in path.read_text(encoding="utf-8"), path.name


def test_install_flow_declines_and_fails_with_a_message():
    statuses = [PackageStatus("torch>=2.1", "torch", None, False), PackageStatus("monai>=1.4", "monai", None, False)]
    declined = Recorder(confirm=False)
    assert install_dependencies(statuses, declined.installer) is None and len(declined.calls) == 1
    no_torch = Recorder(child_fails=True)
    assert install_dependencies(statuses, no_torch.installer) is False
    assert [c[0] for c in no_torch.calls] == ["confirm", "run", "error"]  # pip never ran
    offline = Recorder(pip_fails=True)
    assert install_dependencies(statuses, offline.installer) is False
    assert offline.calls[-1] == ("error", requirements.offline_message()) and "--no-index" in offline.calls[-1][1]
    assert not offline.constraints[0].exists()
    nothing = Recorder()
    done = [PackageStatus("torch>=2.1", "torch", "2.13.0", True)]
    assert install_dependencies(done, nothing.installer) is True and nothing.calls == []


def test_a_second_click_while_pip_runs_starts_no_second_install():
    """Issue 21, defect 7: the running install refuses a nested one, and the panel hears when to grey out."""
    statuses = [PackageStatus("torch>=2.1", "torch", "2.13.0", True), PackageStatus("monai>=1.4", "monai", None, False)]
    seen = []
    runs = InstallRuns()
    runs.on_change = lambda: seen.append(runs.running)
    nested = []
    run = Recorder(during_pip=lambda: nested.append(runs.install(statuses, run.installer, ask=False)))
    assert runs.install(statuses, run.installer, ask=False) is True
    assert nested == [False] and [c[0] for c in run.calls].count("pip") == 1
    assert ("error", ALREADY_INSTALLING) in run.calls
    assert seen == [True, False] and not runs.running and not runs.declined
    assert runs.install(statuses, Recorder(confirm=False).installer) is False and runs.declined


def test_segment_finetune_and_install_are_greyed_out_while_installing():
    module = (MODULE_DIR / "SAFNetSpine.py").read_text(encoding="utf-8")
    update = module[module.index("    def updateButtons"):module.index("    @property")]
    assert "installing = self.logic.installs.running" in update
    for button in ("segmentButton", "startFinetuneButton"):
        line = next(line for line in update.splitlines() if f"self.ui.{button}.enabled" in line)
        assert "not installing" in line, line
    assert "self.setupSection.updateButtons(installing)" in update
    assert "self.logic.installs.on_change = self.updateButtons" in module
    setup = (MODULE_DIR / "SAFNetSpineWidgets" / "setup_section.py").read_text(encoding="utf-8")
    assert "self.ui.upgradeDependenciesButton.enabled = not installing" in setup


def test_no_network_probe_blocks_the_gui():
    for path in (MODULE_DIR / "SAFNetSpineJobs").glob("*.py"):
        roots = {a.name.split(".")[0] for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Import)
                 for a in n.names}
        assert "socket" not in roots and "urllib" not in roots, path.name


def test_panel_screenshot_renders_every_section(tmp_path):
    pytest.importorskip("PySide6")
    import render_panel_screenshot as screenshot
    from PySide6 import QtGui

    path = screenshot.render(tmp_path / "panel.png")
    image = QtGui.QImage(str(path))
    assert image.width() >= 380 and image.height() >= 700
    pixels = np.array([[image.pixelColor(x, y).lightness() for x in range(0, image.width(), 7)]
                       for y in range(0, image.height(), 7)])
    assert pixels.std() > 10  # drawn widgets, not a blank canvas
    rewritten = screenshot.rewrite_ui(screenshot.UI_FILE).decode()
    assert "ctkCollapsibleButton" not in rewritten and "qMRMLNodeComboBox" not in rewritten
    assert "qMRMLSegmentationShow3DButton" not in rewritten
    icon = screenshot.draw_icon(tmp_path / "icon.png", size=64)
    assert QtGui.QImage(str(icon)).size().width() == 64
