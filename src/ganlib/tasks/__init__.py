"""What is trained: the [`Task`][ganlib.tasks.Task] contract and the built-in tasks.

``Trainer(task)`` trains any task; ``Trainer(gan, loss=...)`` builds the
[`AdversarialTask`][ganlib.tasks.AdversarialTask] of a GAN pair;
[`SemiSupervisedTask`][ganlib.tasks.SemiSupervisedTask] trains a classifier from a few
labels, whose product [`load_classifier`][ganlib.tasks.load_classifier] reads back.
"""

from .adversarial import AdversarialTask
from .base import GridInputs, Task, TaskContext
from .semi_supervised import SemiSupervisedTask, load_classifier

__all__ = [
    "AdversarialTask",
    "GridInputs",
    "SemiSupervisedTask",
    "Task",
    "TaskContext",
    "load_classifier",
]
