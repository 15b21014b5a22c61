"""Reading the project's JSON files (manifests, pointers, summaries) as data, with one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

from SAFNetSpineLib.errors import SpineInputError


def read_json_object(path: str | Path, what: str) -> dict:
    """The JSON object stored in ``path``.

    Args:
        path: The file.
        what: What the file is, for the messages ("dataset.json", "active-model pointer").

    Returns:
        The decoded object.

    Raises:
        SpineInputError: naming ``path``, if it cannot be read or decoded, or holds
            something other than a JSON object.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise SpineInputError(path, f"unreadable {what} ({error})") from None
    if not isinstance(data, dict):
        raise SpineInputError(path, f"{what} is not a JSON object")
    return data
