r"""
Training an energy-based model: a small :class:`Trainer` (and :func:`fit`) around a
loss such as :class:`~pyro_langevin.ebm.ContrastiveDivergence`, with a progress bar,
periodic checkpoints, exact resume, and a clear stop when training diverges.

**Checkpoints** are files written by :func:`torch.save` (atomically: a temporary file,
then a rename) holding a dict:

- ``"format"``: ``"pyro_langevin.ebm/1"``;
- ``"energy_config"``: the energy's ``config`` (rebuild it with
  :func:`~pyro_langevin.ebm.energy_from_config`), ``"model"``: its ``state_dict``;
- ``"metadata"``: a user dict (e.g. the data's ``value_range``);
- for a :class:`Trainer` also ``"iteration"``, ``"optimizer"``, ``"scheduler"``,
  ``"buffer"`` (the replay buffer's ``state_dict``), ``"batches"`` (the epoch's data
  permutation and position in it), ``"rng"`` (torch CPU and CUDA, Python and NumPy
  generator states) and ``"history"`` (per-iteration statistics).

:func:`load_energy` reads the energy back from either kind of file. Loading a trainer
checkpoint restores everything that the next iteration depends on, so a resumed run
takes bitwise the same steps as an uninterrupted one (on the same device and threads).

**Divergence.** Each iteration checks that the loss and the mean energies are finite
and below ``max_energy`` in magnitude, and that the parameter gradient is finite,
before the optimiser steps; otherwise it raises :class:`TrainingDiverged` naming the
quantity, its value and the last good checkpoint, which is never overwritten by a bad
state. Nothing is ever replaced by a substitute value.
"""
import math
import numbers
import os
import random
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from .energies import energy_from_config

FORMAT = "pyro_langevin.ebm/1"


class TrainingDiverged(RuntimeError):
    """Raised when the loss, the energies or the parameter gradient become non-finite or
    explode. ``iteration`` and ``checkpoint`` (the last good one, or ``None``) are attributes."""

    def __init__(self, message: str, iteration: int, checkpoint: Optional[str]):
        super().__init__(message)
        self.iteration = iteration
        self.checkpoint = checkpoint


def rng_state() -> Dict[str, object]:
    """The torch (CPU and, if initialised, CUDA), Python and NumPy generator states, in a
    form ``torch.load(..., weights_only=True)`` accepts."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "python": random.getstate(),
             "numpy": (kind, keys.tolist(), int(pos), int(has_gauss), float(cached))}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Dict[str, object]) -> None:
    """Restore the generator states saved by :func:`rng_state`."""
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    if "cuda" in state:
        torch.cuda.set_rng_state_all(state["cuda"])


def _atomic_save(obj, path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def save_energy(path, energy: nn.Module, **metadata) -> None:
    """Save an energy's architecture and weights (and ``metadata``, e.g.
    ``value_range=(0, 1)``) for :func:`load_energy`."""
    if not hasattr(energy, "config"):
        raise TypeError(f"{type(energy).__name__} has no `config`; save its state_dict with torch.save instead")
    _atomic_save({"format": FORMAT, "energy_config": energy.config, "model": energy.state_dict(),
                  "metadata": metadata}, path)


def load_energy(path, map_location=None) -> Tuple[nn.Module, Dict[str, object]]:
    """The energy (in eval mode, with the saved dtype) and the metadata stored by
    :func:`save_energy` or by a :class:`Trainer` checkpoint."""
    ckpt = torch.load(path, map_location=map_location, weights_only=True)
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise ValueError(f"{path} is not a pyro_langevin.ebm checkpoint (format {FORMAT!r})")
    if ckpt.get("energy_config") is None:
        raise ValueError(f"{path} holds the weights of an energy without a `config`; rebuild it yourself and "
                         "load checkpoint['model'] with load_state_dict")
    energy = energy_from_config(ckpt["energy_config"])
    dtype = next(iter(ckpt["model"].values())).dtype
    energy.to(dtype).load_state_dict(ckpt["model"])
    return energy.to(map_location).eval() if map_location is not None else energy.eval(), ckpt.get("metadata", {})


class Trainer:
    r"""Stochastic-gradient training of ``energy`` on a data tensor with ``loss_fn``.

    :param nn.Module energy: ``[B, *event_shape] -> [B]``.
    :param callable loss_fn: ``loss_fn(energy, batch) -> (loss, stats)`` with ``stats``
        holding floats ``loss``, ``energy_data`` and ``energy_negative`` (as
        :class:`~pyro_langevin.ebm.ContrastiveDivergence` returns); its ``buffer``
        attribute, if any, is checkpointed.
    :param optimizer: a :class:`torch.optim.Optimizer` over the energy's parameters.
    :param torch.Tensor data: ``[N, *event_shape]``, on the energy's device.
    :param int batch_size: data points per iteration (each epoch is a fresh random
        permutation; the last incomplete batch is dropped).
    :param scheduler: optional learning-rate scheduler, stepped every iteration.
    :param float max_grad_norm: clip the parameter gradient to this norm (``None``: no clipping).
    :param float max_energy: stop when a mean energy exceeds this in magnitude (``None``: never).
    :param checkpoint_path: file of the periodic checkpoints (``None``: none).
    :param int checkpoint_every: iterations between checkpoints.
    :param dict metadata: stored with every checkpoint (e.g. ``{"value_range": (-1, 1)}``).
    """

    def __init__(self, energy: nn.Module, loss_fn: Callable, optimizer: torch.optim.Optimizer, data: torch.Tensor,
                 batch_size: int, *, scheduler=None, max_grad_norm: Optional[float] = None,
                 max_energy: Optional[float] = 1e6, checkpoint_path=None, checkpoint_every: int = 100,
                 metadata: Optional[dict] = None):
        if not torch.is_tensor(data):
            raise TypeError(f"data must be a tensor [N, *event_shape], got {type(data).__name__}")
        for name, value in (("batch_size", batch_size), ("checkpoint_every", checkpoint_every)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if batch_size > data.shape[0]:
            raise ValueError(f"batch_size={batch_size} exceeds the {data.shape[0]} data points")
        for name, value in (("max_grad_norm", max_grad_norm), ("max_energy", max_energy)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0):
                raise ValueError(f"{name} must be a positive number or None, got {value!r}")
        self.energy, self.loss_fn, self.optimizer, self.data = energy, loss_fn, optimizer, data
        self.batch_size, self.scheduler = int(batch_size), scheduler
        self.max_grad_norm = max_grad_norm
        self.max_energy = max_energy
        self.checkpoint_path = None if checkpoint_path is None else str(checkpoint_path)
        self.checkpoint_every = int(checkpoint_every)
        self.metadata = dict(metadata or {})
        self.iteration = 0
        self.history: List[Dict[str, float]] = []
        self.last_checkpoint: Optional[str] = None
        self._perm: Optional[torch.Tensor] = None
        self._cursor = 0

    @property
    def buffer(self):
        return getattr(self.loss_fn, "buffer", None)

    def _next_batch(self) -> torch.Tensor:
        if self._perm is None or self._cursor + self.batch_size > self._perm.numel():
            self._perm = torch.randperm(self.data.shape[0], device=self.data.device)
            self._cursor = 0
        index = self._perm[self._cursor: self._cursor + self.batch_size]
        self._cursor += self.batch_size
        return self.data[index]

    def _diverged(self, what: str) -> TrainingDiverged:
        where = (f"the last good checkpoint is {self.last_checkpoint}" if self.last_checkpoint
                 else "no checkpoint was written yet" if self.checkpoint_path else "checkpointing is off")
        return TrainingDiverged(
            f"training diverged at iteration {self.iteration}: {what}; {where}. Lower the learning rate or the "
            "sampler's step_size, raise alpha, or clip the gradient (max_grad_norm).",
            self.iteration, self.last_checkpoint)

    def step(self) -> Dict[str, float]:
        """One training iteration; returns its statistics (also appended to ``history``)."""
        batch = self._next_batch()
        self.energy.train()
        loss, stats = self.loss_fn(self.energy, batch)
        for key in ("loss", "energy_data", "energy_negative"):
            value = stats[key]
            if not math.isfinite(value):
                raise self._diverged(f"{key} = {value}")
            if key != "loss" and self.max_energy is not None and abs(value) > self.max_energy:
                raise self._diverged(f"|{key}| = {abs(value):.4g} exceeds max_energy={self.max_energy:g}")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        params = [p for p in self.energy.parameters() if p.grad is not None]
        max_norm = math.inf if self.max_grad_norm is None else self.max_grad_norm
        grad_norm = float(torch.nn.utils.clip_grad_norm_(params, max_norm))
        if not math.isfinite(grad_norm):
            raise self._diverged(f"the parameter gradient norm is {grad_norm}")
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        self.iteration += 1
        stats = {"iteration": self.iteration, **stats, "param_grad_norm": grad_norm}
        self.history.append(stats)
        return stats

    def fit(self, num_iterations: int, progress: bool = True) -> "Trainer":
        """Train until ``iteration == num_iterations`` (a total: a resumed trainer
        continues where it stopped), checkpointing every ``checkpoint_every``
        iterations and at the end. The progress bar shows the energy gap."""
        if isinstance(num_iterations, bool) or not isinstance(num_iterations, numbers.Integral) or num_iterations < 0:
            raise ValueError(f"num_iterations must be a non-negative integer, got {num_iterations!r}")
        with tqdm(total=num_iterations, initial=self.iteration, disable=not progress, dynamic_ncols=True,
                  desc="EBM training") as bar:
            while self.iteration < num_iterations:
                stats = self.step()
                bar.update(1)
                if self.iteration % 10 == 0 or self.iteration == num_iterations:
                    bar.set_postfix(gap=f"{stats['energy_gap']:.3g}" if "energy_gap" in stats else "",
                                    loss=f"{stats['loss']:.3g}", refresh=False)
                if self.checkpoint_path and (self.iteration % self.checkpoint_every == 0
                                             or self.iteration == num_iterations):
                    self.save_checkpoint(self.checkpoint_path)
        return self

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> Dict[str, object]:
        buffer = self.buffer
        return {
            "format": FORMAT,
            "iteration": self.iteration,
            "energy_config": getattr(self.energy, "config", None),
            "model": self.energy.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
            "buffer": None if buffer is None else buffer.state_dict(),
            "batches": {"perm": self._perm, "cursor": self._cursor},
            "rng": rng_state(),
            "history": list(self.history),
            "metadata": self.metadata,
        }

    def load_state_dict(self, state: Dict[str, object]) -> None:
        if state.get("format") != FORMAT:
            raise ValueError(f"not a pyro_langevin.ebm trainer checkpoint (format {state.get('format')!r})")
        self.energy.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state["scheduler"] is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        if (self.buffer is None) != (state["buffer"] is None):
            raise ValueError("the checkpoint and the loss disagree on having a replay buffer")
        if self.buffer is not None:
            self.buffer.load_state_dict(state["buffer"])
        perm = state["batches"]["perm"]
        self._perm = None if perm is None else perm.to(self.data.device)
        self._cursor = int(state["batches"]["cursor"])
        self.iteration = int(state["iteration"])
        self.history = list(state["history"])
        self.metadata = dict(state.get("metadata", {}))
        set_rng_state(state["rng"])

    def save_checkpoint(self, path) -> None:
        """Write the trainer's state to ``path`` (atomically), if every parameter is finite."""
        if not all(bool(torch.isfinite(p).all()) for p in self.energy.parameters()):
            raise self._diverged("a parameter is not finite; the checkpoint was not written")
        _atomic_save(self.state_dict(), path)
        self.last_checkpoint = str(path)

    def load_checkpoint(self, path) -> None:
        """Restore the state saved by :meth:`save_checkpoint`."""
        self.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        self.last_checkpoint = str(path)


def fit(energy: nn.Module, data: torch.Tensor, loss_fn: Callable, optimizer: torch.optim.Optimizer,
        num_iterations: int, batch_size: int, *, resume: bool = True, progress: bool = True, **kwargs) -> Trainer:
    """Build a :class:`Trainer` (``kwargs`` are its keyword arguments), resume it from
    ``checkpoint_path`` if that file exists and ``resume`` is true, and train it to
    ``num_iterations`` iterations. Returns the trainer (``trainer.history`` holds the
    per-iteration statistics)."""
    trainer = Trainer(energy, loss_fn, optimizer, data, batch_size, **kwargs)
    if resume and trainer.checkpoint_path and Path(trainer.checkpoint_path).exists():
        trainer.load_checkpoint(trainer.checkpoint_path)
    return trainer.fit(num_iterations, progress=progress)
