"""What the Slicer Extensions Index checks before it accepts the extension (issue 13, defects 2 and 4).

The raw-text checks of the index's ``scripts/check_description_files.py`` are re-implemented
here with its own regular expressions: it reads ``CMakeLists.txt`` as text (CMake variables
are not expanded), so the icon and screenshot URLs must be literal http(s) URLs. The
description file ``SAFNetSpine.json`` is checked against the catalog-entry schema's keys.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
import urllib.parse
from pathlib import Path

import pytest
from SAFNetSpineJobs.compatibility import MINIMUM_PYTHON, MINIMUM_SLICER, slicer_problem

REPO = Path(__file__).resolve().parents[2]
CMAKE = (REPO / "CMakeLists.txt").read_text(encoding="utf-8")
DESCRIPTION = json.loads((REPO / "SAFNetSpine.json").read_text(encoding="utf-8"))
RAW_PREFIX = "https://raw.githubusercontent.com/SAFNetSpine/SlicerSAFNetSpine/main/"
#: Keys of the index's catalog-entry schema (v1.0.x, additionalProperties false).
SCHEMA_KEYS = {"$schema", "category", "scm_url", "scm_revision", "scm_type", "build_dependencies",
               "build_subdirectory", "enabled", "tier"}
#: The index's LICENSE file names, in its order.
LICENSE_NAMES = ["LICENSE", "LICENCE", "License.txt", "license.txt", "LICENSE.txt", "COPYING", "COPYING.txt"]


def test_project_name_matches_the_description_file():
    names = re.findall(r'project\s*\(\s*([^\s\)\n\r]+)', CMAKE, re.IGNORECASE | re.MULTILINE)
    assert names and names[0].strip().strip('"') == "SAFNetSpine" == Path("SAFNetSpine.json").stem


def test_icon_and_screenshot_urls_are_literal_and_point_at_files_in_the_repository():
    icons = re.findall(r'set\s*\(EXTENSION_ICONURL\s*"([^"]+)"[ ]*\)', CMAKE, re.IGNORECASE | re.MULTILINE)
    shots = re.findall(r'set\s*\(EXTENSION_SCREENSHOTURLS\s*"([^"]+)"\)', CMAKE, re.IGNORECASE | re.MULTILINE)
    assert len(icons) == 1 and len(shots) == 1
    urls = [icons[0].strip(), *shots[0].split()]
    for url in urls:
        assert url.startswith("https://") and "${" not in url, url
        assert url.startswith(RAW_PREFIX), url
        local = REPO / url[len(RAW_PREFIX):]
        assert local.is_file() and local.suffix == ".png", local
        assert local.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"  # the index insists on an image
    homepage = re.search(r'set\(EXTENSION_HOMEPAGE "([^"]+)"\)', CMAKE).group(1)
    assert homepage.startswith("https://github.com/SAFNetSpine/SlicerSAFNetSpine")


def test_description_file_passes_the_index_checks():
    assert set(DESCRIPTION) <= SCHEMA_KEYS and {"$schema", "category", "scm_url"} <= set(DESCRIPTION)
    # Issue 21, defect 8: the schema version most index entries use (Slicer/Schemas/...-v1.0.1.json).
    assert DESCRIPTION["$schema"] == ("https://raw.githubusercontent.com/Slicer/Slicer/main/Schemas/"
                                      "slicer-extension-catalog-entry-schema-v1.0.1.json#")
    assert DESCRIPTION["category"] == "Segmentation" == re.search(r'set\(EXTENSION_CATEGORY "([^"]+)"\)', CMAKE).group(1)
    url = urllib.parse.urlsplit(DESCRIPTION["scm_url"])
    assert url.scheme in ("git", "https")
    repository = os.path.splitext(url.path.split("/")[-1])[0]
    assert "slicer" in repository.lower()  # check_git_repository_name
    assert CMAKE.count(repository) >= 3  # homepage, icon and screenshot live in that repository
    # The PyTorch extension must be built first (TotalSegmentator.json does the same).
    depends = re.search(r'set\(EXTENSION_DEPENDS "([^"]+)"\)', CMAKE).group(1).split()
    assert DESCRIPTION["build_dependencies"] == depends == ["PyTorch"]


def test_license_file_is_the_apache_license_pyproject_declares():
    found = [name for name in LICENSE_NAMES if (REPO / name).is_file()]
    assert found and found[0] == "LICENSE"
    text = (REPO / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in text and "Version 2.0, January 2004" in text and "END OF TERMS AND CONDITIONS" in text
    assert len(text) > 10_000  # the full text, not a pointer to it
    assert tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["license"]["text"] == "Apache-2.0"


def test_slicer_docs_say_what_the_submission_needs_and_the_minimum_slicer():
    docs = (REPO / "docs" / "SLICER.md").read_text(encoding="utf-8")
    assert "SlicerSAFNetSpine" in docs and "3d-slicer-extension" in docs and "SAFNetSpine.json" in docs
    minimum = "{}.{}".format(*MINIMUM_SLICER)
    assert f"Slicer {minimum} or later" in docs
    assert f'set(SAFNetSpine_MINIMUM_SLICER_VERSION "{minimum}")' in CMAKE


def test_an_older_slicer_gets_a_sentence_not_a_load_failure():
    slicer = pytest.importorskip("slicer")
    assert slicer_problem((5, 12), (3, 11), slicer.vtkMRMLColorNode) is None  # slicer-core 5.12 has it

    class ColorNode:
        def SetTerminology(self):  # noqa: N802 (Slicer's name)
            pass

    assert slicer_problem((5, 10), (3, 12), ColorNode) is None
    assert slicer_problem((5, 12), MINIMUM_PYTHON, ColorNode) is None
    old = slicer_problem((5, 8), (3, 9), ColorNode)
    assert "5.10 or later" in old and "5.8" in old
    assert "Python 3.11" in slicer_problem((5, 10), (3, 9), ColorNode)
    assert "SetTerminology" in slicer_problem((5, 10), (3, 12), object)
