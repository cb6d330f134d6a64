"""Callbacks: hooks into the Trainer, and the built-in ones.

Callbacks run in the order given; checkpointing
([`ModelCheckpoint`][ganlib.callbacks.ModelCheckpoint])
runs after all the others.
"""

from .base import Callback, CallbackList, Network
from .checkpoint import ModelCheckpoint
from .classification import ClassificationError
from .early_stopping import EarlyStopping
from .ema import EMA
from .evaluation import Evaluation
from .guard import NaNGuard, NonFiniteLossError
from .logging import MetricsLogger, TensorBoardLogger
from .plot import LossCurve
from .progress import ProgressBar
from .report import RunReport
from .samples import SampleGrid

__all__ = [
    "EMA",
    "Callback",
    "CallbackList",
    "ClassificationError",
    "EarlyStopping",
    "Evaluation",
    "LossCurve",
    "MetricsLogger",
    "ModelCheckpoint",
    "NaNGuard",
    "Network",
    "NonFiniteLossError",
    "ProgressBar",
    "RunReport",
    "SampleGrid",
    "TensorBoardLogger",
]
