"""Model versions as ``models list --json`` reports them, and the rows of the panel's table.

Every value shown comes from what the library recorded: ``model.json`` (created, trained
on, metrics) and, for fine-tuned versions, ``finetune.json`` (Dice before and after, why
it was or was not promoted).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

#: Column titles of the model table, in order.
TABLE_COLUMNS = ("Version", "Status", "Created", "Trained on", "Val. Dice", "Active")


@dataclass(frozen=True)
class ModelChoice:
    """One model version as offered in the model selector and the table.

    Attributes:
        name: Version name ("safnet-default", "safnet-v2").
        folder: Its weights folder.
        status: "bundled", "promoted", "candidate", "imported", "invalid".
        active: True for the version segmentation uses by default.
        dice_before: Validation Dice of its parent on its validation cases (fine-tuned only).
        dice_after: Its own validation Dice on the same cases (fine-tuned only).
        created: ISO time from the manifest ("" when unknown).
        parent_version: The version it was fine-tuned from, or None.
        metrics: The manifest's metrics (training figures as the library wrote them).
        reason: Why it was (not) promoted, or why it is invalid.
    """

    name: str
    folder: Path
    status: str
    active: bool
    dice_before: float | None = None
    dice_after: float | None = None
    created: str = ""
    parent_version: str | None = None
    metrics: dict | None = None
    reason: str | None = None

    @property
    def label(self) -> str:
        """Text of the selector entry, e.g. ``"safnet-v2 (promoted, Dice 0.812) - active"``."""
        details = [self.status]
        if self.dice_after is not None:
            details.append(f"Dice {self.dice_after:.3f}")
        text = f"{self.name} ({', '.join(details)})"
        return f"{text} - active" if self.active else text

    @property
    def training_data(self) -> str:
        """What it was trained on, e.g. ``"12 corrected (3 val.)"`` or ``"dev. set (8 val.)"``."""
        metrics = self.metrics or {}
        train, val = metrics.get("train_cases"), metrics.get("val_cases")
        val_count = len(val) if isinstance(val, list) else val
        if isinstance(train, int):
            text = f"{train} corrected"
            return f"{text} ({val_count} val.)" if isinstance(val_count, int) else text
        if self.status == "bundled":
            return f"dev. set ({val_count} val.)" if isinstance(val_count, int) else "dev. set"
        return ""

    @property
    def validation_dice(self) -> str:
        """``"0.812 -> 0.820"`` for a fine-tuned version, ``"0.819"`` for a trained one, else ""."""
        if self.dice_before is not None and self.dice_after is not None:
            return f"{self.dice_before:.3f} -> {self.dice_after:.3f}"
        value = (self.metrics or {}).get("val_dice")
        return f"{value:.3f}" if isinstance(value, (int, float)) else ""

    def table_row(self) -> tuple[str, ...]:
        """The row of the model table, in :data:`TABLE_COLUMNS` order."""
        return (self.name, self.status, self.created[:10], self.training_data, self.validation_dice,
                "yes" if self.active else "")

    @property
    def tooltip(self) -> str:
        """Parent, reason and folder, for the row's tooltip."""
        lines = [f"Folder: {self.folder}"]
        if self.parent_version:
            lines.insert(0, f"Fine-tuned from {self.parent_version}")
        if self.reason:
            lines.append(self.reason)
        return "\n".join(lines)


def parse_models_list(output: str) -> tuple[str | None, list[ModelChoice]]:
    """(active name, versions) from the output of ``models list --json``.

    Raises:
        ValueError: if the output holds no such JSON object.
    """
    start = output.find("{")
    if start < 0:
        raise ValueError("no JSON in the output of 'models list'")
    record, _end = json.JSONDecoder().raw_decode(output[start:])  # warnings may follow the JSON
    versions = [
        ModelChoice(
            name=str(v["name"]), folder=Path(v["path"]), status=str(v.get("status", "")),
            active=bool(v.get("active")), dice_before=v.get("dice_before"), dice_after=v.get("dice_after"),
            created=str(v.get("created") or ""), parent_version=v.get("parent_version"),
            metrics=v.get("metrics") if isinstance(v.get("metrics"), dict) else None, reason=v.get("reason"),
        )
        for v in record.get("versions", [])
    ]
    return record.get("active"), versions
