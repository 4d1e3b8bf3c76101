"""Softmax cross-entropy written with torch ops, as users write it: a per-batch
``torch.autograd.Function`` (correct, and with the /N forgotten), a per-row one for
``--reduction none``, and losses for ``--autodiff torch``."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F


class CrossEntropyFunction(torch.autograd.Function):
    """forward(ctx, logits, labels) -> the mean loss; backward(ctx, g) -> (dlogits, None)."""

    @staticmethod
    def forward(ctx: Any, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        log_probs = torch.log_softmax(logits, dim=1)
        target = F.one_hot(labels, logits.shape[1]).to(logits.dtype)
        ctx.save_for_backward(log_probs, target)
        return -(target * log_probs).sum() / logits.shape[0]

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor, None]:
        log_probs, target = ctx.saved_tensors
        return grad_output * (log_probs.exp() - target) / log_probs.shape[0], None


class NotAveragedFunction(CrossEntropyFunction):
    """Wrong: the mean loss, the backward of the sum (the /N forgotten)."""

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor, None]:
        log_probs, target = ctx.saved_tensors
        return grad_output * (log_probs.exp() - target), None


class RowCrossEntropy(torch.autograd.Function):
    """Per-row losses (N,) with an upstream vector of N (``--reduction none``)."""

    @staticmethod
    def forward(ctx: Any, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        log_probs = torch.log_softmax(logits, dim=1)
        ctx.save_for_backward(log_probs, labels)
        return -log_probs.gather(1, labels[:, None])[:, 0]

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor, None]:
        log_probs, labels = ctx.saved_tensors
        dx = log_probs.exp()
        dx[torch.arange(dx.shape[0]), labels] -= 1
        return grad_output[:, None] * dx, None


def log_softmax_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """For ``--autodiff torch``: the mean of -log_softmax at the label."""
    log_probs = torch.log_softmax(logits, dim=1)
    return -log_probs[torch.arange(logits.shape[0]), labels].mean()


def log_of_softmax_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Wrong for ``--autodiff torch``: log of the softmax, -inf once a probability underflows."""
    probs = torch.softmax(logits, dim=1)
    return -probs[torch.arange(logits.shape[0]), labels].log().mean()
