"""In-Slicer dependency checks (no installing here) and the offscreen panel screenshot."""

from __future__ import annotations

import importlib.metadata

import numpy as np
import pytest
from SAFNetSpineMRML import requirements


def test_read_requirements_skips_comments_options_and_blanks(tmp_path):
    path = tmp_path / "requirements.txt"
    path.write_text("# comment\n\nmonai>=1.4  # inline\n--index-url https://example.org\nslicerio\n")
    assert requirements.read_requirements(path) == ["monai>=1.4", "slicerio"]


def test_is_satisfied_compares_installed_versions(tmp_path):
    numpy_version = importlib.metadata.version("numpy")
    assert requirements.is_satisfied(f"numpy=={numpy_version}")
    assert not requirements.is_satisfied("numpy>=9999")
    assert not requirements.is_satisfied("a-package-that-is-not-installed-here>=1")
    assert requirements.is_satisfied('numpy>=9999; sys_platform == "no-such-platform"')  # marker: not needed here
    path = tmp_path / "requirements.txt"
    path.write_text(f"numpy=={numpy_version}\nnumpy>=9999\n")
    assert requirements.missing_requirements(path) == ["numpy>=9999"]


def test_install_question_lists_everything_once():
    text = requirements.install_question(True, ["monai>=1.4", "slicerio>=1.1"])
    assert "PyTorch extension" in text and "CUDA build" in text
    assert "monai>=1.4" in text and "slicerio>=1.1" in text and text.strip().endswith("Install now?")
    assert "PyTorch" not in requirements.install_question(False, ["monai>=1.4"])
    assert "pip install --no-index" in requirements.offline_message("pypi.org")


def test_can_reach_fails_fast_for_a_closed_port():
    assert requirements.can_reach("127.0.0.1", 9, timeout_s=1.0) is False


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
    icon = screenshot.draw_icon(tmp_path / "icon.png", size=64)
    assert QtGui.QImage(str(icon)).size().width() == 64
