"""A smooth curve through the centres of the spine's pieces, in the patient frame (LPS mm).

The curve runs along the centres' principal axis (turned to point superior), with
polynomial offsets across it (degree 0 to 3 as the number of centres allows), and goes
on straight for 30 mm past the first and last centre. Points are placed on it by their
nearest sample (every millimetre): an arc position, the tangent there, and the
distance from the curve.
"""

from __future__ import annotations

import numpy as np


class SpineCurve:
    """x(t) = mean + t u + polynomial offsets(t), sampled every millimetre, with arc length.

    Args:
        centres: Piece centres (N, 3), LPS mm, N >= 1.
    """

    def __init__(self, centres: np.ndarray):
        self.mean = centres.mean(axis=0)
        self.axis = _principal_axis(centres)
        t = (centres - self.mean) @ self.axis
        offsets = centres - self.mean - t[:, None] * self.axis[None, :]
        degree = 0 if len(t) < 3 else 1 if len(t) < 5 else 2 if len(t) < 9 else 3
        span = max(float(np.ptp(t)), 1.0) if len(t) else 1.0
        self.coefficients = [np.polyfit(t / span, offsets[:, c], degree) for c in range(3)] if degree else None
        self.span = span
        # Beyond the first and last centre the curve goes on straight along the axis, 30 mm each way.
        first, last = float(t.min()), float(t.max())
        samples_t = np.arange(first - 30.0, last + 31.0, 1.0)
        inside = np.clip(samples_t, first, last)
        self.samples = self.at(inside) + (samples_t - inside)[:, None] * self.axis[None, :]
        steps = np.linalg.norm(np.diff(self.samples, axis=0), axis=1)
        self.arc = np.concatenate([[0.0], np.cumsum(steps)])
        tangents = np.gradient(self.samples, axis=0)
        self.tangents = tangents / np.maximum(np.linalg.norm(tangents, axis=1, keepdims=True), 1e-9)

    def at(self, t: np.ndarray) -> np.ndarray:
        """Curve points (M, 3) at axis positions t (M,), mm."""
        points = self.mean[None, :] + t[:, None] * self.axis[None, :]
        if self.coefficients is not None:
            points = points + np.stack([np.polyval(c, t / self.span) for c in self.coefficients], axis=1)
        return points

    def project(self, point: np.ndarray) -> tuple[float, np.ndarray, float]:
        """(arc position mm, unit tangent (3,), distance from the curve mm) of an LPS point."""
        distances = np.linalg.norm(self.samples - point[None, :], axis=1)
        n = int(np.argmin(distances))
        tangent = self.tangents[n]
        along = float((point - self.samples[n]) @ tangent)
        off = float(np.linalg.norm(point - self.samples[n] - along * tangent))
        return float(self.arc[n]) + along, tangent, off


def _principal_axis(centres: np.ndarray) -> np.ndarray:
    """Main direction of the centres (LPS), pointing superior; the patient's superior axis if undefined."""
    superior = np.array([0.0, 0.0, 1.0])
    if len(centres) < 2 or float(np.ptp(centres, axis=0).max()) < 1e-6:
        return superior
    _, _, vt = np.linalg.svd(centres - centres.mean(axis=0), full_matrices=False)
    axis = vt[0]
    # A lumbar spine runs within ~45 degrees of superior; a flat first axis means too few pieces.
    if abs(axis @ superior) < 0.5:
        return superior
    return axis if axis @ superior > 0 else -axis
