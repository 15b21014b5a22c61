"""Cross-validation report: ``metrics.csv``, ``report.md`` and a Dice box plot per structure.

Means follow the paper: over (case, structure) pairs, for all 19 structures and for the
paper's 17 (all but T9 and T9/T10). Unannotated or undefined values (NaN) are left out.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from SAFNetSpineLib.evaluation.metrics import METRICS
from SAFNetSpineLib.io.files import write_atomically
from SAFNetSpineLib.labels import DISC_IDS, FOREGROUND_IDS, PAPER_17_IDS, STRUCTURES, VERTEBRA_IDS

CSV_FILE = "metrics.csv"
REPORT_FILE = "report.md"
BOXPLOT_FILE = "dice_boxplot.png"
COLUMNS = ("fold", "case", "label_id", "structure", *METRICS)


def _values(rows, metric: str, label_ids=None) -> np.ndarray:
    wanted = None if label_ids is None else set(label_ids)
    picked = (r.get(metric, float("nan")) for r in rows if wanted is None or r["label_id"] in wanted)
    return np.array([v for v in picked if v is not None and math.isfinite(v)], dtype=np.float64)


def mean_std(rows: Sequence[dict], metric: str = "dice", label_ids=None) -> tuple[float, float, int]:
    """(mean, standard deviation, count) of a metric over rows; NaN, NaN, 0 when empty."""
    values = _values(rows, metric, label_ids)
    if not len(values):
        return float("nan"), float("nan"), 0
    return float(values.mean()), float(values.std()), int(len(values))


def _cell(rows, metric, label_ids=None, scale=1.0, digits=3) -> str:
    mean, std, count = mean_std(rows, metric, label_ids)
    if not count:
        return "-"
    return f"{mean * scale:.{digits}f} ± {std * scale:.{digits}f}"


def _named(rows, label_ids=None) -> str:
    """Levels named correctly, as "k/n" over structures present in the reference."""
    values = _values(rows, "level_ok", label_ids)
    return f"{int(values.sum())}/{len(values)}" if len(values) else "-"


def _naming_lines(rows: Sequence[dict]) -> list[str]:
    """Confident/uncertain cases, and confident cases with a level named wrong (the silent errors)."""
    cases: dict[tuple, list[dict]] = {}
    for row in rows:
        if row.get("naming_status"):
            cases.setdefault((row.get("fold"), row["case"]), []).append(row)
    if not cases:
        return []
    statuses = [part[0]["naming_status"] for part in cases.values()]
    confident = [part for part in cases.values() if part[0]["naming_status"] == "confident"]
    silent = sum(1 for part in confident if any(r.get("level_ok") == 0.0 for r in part))
    out_of_range = statuses.count("out_of_range")
    beyond = f", {out_of_range} out of range (no names)" if out_of_range else ""
    return ["", f"Level names: {len(confident)} cases confident, "
                f"{len(cases) - len(confident) - out_of_range} uncertain{beyond}; "
                f"{silent} confident case(s) with a level named wrong."]


def _write_csv(rows: Sequence[dict], path: Path) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f"{row[k]:.6g}" if isinstance(row.get(k), float) else row.get(k)) for k in COLUMNS})
    write_atomically(path, lambda temp: temp.write_text(buffer.getvalue(), encoding="utf-8"))


def _boxplot(rows: Sequence[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ids = [i for i in FOREGROUND_IDS if len(_values(rows, "dice", [i]))]
    figure, axes = plt.subplots(figsize=(max(4.0, 0.55 * len(ids) + 1.5), 4.0))
    if ids:
        data = [_values(rows, "dice", [i]) for i in ids]
        parts = axes.boxplot(data, patch_artist=True, widths=0.6)
        for patch, label_id in zip(parts["boxes"], ids, strict=True):
            patch.set_facecolor(STRUCTURES[label_id].color_float)
        axes.set_xticks(range(1, len(ids) + 1), [STRUCTURES[i].short_name for i in ids], rotation=60)
    axes.set_ylim(0.0, 1.0)
    axes.set_ylabel("Dice (test cases)")
    axes.set_title("Cross-validation Dice per structure")
    axes.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    write_atomically(path, lambda temp: figure.savefig(temp, dpi=110))
    plt.close(figure)


def write_report(rows: Sequence[dict], out_dir: str | Path, title: str = "Cross-validation",
                 notes: Sequence[str] = ()) -> Path:
    """Write ``metrics.csv``, ``report.md`` and ``dice_boxplot.png`` for scored test cases.

    Args:
        rows: Rows of :func:`~SAFNetSpineLib.evaluation.evaluate_model`, each with a "fold" key.
        out_dir: Destination folder.
        title: Report heading.
        notes: Extra lines (command, config) placed under the heading.

    Returns:
        Path of report.md.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _write_csv(rows, out / CSV_FILE)
    _boxplot(rows, out / BOXPLOT_FILE)
    folds = sorted({r["fold"] for r in rows})
    lines = [f"# {title}", ""]
    lines += [*notes, ""] if notes else []
    lines += [f"{len({(r['fold'], r['case']) for r in rows})} test cases in {len(folds)} folds. Mean ± std over "
              "(case, structure) pairs of annotated structures; distances in mm.", "",
              "## Per fold", "",
              "| fold | cases | Dice (19) | Dice (paper 17) | MSD mm (17) | HD95 mm (17) | levels named correctly |",
              "|---|---|---|---|---|---|---|"]
    for fold in folds:
        part = [r for r in rows if r["fold"] == fold]
        lines.append(f"| {fold} | {len({r['case'] for r in part})} | {_cell(part, 'dice')} | "
                     f"{_cell(part, 'dice', PAPER_17_IDS)} | {_cell(part, 'msd_mm', PAPER_17_IDS, digits=2)} | "
                     f"{_cell(part, 'hd95_mm', PAPER_17_IDS, digits=2)} | {_named(part)} |")
    fold_means = [mean_std([r for r in rows if r["fold"] == f], "dice", PAPER_17_IDS)[0] for f in folds]
    fold_means = [m for m in fold_means if math.isfinite(m)]
    lines.append(f"| all | {len({(r['fold'], r['case']) for r in rows})} | {_cell(rows, 'dice')} | "
                 f"{_cell(rows, 'dice', PAPER_17_IDS)} | {_cell(rows, 'msd_mm', PAPER_17_IDS, digits=2)} | "
                 f"{_cell(rows, 'hd95_mm', PAPER_17_IDS, digits=2)} | {_named(rows)} |")
    if fold_means:
        lines += ["", f"Mean of the fold means (paper 17): {np.mean(fold_means):.3f} ± {np.std(fold_means):.3f}."]
    lines += _naming_lines(rows)
    lines += ["", "## By kind", "", "| structures | n | Dice | MSD mm | HD95 mm | named correctly |",
              "|---|---|---|---|---|---|"]
    for name, ids in (("vertebrae", VERTEBRA_IDS), ("discs", DISC_IDS), ("paper 17", PAPER_17_IDS),
                      ("all 19", FOREGROUND_IDS)):
        lines.append(f"| {name} | {mean_std(rows, 'dice', ids)[2]} | {_cell(rows, 'dice', ids)} | "
                     f"{_cell(rows, 'msd_mm', ids, digits=2)} | {_cell(rows, 'hd95_mm', ids, digits=2)} | "
                     f"{_named(rows, ids)} |")
    lines += ["", "## Per structure", "", "| id | structure | n | Dice | MSD mm | HD95 mm | named correctly |",
              "|---|---|---|---|---|---|---|"]
    for label_id in FOREGROUND_IDS:
        part = [r for r in rows if r["label_id"] == label_id]
        count = mean_std(part, "dice")[2]
        if count:
            lines.append(f"| {label_id} | {STRUCTURES[label_id].short_name} | {count} | {_cell(part, 'dice')} | "
                         f"{_cell(part, 'msd_mm', digits=2)} | {_cell(part, 'hd95_mm', digits=2)} | {_named(part)} |")
    lines += ["", f"![Dice per structure]({BOXPLOT_FILE})", ""]
    path = out / REPORT_FILE
    text = "\n".join(lines)
    write_atomically(path, lambda temp: temp.write_text(text, encoding="utf-8"))
    return path
