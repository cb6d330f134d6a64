"""What is trained: the [`Task`][ganlib.tasks.Task] contract and the built-in tasks.

``Trainer(task)`` trains any task; ``Trainer(gan, loss=...)`` builds the
[`AdversarialTask`][ganlib.tasks.AdversarialTask] of a GAN pair.
"""

from .adversarial import AdversarialTask
from .base import GridInputs, Task, TaskContext

__all__ = ["AdversarialTask", "GridInputs", "Task", "TaskContext"]
