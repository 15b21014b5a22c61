"""What a models folder holds, as data: a version's description and its ``finetune.json``.

Everything here is read from files a user may have edited or damaged, so each reader
checks types and names the file in a one-line :class:`SpineInputError`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from SAFNetSpineLib.errors import SpineInputError
from SAFNetSpineLib.json_files import read_json_object

#: Statuses a ``finetune.json`` may record.
SUMMARY_STATUSES = ("promoted", "candidate")
#: Sidecar in a version folder: the fine-tuning summary, including "status".
SUMMARY_FILE = "finetune.json"


@dataclass(frozen=True)
class ModelVersion:
    """One selectable set of weights.

    Attributes:
        name: Folder name ("safnet-v2"), or the bundled folder's name.
        folder: The weights folder.
        status: "bundled", "promoted", "candidate", "imported" (a folder copied in by hand),
            "invalid" (unreadable manifest or summary; ``summary["reason"]`` says why) or
            "missing" (``active.json`` names it but its folder is gone).
        active: True for the version segmentation uses now.
        version: The manifest's version string.
        parent_version: Version it was fine-tuned from (None for trained from scratch).
        created: ISO time from the manifest.
        architecture: Registry name of the network.
        metrics: The manifest's metrics.
        summary: The fine-tuning summary (``finetune.json``), or None.
    """

    name: str
    folder: Path
    status: str
    active: bool
    version: str
    parent_version: str | None
    created: str
    architecture: str
    metrics: dict = field(default_factory=dict)
    summary: dict | None = None

    def to_dict(self) -> dict:
        """JSON-able form (``models list --json``)."""
        summary = self.summary or {}
        return {
            "name": self.name,
            "path": str(self.folder),
            "status": self.status,
            "active": self.active,
            "version": self.version,
            "parent_version": self.parent_version,
            "created": self.created,
            "architecture": self.architecture,
            "metrics": self.metrics,
            "dice_before": summary.get("dice_before"),
            "dice_after": summary.get("dice_after"),
            "reason": summary.get("reason"),
        }


def version_number(name: str, base: str) -> int | None:
    """N for a folder called ``<base>-vN``, else None."""
    match = re.fullmatch(re.escape(base) + r"-v(\d+)", name)
    return int(match.group(1)) if match else None


def read_summary(path: Path) -> dict:
    """Read and check a version's ``finetune.json``.

    Returns:
        The summary, with "status" one of :data:`SUMMARY_STATUSES` (default "candidate").

    Raises:
        SpineInputError: naming the file, if it is unreadable, not an object, or has a
            wrongly typed "status", "reason", "dice_before" or "dice_after".
    """
    summary = read_json_object(path, "fine-tuning summary")
    summary.setdefault("status", "candidate")
    if summary["status"] not in SUMMARY_STATUSES:
        raise SpineInputError(path, f"fine-tuning summary has status {summary['status']!r}, "
                              f"not one of {', '.join(SUMMARY_STATUSES)}")
    if not isinstance(summary.get("reason", ""), str):
        raise SpineInputError(path, "fine-tuning summary's 'reason' is not text")
    for key in ("dice_before", "dice_after"):
        value = summary.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise SpineInputError(path, f"fine-tuning summary's '{key}' is not a number")
    return summary


def natural_key(name: str) -> list:
    """Sort "safnet-v10" after "safnet-v9"."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]
