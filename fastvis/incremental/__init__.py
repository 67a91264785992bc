"""Class-incremental learning: the classes arrive in tasks, and the model must classify all the
classes seen so far (``fastvis-train --incremental B0-10 --cl-method icarl --memory 2000``).

:mod:`.protocol` (tasks and class orders), :mod:`.memory` (herding exemplars),
:mod:`.metrics` (the accuracy matrix and what the field computes from it), :mod:`.runner`
(training with the trainer's parts), :mod:`.study` (the same protocol over class orders and
seeds), :mod:`.report` (figures and the one-page report).
"""
from .memory import Memory, herding
from .metrics import order_study, summarize
from .protocol import class_order, parse_protocol, task_classes

__all__ = ["Memory", "class_order", "herding", "order_study", "parse_protocol", "summarize", "task_classes"]
