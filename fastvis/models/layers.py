"""Convolutions whose filters are stored as one matrix, for optimisers that work on matrices.

Muon (``torch.optim.Muon``) orthogonalises the update of a 2-D parameter. A convolution's
filters are a 4-D tensor ``(out, in, kh, kw)``; :class:`MatrixConv2d` keeps them as the matrix
``(out, in * kh * kw)`` and views it as filters in its forward pass, so the optimiser takes the
parameter as it is. Checkpoints keep the ordinary 4-D shape: a state dict saved from either kind
loads into the other, so a model trained with Muon loads as a teacher or in evaluation like any.
"""
from __future__ import annotations

import torch
import torch.nn as nn

__all__ = ["MatrixConv2d", "matrix_filters"]


class MatrixConv2d(nn.Conv2d):
    """An ``nn.Conv2d`` whose ``weight`` is the matrix ``(out, in/groups * kh * kw)``."""

    @classmethod
    def from_conv(cls, conv: nn.Conv2d) -> "MatrixConv2d":
        new = cls.__new__(cls)
        nn.Module.__init__(new)
        new.__dict__.update({k: v for k, v in conv.__dict__.items()
                             if k not in ("_parameters", "_buffers", "_modules")})
        new._parameters, new._buffers, new._modules = {}, dict(conv._buffers), dict(conv._modules)
        w = conv.weight
        new.filter_shape = tuple(w.shape)
        new.weight = nn.Parameter(w.detach().reshape(w.shape[0], -1).clone(), requires_grad=w.requires_grad)
        new.bias = conv.bias
        return new

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.weight.view(self.filter_shape), self.bias)

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        super()._save_to_state_dict(destination, prefix, keep_vars)
        w = destination[prefix + "weight"]
        destination[prefix + "weight"] = w.view(self.filter_shape) if keep_vars else w.reshape(self.filter_shape)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        key = prefix + "weight"
        if key in state_dict and state_dict[key].shape == self.filter_shape:
            state_dict[key] = state_dict[key].reshape(self.weight.shape)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


def matrix_filters(model: nn.Module) -> list[nn.Parameter]:
    """Turn every trained ``nn.Conv2d`` of ``model`` (in place) into a :class:`MatrixConv2d`;
    returns their filter matrices. Frozen convolutions (FastNet's whitening) stay as they are."""
    out = []
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.Conv2d and child.weight.requires_grad:
                new = MatrixConv2d.from_conv(child)
                setattr(parent, name, new)
                out.append(new.weight)
            elif isinstance(child, MatrixConv2d):
                out.append(child.weight)
    return out
