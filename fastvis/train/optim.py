"""The optimiser of a run: its parameters by role, each role with its own learning-rate scale.

:func:`parameter_roles` sorts a model's trained parameters into

- ``filters``: convolution weights;
- ``norm``: the shifts (and scales) of normalisation layers;
- ``whiten_bias``: the bias of FastNet's whitening layer, trained for the first
  ``--whiten-bias-epochs`` only (its lr decays to zero over them);
- ``head``: the weight of the last linear layer;
- ``other``: everything else (other linear layers, biases).

:class:`Optimizer` trains them with Nesterov SGD (``--optimizer sgd``), or the filters with
``torch.optim.Muon`` (their updates orthogonalised, the filters stored as matrices by
:func:`fastvis.models.layers.matrix_filters` and kept at a fixed norm, since a BatchNorm after
each makes their scale meaningless) and the rest with SGD (``--optimizer muon``). Every step
the learning rate of each group is the schedule's value at the run's progress times the group's
scale (``--norm-lr-scale`` for ``norm`` and ``whiten_bias``).

torch's Muon orthogonalises each update with a Newton-Schulz iteration in bfloat16: fast on a
GPU, but a CPU without native bf16 emulates it (fastnet's six filters: 2.7 s a step in bf16
against 0.07 s in float32 on a 2-core AVX2 CPU, as long as the forward and backward pass). With
``ns_dtype="float32"`` the same iteration runs in float32 instead (:func:`newton_schulz`), swapped
in for the step only; the rest of the step is torch's.
"""
from __future__ import annotations

import contextlib
import math
import warnings

import torch
import torch.nn as nn

from .. import InputError
from ..models.layers import MatrixConv2d, matrix_filters

__all__ = ["ROLES", "Optimizer", "newton_schulz", "parameter_roles"]

ROLES = ("filters", "norm", "whiten_bias", "head", "other")
_NORMS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)


def parameter_roles(model: nn.Module) -> dict[str, list[nn.Parameter]]:
    """The trained parameters of ``model`` by role (see the module's text); each parameter once."""
    whiten = getattr(model, "whiten", None)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    head = linears[-1] if linears else None
    roles: dict[str, list[nn.Parameter]] = {r: [] for r in ROLES}
    seen: set[int] = set()
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if not p.requires_grad or id(p) in seen:
                continue
            seen.add(id(p))
            if module is whiten and name == "bias":
                role = "whiten_bias"
            elif isinstance(module, _NORMS):
                role = "norm"
            elif module is head and name == "weight":
                role = "head"
            elif isinstance(module, (nn.Conv2d, MatrixConv2d)) and name == "weight" and module is not whiten:
                role = "filters"
            else:
                role = "other"
            roles[role].append(p)
    return roles


def newton_schulz(update: torch.Tensor, ns_coefficients: tuple[float, float, float], ns_steps: int,
                  eps: float) -> torch.Tensor:
    """The orthogonalised ``update`` (a matrix): torch's quintic Newton-Schulz iteration with its
    coefficients, computed in float32."""
    a, b, c = ns_coefficients
    x = update.float()
    wide = x.size(0) <= x.size(1)
    x = x if wide else x.T
    x = x / x.norm().clamp(min=eps)  # spectral norm at most 1
    for _ in range(ns_steps):
        gram = x @ x.T
        x = torch.addmm(x, torch.addmm(gram, gram, gram, beta=b, alpha=c), x, beta=a)
    return (x if wide else x.T).to(update.dtype)


_warned_ns = False


@contextlib.contextmanager
def _orthogonalise_in(dtype: str):
    """torch's Muon with its Newton-Schulz iteration in ``dtype`` ("float32": :func:`newton_schulz`;
    "bfloat16": torch's own) for the duration of the block."""
    global _warned_ns
    module = getattr(torch.optim, "_muon", None)
    if dtype == "bfloat16" or module is None or not hasattr(module, "_zeropower_via_newtonschulz"):
        if dtype != "bfloat16" and not _warned_ns:
            _warned_ns = True
            warnings.warn(f"torch {torch.__version__} has no torch.optim._muon._zeropower_via_newtonschulz: "
                          f"Muon orthogonalises in torch's precision (slow on a CPU without native bf16)")
        yield
        return
    own = module._zeropower_via_newtonschulz
    module._zeropower_via_newtonschulz = newton_schulz
    try:
        yield
    finally:
        module._zeropower_via_newtonschulz = own


class Optimizer:
    """SGD, or Muon for the filters and SGD for the rest, with one lr scale per parameter group.

    ``lr`` is the peak of the SGD groups (``head`` and ``other``); ``muon_lr`` the peak of the
    filters under Muon. :meth:`set_lr` sets every group from the schedule's factor. ``ns_dtype``:
    the precision of Muon's orthogonalisation, "float32" or "bfloat16" (torch's)."""

    def __init__(self, model: nn.Module, kind: str, lr: float, momentum: float, nesterov: bool, weight_decay: float,
                 norm_lr_scale: float, head_lr_scale: float, muon_lr: float, muon_momentum: float, ns_steps: int,
                 ns_dtype: str):
        if kind not in ("sgd", "muon"):
            raise InputError(f"--optimizer {kind}: expected sgd or muon")
        if ns_dtype not in ("float32", "bfloat16"):
            raise ValueError(f"ns_dtype {ns_dtype!r}: expected float32 or bfloat16")
        self.ns_dtype = ns_dtype
        self.kind, self.peak, self.muon_peak = kind, lr, muon_lr
        if kind == "muon":
            if not hasattr(torch.optim, "Muon"):
                raise InputError(f"--optimizer muon needs torch.optim.Muon (torch >= 2.9; this is {torch.__version__})")
            matrix_filters(model)
        roles = parameter_roles(model)
        vectors = [p for p in roles["other"] if p.ndim <= 1]  # biases: no decay
        groups = [
            {"role": "head", "params": roles["head"], "scale": head_lr_scale, "weight_decay": weight_decay},
            {"role": "other", "params": [p for p in roles["other"] if p.ndim > 1], "scale": 1.0,
             "weight_decay": weight_decay},
            {"role": "other", "params": vectors, "scale": 1.0, "weight_decay": 0.0},
            {"role": "norm", "params": roles["norm"], "scale": norm_lr_scale, "weight_decay": 0.0},
            {"role": "whiten_bias", "params": roles["whiten_bias"], "scale": norm_lr_scale, "weight_decay": 0.0},
        ]
        if kind == "sgd":
            groups.append({"role": "filters", "params": roles["filters"], "scale": 1.0, "weight_decay": weight_decay})
        groups = [g for g in groups if g["params"]]
        self.sgd = torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=nesterov and momentum > 0) \
            if groups else None
        self.muon = None
        if kind == "muon" and roles["filters"]:
            self.muon = torch.optim.Muon(roles["filters"], lr=muon_lr, momentum=muon_momentum, nesterov=True,
                                         weight_decay=0.0, ns_steps=ns_steps)
            self.filter_norms = [math.sqrt(p.shape[0]) for p in roles["filters"]]
        self.optimizers = [o for o in (self.sgd, self.muon) if o is not None]

    @property
    def param_groups(self) -> list[dict]:
        return [g for o in self.optimizers for g in o.param_groups]

    def set_lr(self, factor: float, whiten_factor: float = 1.0) -> float:
        """Every group's lr for the schedule's ``factor`` (0..1 of the peak); the whitening bias
        also by ``whiten_factor`` (zero once its epochs are over). Returns the SGD groups' lr."""
        if self.sgd is not None:
            for g in self.sgd.param_groups:
                g["lr"] = self.peak * factor * g["scale"] * (whiten_factor if g["role"] == "whiten_bias" else 1.0)
        if self.muon is not None:
            for g in self.muon.param_groups:
                g["lr"] = self.muon_peak * factor
        return self.peak * factor

    def zero_grad(self, set_to_none: bool = True) -> None:
        for o in self.optimizers:
            o.zero_grad(set_to_none=set_to_none)

    @torch.no_grad()
    def step(self) -> None:
        if self.sgd is not None:
            self.sgd.step()
        if self.muon is not None:
            with _orthogonalise_in(self.ns_dtype):
                self.muon.step()
            # filters at a fixed norm: the BatchNorm after each ignores their scale
            for p, norm in zip(self.muon.param_groups[0]["params"], self.filter_norms):
                p.mul_(norm / p.norm().clamp(min=1e-12))

    def state_dict(self) -> dict:
        return {"sgd": self.sgd.state_dict() if self.sgd is not None else None,
                "muon": self.muon.state_dict() if self.muon is not None else None}

    def load_state_dict(self, state: dict) -> None:
        if "sgd" not in state:  # a checkpoint of a plain torch.optim.SGD
            state = {"sgd": state, "muon": None}
        kind = "muon" if state.get("muon") is not None else "sgd"
        if (state.get("muon") is None) != (self.muon is None):
            raise InputError(f"the checkpoint was trained with another optimizer (--optimizer {kind}, this run "
                             f"{self.kind})")
        for name in ("sgd", "muon"):
            if getattr(self, name) is not None:
                getattr(self, name).load_state_dict(state[name])
