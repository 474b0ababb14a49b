r"""
Per-chain potentials and initial parameters of a Pyro model for vectorized chains.

The model runs once inside an outer :class:`pyro.plate` of size ``C`` placed left of
every batch dimension of the model (its plates and any other batch dimension of its
sites), with every latent site conditioned on the ``C`` chains' values. Each site's
``log_prob`` (scaled and masked as Pyro does) then has the chain dimension on the
left, and summing everything else gives, per chain,

.. math::

    U_c(u) = -\Big[\log p\big(y, T^{-1}(u_c)\big)
             + \log\big|\det \partial T^{-1}(u_c)/\partial u_c\big|\Big],

the same potential as :func:`pyro.infer.mcmc.util.initialize_model` computes for one
chain, for ``C`` chains in one pass. The model must be vectorizable in that plate,
as for ``Trace_ELBO(vectorize_particles=True)``: a latent value arrives with shape
``[C, 1, ..., 1, *site_shape]``, so write ``(X * w).sum(-1)`` rather than ``X @ w``.
Discrete latent sites (enumeration) are not supported.
"""
from typing import Callable, Dict

import torch
import pyro
import pyro.poutine as poutine
from pyro.infer.autoguide.initialization import InitMessenger
from pyro.infer.mcmc.util import _guess_max_plate_nesting  # the guess initialize_model makes
from pyro.poutine.subsample_messenger import _Subsample

CHAIN_PLATE = "_langevin_chains"


def _sum_to_chains(t: torch.Tensor, num_chains: int, chain_dim: int, name: str) -> torch.Tensor:
    """Sum a log-density term of site ``name``, shape ``[C, *batch]`` (``C`` at
    ``chain_dim`` from the right, possibly broadcast as 1, possibly absent), down to
    ``[C]``."""
    if t.dim() > chain_dim:
        raise ValueError(
            f"site {name!r} has a log-density of shape {tuple(t.shape)}, with dimensions left of the "
            f"chain plate (dim {-chain_dim}): the model mixes the chain dimension into another one. "
            "With vectorized_chains, a latent value arrives as [C, 1, ..., 1, *site_shape]: index event "
            "dimensions away (x[..., 0], (X * w).sum(-1)) instead of broadcasting them against batch ones"
        )
    while t.dim() < chain_dim:
        t = t.unsqueeze(0)
    if chain_dim > 1:
        t = t.sum(tuple(range(-chain_dim + 1, 0)))
    return t.expand(num_chains)


class VectorizedModel:
    """A Pyro model run for ``num_chains`` chains at once.

    :param model: the Pyro model.
    :param tuple model_args: its arguments.
    :param dict model_kwargs: its keyword arguments.
    :param dict transforms: ``{site: constrained -> unconstrained transform}``, as
        :func:`~pyro.infer.mcmc.util.initialize_model` returns them.
    :param int num_chains: ``C``.
    :param prototype_trace: a trace of the model for one chain (as
        :func:`initialize_model` returns), which gives the latent sites, their
        batch ranks and their unconstrained shapes.
    :param int max_plate_nesting: as in Pyro's HMC (default: guessed).
    """

    def __init__(self, model, model_args, model_kwargs, transforms, num_chains, prototype_trace,
                 max_plate_nesting=None):
        if max_plate_nesting is None:
            max_plate_nesting = _guess_max_plate_nesting(model, model_args, model_kwargs)
        self.model = model
        self.model_args = tuple(model_args)
        self.model_kwargs = dict(model_kwargs)
        self.transforms = transforms
        self.num_chains = num_chains
        rank, site_shapes, batch_ranks = max_plate_nesting, {}, {}
        for name, site in prototype_trace.nodes.items():
            if site["type"] != "sample" or isinstance(site["fn"], _Subsample):
                continue
            batch_rank = site["value"].dim() - len(site["fn"].event_shape)
            rank = max(rank, batch_rank)
            if site["is_observed"]:
                continue
            if site["fn"].has_enumerate_support:
                raise NotImplementedError(
                    f"vectorized_chains does not support the discrete latent site {name!r}: "
                    "use MCMC(..., num_chains=...) or marginalise it out"
                )
            batch_ranks[name] = batch_rank
            value = site["value"].detach()
            site_shapes[name] = transforms[name](value).shape if name in transforms else value.shape
        #: the chain plate's dim is ``-chain_dim``: left of every batch dimension
        self.chain_dim = rank + 1
        self.site_shapes = site_shapes
        self._pads = {name: (1,) * (rank - r) for name, r in batch_ranks.items()}

    def chain_model(self, *args, **kwargs):
        """The model inside the outer plate of the chains."""
        with pyro.plate(CHAIN_PLATE, self.num_chains, dim=-self.chain_dim):
            return self.model(*args, **kwargs)

    def potential(self, params: Dict[str, torch.Tensor]) -> torch.Tensor:
        """:math:`U_c` for unconstrained ``params`` of shapes ``[C, *site_shape]``;
        returns ``[C]``."""
        C, chain_dim = self.num_chains, self.chain_dim
        constrained, log_det = {}, 0.0
        for name, u in params.items():
            # [C, *site] -> [C, 1, .., 1, *site]: the chain dim left of the model's batch dims
            u_b = u.reshape((C,) + self._pads[name] + u.shape[1:])
            t = self.transforms.get(name)
            if t is None:
                constrained[name] = u_b
                continue
            x = t.inv(u_b)
            constrained[name] = x
            ladj = t.inv.log_abs_det_jacobian(u_b, x)  # batch shape of the site
            log_det = log_det + _sum_to_chains(ladj, C, chain_dim, name)
        conditioned = poutine.condition(self.chain_model, data=constrained)
        trace = poutine.trace(conditioned).get_trace(*self.model_args, **self.model_kwargs)
        trace.compute_log_prob()
        log_joint = 0.0
        for name, site in trace.nodes.items():
            if site["type"] == "sample" and not isinstance(site["fn"], _Subsample):
                log_joint = log_joint + _sum_to_chains(site["log_prob"], C, chain_dim, name)
        return -(log_joint + log_det)

    def initial_params(self, init_strategy: Callable, max_tries: int = 100) -> Dict[str, torch.Tensor]:
        """Unconstrained initial parameters ``[C, *site_shape]``, drawn per chain from
        ``init_strategy`` in one run of the model inside the chain plate (so
        ``init_to_uniform`` gives every chain its own start). Chains whose potential
        or gradient is not finite are drawn again, up to ``max_tries`` times, as
        :func:`~pyro.infer.mcmc.util.initialize_model` does for one chain.
        """
        C = self.num_chains
        model = InitMessenger(init_strategy)(self.chain_model)
        params, todo = None, None
        for _ in range(max_tries):
            with poutine.block():
                trace = poutine.trace(model).get_trace(*self.model_args, **self.model_kwargs)
            new = {}
            for name, shape in self.site_shapes.items():
                value = trace.nodes[name]["value"].detach()
                t = self.transforms.get(name)
                u = t(value) if t is not None else value
                new[name] = u.expand((C,) + self._pads[name] + tuple(shape)).reshape((C,) + tuple(shape))
            if params is None:
                params = new
            else:
                params = {k: torch.where(todo.reshape((C,) + (1,) * (v.dim() - 1)), new[k], v)
                          for k, v in params.items()}
            todo = ~self._finite(params)
            if not bool(todo.any()):
                return params
        raise ValueError(
            f"cannot find valid initial params for chains {todo.nonzero().flatten().tolist()} after "
            f"{max_tries} tries: the potential or its gradient is not finite there"
        )

    def _finite(self, params: Dict[str, torch.Tensor]) -> torch.Tensor:
        """Per chain: potential and gradient finite, shape ``[C]``."""
        leaves = {k: v.detach().requires_grad_(True) for k, v in params.items()}
        with torch.enable_grad():
            potential = self.potential(leaves)
            grads = torch.autograd.grad(potential.sum(), list(leaves.values()))
        ok = torch.isfinite(potential)
        for g in grads:
            ok = ok & torch.isfinite(g.reshape(self.num_chains, -1)).all(-1)
        return ok


def vectorized_model_potential(model, model_args, model_kwargs, transforms, num_chains, prototype_trace,
                               max_plate_nesting=None) -> Callable[[Dict[str, torch.Tensor]], torch.Tensor]:
    """``potential(params) -> [C]`` for unconstrained ``params`` of shapes
    ``[C, *site_shape]``; see :class:`VectorizedModel` (whose arguments these are)."""
    return VectorizedModel(model, model_args, model_kwargs, transforms, num_chains, prototype_trace,
                           max_plate_nesting).potential
