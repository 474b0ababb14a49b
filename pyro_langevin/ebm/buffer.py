r"""
A replay buffer of past Langevin chain end points, the persistent initialisation of
EBM negatives (Tieleman 2008; Du & Mordatch 2019).

Each draw of ``num`` starting points takes, independently per point, a fresh draw
from the ``init`` noise with probability ``reinit_prob`` and otherwise a stored end
point chosen uniformly (with replacement); an empty buffer gives fresh noise only.
The chains' end points come back with :meth:`ReplayBuffer.push` and overwrite the
oldest entries once ``capacity`` is reached (a ring buffer).

``reinit_prob=0`` gives persistent chains (PCD, the exact maximum-likelihood
gradient when the chains mix); ``reinit_prob=1`` gives the short-run chains from
noise of Nijkamp et al. (2019), which store nothing worth reusing.

**References**

[1] T. Tieleman (2008), *Training restricted Boltzmann machines using approximations
    to the likelihood gradient*, ICML.
[2] Y. Du, I. Mordatch (2019), *Implicit generation and modeling with energy-based
    models*, NeurIPS (buffer of 10000, 5 % reinitialisation).
"""
import math
import numbers
from typing import Callable, Dict, Tuple, Union

import torch


class ReplayBuffer:
    r"""Stored chain end points ``[capacity, *event_shape]`` and the noise that restarts chains.

    :param int capacity: number of stored end points.
    :param event_shape: shape of one sample, e.g. ``(2,)`` or ``(1, 28, 28)``.
    :param float reinit_prob: probability, per drawn point, of a fresh ``init`` draw.
    :param init: ``"uniform"`` (on ``init_range``), ``"normal"`` (:math:`\mathcal N(0, s^2 I)`
        with ``s = init_std``), or a callable ``init(num) -> [num, *event_shape]``.
    :param tuple init_range: ``(low, high)`` of the uniform noise, e.g. the data range.
    :param float init_std: standard deviation of the normal noise.
    :param device: where the storage lives (move it with :meth:`to`).
    :param dtype: its floating dtype (default ``torch.get_default_dtype()``).
    """

    def __init__(
        self,
        capacity: int,
        event_shape,
        reinit_prob: float = 0.05,
        init: Union[str, Callable] = "uniform",
        *,
        init_range: Tuple[float, float] = (-1.0, 1.0),
        init_std: float = 1.0,
        device=None,
        dtype=None,
    ):
        if isinstance(capacity, bool) or not isinstance(capacity, numbers.Integral) or capacity < 1:
            raise ValueError(f"capacity must be a positive integer, got {capacity!r}")
        if isinstance(reinit_prob, bool) or not isinstance(reinit_prob, numbers.Real) or not 0 <= reinit_prob <= 1:
            raise ValueError(f"reinit_prob must be a probability in [0, 1], got {reinit_prob!r}")
        if not (callable(init) or init in ("uniform", "normal")):
            raise ValueError(f"init must be 'uniform', 'normal' or a callable, got {init!r}")
        low, high = init_range
        if not (math.isfinite(low) and math.isfinite(high) and low < high):
            raise ValueError(f"init_range must be finite (low, high) with low < high, got {init_range!r}")
        if isinstance(init_std, bool) or not isinstance(init_std, numbers.Real) or not init_std > 0:
            raise ValueError(f"init_std must be positive, got {init_std!r}")
        self.capacity = int(capacity)
        self.event_shape = torch.Size((event_shape,) if isinstance(event_shape, int) else tuple(event_shape))
        self.reinit_prob = float(reinit_prob)
        self.init = init
        self.init_range = (float(low), float(high))
        self.init_std = float(init_std)
        self.storage = torch.empty((self.capacity,) + self.event_shape, device=device,
                                   dtype=dtype or torch.get_default_dtype())
        self.size = 0  # filled entries
        self.next_index = 0  # where the next pushed point goes
        self.num_drawn = 0  # lifetime counts, for statistics
        self.num_fresh = 0

    def __len__(self) -> int:
        return self.size

    @property
    def device(self) -> torch.device:
        return self.storage.device

    @property
    def dtype(self) -> torch.dtype:
        return self.storage.dtype

    def to(self, device=None, dtype=None) -> "ReplayBuffer":
        """Move the storage (in place, like :meth:`torch.nn.Module.to`); returns ``self``."""
        self.storage = self.storage.to(device=device, dtype=dtype)
        return self

    def noise(self, num: int) -> torch.Tensor:
        """``num`` fresh draws of the ``init`` noise, ``[num, *event_shape]``."""
        shape = (num,) + tuple(self.event_shape)
        if self.init == "uniform":
            low, high = self.init_range
            return torch.rand(shape, device=self.device, dtype=self.dtype) * (high - low) + low
        if self.init == "normal":
            return torch.randn(shape, device=self.device, dtype=self.dtype) * self.init_std
        x = self.init(num)
        if tuple(x.shape) != shape:
            raise ValueError(f"init({num}) must return shape {shape}, got {tuple(x.shape)}")
        return x.to(device=self.device, dtype=self.dtype)

    def sample(self, num: int) -> torch.Tensor:
        """``num`` starting points ``[num, *event_shape]``: stored end points, each
        replaced by fresh noise with probability ``reinit_prob`` (all fresh while empty)."""
        if isinstance(num, bool) or not isinstance(num, numbers.Integral) or num < 1:
            raise ValueError(f"num must be a positive integer, got {num!r}")
        if self.size == 0 or self.reinit_prob == 1.0:
            x, num_fresh = self.noise(num), num
        else:
            x = self.storage[torch.randint(self.size, (num,), device=self.device)]
            fresh = torch.rand(num, device=self.device) < self.reinit_prob
            num_fresh = int(fresh.sum())
            if num_fresh:
                x[fresh] = self.noise(num_fresh)
        self.num_drawn += num
        self.num_fresh += num_fresh
        return x

    def push(self, x: torch.Tensor) -> None:
        """Store the chains' end points ``[num, *event_shape]`` (detached), overwriting
        the oldest entries when full; beyond ``capacity`` only the last ones are kept."""
        if tuple(x.shape[1:]) != tuple(self.event_shape):
            raise ValueError(f"expected points of shape [num, {', '.join(map(str, self.event_shape))}], "
                             f"got {tuple(x.shape)}")
        x = x.detach()[-self.capacity:].to(self.storage)
        num = x.shape[0]
        index = (self.next_index + torch.arange(num, device=self.device)) % self.capacity
        self.storage[index] = x
        self.next_index = (self.next_index + num) % self.capacity
        self.size = min(self.size + num, self.capacity)

    def state_dict(self) -> Dict[str, object]:
        """The stored points and counters (not the ``init`` callable)."""
        return {"storage": self.storage[: self.size].clone(), "next_index": self.next_index,
                "num_drawn": self.num_drawn, "num_fresh": self.num_fresh}

    def load_state_dict(self, state: Dict[str, object]) -> None:
        storage = state["storage"]
        if tuple(storage.shape[1:]) != tuple(self.event_shape) or storage.shape[0] > self.capacity:
            raise ValueError(f"state holds points {tuple(storage.shape)}, incompatible with capacity "
                             f"{self.capacity} and event_shape {tuple(self.event_shape)}")
        self.size = storage.shape[0]
        self.storage[: self.size] = storage.to(self.storage)
        self.next_index = int(state["next_index"])
        self.num_drawn = int(state["num_drawn"])
        self.num_fresh = int(state["num_fresh"])

    def __repr__(self) -> str:
        return (f"ReplayBuffer(capacity={self.capacity}, event_shape={tuple(self.event_shape)}, "
                f"reinit_prob={self.reinit_prob}, init={self.init!r}, size={self.size}, device={self.device})")
