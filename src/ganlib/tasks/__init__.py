"""What is trained: the [`Task`][ganlib.tasks.Task] contract and the built-in tasks.

``Trainer(task)`` trains any task; ``Trainer(gan, loss=...)`` builds the
[`AdversarialTask`][ganlib.tasks.AdversarialTask] of a GAN pair;
[`SemiSupervisedTask`][ganlib.tasks.SemiSupervisedTask] trains a classifier from a few
labels, whose product [`load_classifier`][ganlib.tasks.load_classifier] reads back.
Translation: [`Pix2PixTask`][ganlib.tasks.Pix2PixTask] (paired) and
[`CycleGANTask`][ganlib.tasks.CycleGANTask] (unpaired).
"""

from .adversarial import AdversarialTask
from .base import GridInputs, Task, TaskContext
from .cyclegan import CycleGANTask
from .pix2pix import LinearDecay, Pix2PixTask, TranslationTask
from .pool import ImagePool
from .semi_supervised import SemiSupervisedTask, load_classifier

__all__ = [
    "AdversarialTask",
    "CycleGANTask",
    "GridInputs",
    "ImagePool",
    "LinearDecay",
    "Pix2PixTask",
    "SemiSupervisedTask",
    "Task",
    "TaskContext",
    "TranslationTask",
    "load_classifier",
]
