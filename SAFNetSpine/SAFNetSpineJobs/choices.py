"""The panel choices kept between Slicer sessions (epochs, test-time augmentation, show in 3D).

Every change of the parameter node saves the choices. Restoring sets them one at a time,
and each of those changes fires that save; so all are read before the first is set, and
nothing is saved until the last is set (otherwise a restored epoch count would write the
other two back at their defaults before they were read).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

#: Largest epoch count the panel offers (the parameter node's ``WithinRange``).
MAX_EPOCHS = 500


def _epochs(value: Any) -> int:
    try:
        return min(max(int(value), 0), MAX_EPOCHS)
    except (TypeError, ValueError):
        return 0


def _flag(value: Any) -> bool:
    # QSettings gives back "true"/"false" strings on some platforms and bools on others.
    return value if isinstance(value, bool) else str(value).strip().lower() in ("true", "1", "yes")


#: (parameter-node field, settings key, default, converter) of each kept choice.
KEPT_CHOICES = (
    ("epochs", "SAFNetSpine/Epochs", 0, _epochs),
    ("useTestTimeAugmentation", "SAFNetSpine/TestTimeAugmentation", False, _flag),
    ("useUprightPasses", "SAFNetSpine/UprightPasses", False, _flag),
    ("showResultIn3D", "SAFNetSpine/ShowResultIn3D", False, _flag),
)


@dataclass
class KeptChoices:
    """Restores the choices once, then saves them on every change.

    Args:
        read: ``read(key, default)`` -> the stored value (``slicer.util.settingsValue``).
        write: ``write(key, value)`` (``qt.QSettings().setValue``).
    """

    read: Callable[[str, Any], Any]
    write: Callable[[str, Any], None]
    restored: bool = False

    def restore(self, target: Any) -> None:
        """Set the stored choices on ``target`` (the parameter node); all are read first."""
        values = [(name, convert(self.read(key, default))) for name, key, default, convert in KEPT_CHOICES]
        for name, value in values:
            setattr(target, name, value)
        self.restored = True

    def save(self, target: Any) -> None:
        """Store ``target``'s choices (nothing before :meth:`restore` has finished)."""
        if not self.restored:
            return
        for name, key, _default, _convert in KEPT_CHOICES:
            self.write(key, getattr(target, name))
