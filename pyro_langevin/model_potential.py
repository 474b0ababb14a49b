r"""
Per-chain potentials of a Pyro model for vectorized chains.

The model runs once inside an outer :class:`pyro.plate` of size ``C`` placed just
left of its own plates (``dim = -(max_plate_nesting + 1)``), with every latent site
conditioned on the ``C`` chains' values. Each site's ``log_prob`` (scaled and masked
as Pyro does) then has the chain dimension on the left, and summing everything else
gives, per chain,

.. math::

    U_c(u) = -\Big[\log p\big(y, T^{-1}(u_c)\big)
             + \log\big|\det \partial T^{-1}(u_c)/\partial u_c\big|\Big],

the same potential as :func:`pyro.infer.mcmc.util.initialize_model` computes for one
chain, for ``C`` chains in one pass.
"""
from typing import Callable, Dict

import torch
import pyro
import pyro.poutine as poutine
from pyro.infer.mcmc.util import _guess_max_plate_nesting  # the guess initialize_model makes

CHAIN_PLATE = "_langevin_chains"


def _sum_to_chains(t: torch.Tensor, num_chains: int, chain_dim: int) -> torch.Tensor:
    """Sum a log-density term of shape ``[..., C, *plates]`` (``C`` at ``chain_dim``
    from the right, possibly broadcast) down to ``[C]``."""
    while t.dim() < chain_dim:
        t = t.unsqueeze(0)
    if chain_dim > 1:
        t = t.sum(tuple(range(-chain_dim + 1, 0)))
    return t.expand(t.shape[:-1] + (num_chains,)).reshape(-1, num_chains).sum(0) if t.dim() else t.expand(num_chains)


def vectorized_model_potential(model, model_args, model_kwargs, transforms, num_chains, prototype_trace,
                               max_plate_nesting=None) -> Callable[[Dict[str, torch.Tensor]], torch.Tensor]:
    """Build ``potential(params) -> [C]`` for unconstrained ``params`` of shapes
    ``[C, *site_shape]`` (``site_shape`` as in one chain's unconstrained trace).

    :param prototype_trace: a trace of the model (as :func:`initialize_model` returns),
        which gives each site's batch rank.
    """
    if max_plate_nesting is None:
        max_plate_nesting = _guess_max_plate_nesting(model, model_args, model_kwargs)
    chain_dim = max_plate_nesting + 1
    pads = {
        name: (1,) * (max_plate_nesting - len(site["fn"].batch_shape))
        for name, site in prototype_trace.iter_stochastic_nodes()
        if hasattr(site["fn"], "batch_shape")  # skips the plates' subsample sites
    }

    def chain_model(*args, **kwargs):
        with pyro.plate(CHAIN_PLATE, num_chains, dim=-chain_dim):
            return model(*args, **kwargs)

    def potential(params):
        constrained, log_det = {}, 0.0
        for name, u in params.items():
            # [C, *site] -> [C, 1, .., 1, *site]: the chain dim left of the model's plates
            u_b = u.reshape((num_chains,) + pads[name] + u.shape[1:])
            t = transforms.get(name)
            if t is None:
                constrained[name] = u_b
                continue
            x = t.inv(u_b)
            constrained[name] = x
            ladj = t.inv.log_abs_det_jacobian(u_b, x)  # batch shape of the site
            log_det = log_det + _sum_to_chains(ladj, num_chains, chain_dim)
        conditioned = poutine.condition(chain_model, data=constrained)
        trace = poutine.trace(conditioned).get_trace(*model_args, **model_kwargs)
        trace.compute_log_prob()
        log_joint = 0.0
        for site in trace.nodes.values():
            if site["type"] == "sample":
                log_joint = log_joint + _sum_to_chains(site["log_prob"], num_chains, chain_dim)
        return -(log_joint + log_det)

    return potential
