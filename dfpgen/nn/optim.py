"""SGD with momentum and weight decay on FP32 master weights, and learning-rate schedules."""

from __future__ import annotations

import math

import numpy as np

from dfpgen.codegen.launch import default_threads
from dfpgen.errors import DFPGenError
from dfpgen.runtime import pointwise

SCHEDULES = ("constant", "step", "cosine")


class SGD:
    """v = momentum * v + (grad + weight_decay * w); w -= lr * v (decay skipped for BN and biases)."""

    def __init__(self, params: list, lr: float = 0.1, momentum: float = 0.9, weight_decay: float = 5e-4,
                 threads: int | None = None):
        self.params, self.lr, self.momentum, self.weight_decay = params, lr, momentum, weight_decay
        self.threads = threads
        self.velocity = [np.zeros_like(p.data) for p in params]

    def zero_grad(self) -> None:
        """Clear every parameter's gradient."""
        for p in self.params:
            p.grad[...] = 0

    def step(self, lr: float | None = None) -> None:
        """Apply one update with learning rate `lr` (default: the optimizer's)."""
        lr = self.lr if lr is None else lr
        threads = self.threads or default_threads()
        for p, v in zip(self.params, self.velocity):
            p.maxabs = pointwise.sgd_update(p.data, p.grad, v, lr, self.momentum,
                                            self.weight_decay if p.decay else 0.0, threads)

    def state(self) -> dict:
        """Arrays to checkpoint."""
        return {f"velocity/{p.name}": v for p, v in zip(self.params, self.velocity)}

    def load_state(self, state: dict) -> None:
        """Restore from `state()`."""
        for p, v in zip(self.params, self.velocity):
            v[...] = state[f"velocity/{p.name}"]


def learning_rate(schedule: str, base: float, epoch: float, epochs: int) -> float:
    """The learning rate at a (fractional) epoch: constant; step (x0.1 at 50% and 75%); cosine to 0."""
    if schedule == "constant":
        return base
    if schedule == "step":
        return base * (0.1 ** ((epoch >= 0.5 * epochs) + (epoch >= 0.75 * epochs)))
    if schedule == "cosine":
        return 0.5 * base * (1 + math.cos(math.pi * min(epoch / max(epochs, 1), 1.0)))
    raise DFPGenError(f"schedule={schedule!r}: must be one of {', '.join(SCHEDULES)}")
