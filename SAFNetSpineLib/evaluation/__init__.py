"""Evaluation: per-structure Dice and surface distances, model evaluation on cases, reports."""

from SAFNetSpineLib.evaluation.evaluate import evaluate_model, mean_metric, predict_case
from SAFNetSpineLib.evaluation.metrics import dice_per_structure, score_case, surface_distances

__all__ = [
    "dice_per_structure",
    "evaluate_model",
    "mean_metric",
    "predict_case",
    "score_case",
    "surface_distances",
]
