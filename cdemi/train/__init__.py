"""Classifier training from labels and KD on the full training set (teachers, reference students)."""
from ..params import TrainSettings
from .evaluate import evaluate
from .loop import TrainResult, train_classifier
from .stage import train_run

__all__ = ["TrainResult", "TrainSettings", "evaluate", "train_classifier", "train_run"]
