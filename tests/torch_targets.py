"""Softmax written with torch ops, as users write it: correct and wrong custom backwards."""

from __future__ import annotations

from typing import Any

import torch


def torch_softmax(t: torch.Tensor) -> torch.Tensor:
    return torch.softmax(t, dim=1)


class GoodSoftmax(torch.autograd.Function):
    """A hand-written backward around a forward kernel: y * (g - <g, y>)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        y = torch.softmax(x, dim=1)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> torch.Tensor:
        (y,) = ctx.saved_tensors
        dx: torch.Tensor = y * (g - (g * y).sum(dim=1, keepdim=True))
        return dx


class DiagonalSoftmax(torch.autograd.Function):
    """The Jacobian diagonal alone: y * (1 - y) * g."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        y = torch.softmax(x, dim=1)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> torch.Tensor:
        (y,) = ctx.saved_tensors
        dx: torch.Tensor = y * (1 - y) * g
        return dx


class SoftmaxLayer(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(x, dim=-1)


class NeedsArguments(torch.nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(x, dim=self.dim)


def torch_log_softmax(t: torch.Tensor) -> torch.Tensor:
    return torch.log_softmax(t, dim=1)


def numpy_in_tensor_out(x: Any) -> torch.Tensor:
    """numpy in, a torch tensor out: read without autodiff, its forward alone is checked."""
    return torch.softmax(torch.from_numpy(x), dim=1)
