"""The user's work folder: where corrected cases and fine-tuned models live, and clearing them.

The stores inside are append-only (a case or a model version is never overwritten).
Clearing is the one way to delete, and it removes a whole store folder on purpose, after
the panel asked; :func:`clear_store` refuses any other folder.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class WorkFolders:
    """Where the module keeps user data (a writable folder, not the extension's).

    Attributes:
        root: The work folder chosen in the panel.
    """

    root: Path

    @property
    def cases(self) -> Path:
        """The corrected-case store (``CaseStore``)."""
        return self.root / "corrected-cases"

    @property
    def models(self) -> Path:
        """Fine-tuned model versions and the active pointer (``ModelStore``)."""
        return self.root / "models"

    def store(self, which: str) -> Path:
        """``"cases"`` or ``"models"`` -> that store's folder.

        Raises:
            ValueError: for any other name.
        """
        if which not in ("cases", "models"):
            raise ValueError(f"unknown store {which!r}: expected 'cases' or 'models'")
        return self.cases if which == "cases" else self.models


def count_stored_cases(store: str | Path) -> int:
    """Complete cases in a ``CaseStore`` folder (``cases/<id>/case.json``), without importing torch.

    Temporary folders of an unfinished add (``.tmp-*``) do not count.
    """
    cases = Path(store) / "cases"
    if not cases.is_dir():
        return 0
    return sum(1 for c in cases.iterdir() if not c.name.startswith(".") and (c / "case.json").is_file())


def count_model_versions(models: str | Path) -> int:
    """Fine-tuned version folders (``NAME-vN/model.json``) in a models folder."""
    folder = Path(models)
    if not folder.is_dir():
        return 0
    return sum(1 for v in folder.iterdir() if not v.name.startswith(".") and (v / "model.json").is_file())


def clear_store(folders: WorkFolders, which: str) -> int:
    """Delete one store folder with everything in it; returns the number of entries it held.

    Only ``folders.cases`` or ``folders.models`` can be removed, and only when it is a real
    folder (not a link) directly inside the work folder, so a mistyped work folder cannot
    delete anything else.

    Raises:
        ValueError: for another store name, or a folder that is a link or lies elsewhere.
    """
    folder = folders.store(which)
    if not folder.exists():
        return 0
    if folder.is_symlink() or not folder.is_dir() or folder.resolve().parent != folders.root.resolve():
        raise ValueError(f"{folder} is not a store folder of the work folder {folders.root}; not deleted")
    held = count_stored_cases(folder) if which == "cases" else count_model_versions(folder)
    shutil.rmtree(folder)
    return held
