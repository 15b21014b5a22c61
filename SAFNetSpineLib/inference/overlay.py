"""Mid-sagittal overlay PNG: the image with the label map in the label table's colours."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from SAFNetSpineLib.atomic import write_file_atomic
from SAFNetSpineLib.labels import STRUCTURES, SUPERIOR_TO_INFERIOR_IDS
from SAFNetSpineLib.preprocessing.orientation import reorient_to_network_axes
from SAFNetSpineLib.volume import Volume


def naming_caption(naming: dict | None) -> str | None:
    """One line for a picture: how far the level names go and where the count starts."""
    if not naming:
        return None
    if naming.get("status") == "out_of_range":
        return "no level names: out of range (no lumbar or lower thoracic spine found)"
    return f"level names {naming.get('status', '?')}, {naming.get('counted_from', 'no anchor')}"


def write_overlay_png(image: Volume, labels: Volume, path: str | Path, naming: dict | None = None) -> Path:
    """Write the middle sagittal slice with labels (superior up, anterior left) to ``path``.

    Slices are taken in the image's own voxels (reoriented, never resampled), so the
    picture shows exactly what was written to the label map. Written atomically.

    Args:
        image: The segmented image.
        labels: Its label map, same grid.
        path: Destination .png.
        naming: The summary's ``naming``; its status and where the count starts ("counted
            from S1", "counted from your L3", "no anchor") are written under the title.

    Returns:
        The path written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    image_dha = reorient_to_network_axes(image)
    labels_dha = reorient_to_network_axes(labels)
    lr_slices = image_dha.shape[0]
    # The middle slice by position, or the slice with most labelled voxels when it is empty.
    counts = (labels_dha.array > 0).reshape(lr_slices, -1).sum(axis=1)
    mid = lr_slices // 2 if counts[lr_slices // 2] > 0 or counts.max() == 0 else int(np.argmax(counts))
    gray = image_dha.array[mid].astype(np.float32)
    lab = labels_dha.array[mid].astype(np.int64)

    low, high = np.percentile(gray, [1, 99.5])
    gray = np.clip((gray - low) / max(high - low, 1e-6), 0, 1)
    colours = np.array([s.color for s in STRUCTURES], dtype=np.float32) / 255.0
    rgb = np.repeat(gray[..., None], 3, axis=-1)
    mask = lab > 0
    rgb[mask] = 0.45 * rgb[mask] + 0.55 * colours[lab[mask]]

    spacing_h, spacing_w = image_dha.spacing[1], image_dha.spacing[2]
    height_mm, width_mm = gray.shape[0] * spacing_h, gray.shape[1] * spacing_w
    fig_h = 7.0
    fig, ax = plt.subplots(figsize=(fig_h * width_mm / height_mm + 2.2, fig_h), dpi=110)
    ax.imshow(rgb, aspect=spacing_h / spacing_w, interpolation="nearest")
    caption = naming_caption(naming)
    title = f"mid-sagittal slice {mid + 1}/{lr_slices}" + (f"\n{caption}" if caption else "")
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("anterior  \u2192  posterior")
    ax.set_ylabel("inferior  \u2190  superior")
    ax.set_xticks([])
    ax.set_yticks([])
    present = set(np.unique(labels.array).tolist())
    handles = [Patch(color=colours[i], label=STRUCTURES[i].short_name) for i in SUPERIOR_TO_INFERIOR_IDS if i in present]
    if handles:
        ax.legend(handles=handles, loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8, frameon=False)
    fig.tight_layout()
    try:
        return write_file_atomic(Path(path), lambda temp: fig.savefig(temp, format="png"), suffix=".png")
    finally:
        plt.close(fig)
