r"""
ArviZ output of a Pyro :class:`~pyro.infer.mcmc.api.MCMC` run, and every ArviZ call
of the package.

:func:`to_inference_data` lays the draws of the Langevin kernels out the way ArviZ
expects, ``(chain, draw, *site_shape)``, where ArviZ's ``chain`` runs over Pyro's
chains *and* the kernel's vectorized chains:

.. math::

    \text{chain} = p \cdot C + c, \qquad p < P \text{ (Pyro's } \texttt{num\_chains}),
    \quad c < C \text{ (} \texttt{vectorized\_chains}),

so that ``az.rhat``/``az.ess`` compare every independent chain. ``mcmc.get_samples(
group_by_chain=True)`` returns ``[P, num_samples, C, *site_shape]`` for a vectorized
kernel, and ``[P, num_samples, *site_shape]`` otherwise.

ArviZ 1.x (``arviz_base``, Python >= 3.12) builds an ``xarray.DataTree`` with
``arviz_base.from_dict({group: {var: array}})`` where ArviZ 0.x built an
``InferenceData`` from one ``dict_to_dataset`` per group, and it renamed the
plots (``plot_trace`` became ``plot_trace_dist``). Both paths live here, chosen by
the installed version, so that the rest of the package and the examples never
import ArviZ themselves. **The 1.x path is written from arviz-base's sources and is
not exercised by this package's tests** (they run ArviZ 0.x).
"""
import warnings
from typing import Any, Dict, List, Optional

import numpy as np
import torch

# log_likelihood: chains go through the vectorized trace in blocks of at most this many log-density elements
_LOG_LIKELIHOOD_BLOCK = 2**24


# ---------------------------------------------------------------------- ArviZ access
def _arviz():
    """Import ArviZ lazily (it takes a second) and quietly: ArviZ 0.2x emits a
    once-a-day ``FutureWarning`` about its 1.0 refactor at import time."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        import arviz
    return arviz


def arviz_major_version() -> int:
    """Major version of the installed ArviZ (0 or 1)."""
    return int(str(_arviz().__version__).split(".")[0])


def _build_v0(groups: Dict[str, Dict[str, np.ndarray]], coords, dims, attrs):
    """ArviZ 0.x: one ``dict_to_dataset`` per group, with the arguments
    ``arviz.from_pyro`` uses, so the result is laid out as ``from_pyro``'s."""
    import pyro

    az = _arviz()
    options = {
        "posterior": dict(coords=coords, dims=dims),
        "sample_stats": dict(coords=coords, dims=None),
        "log_likelihood": dict(coords=coords, dims=dims, skip_event_dims=True),
        "observed_data": dict(coords=coords, dims=dims or {}, default_dims=[]),
    }
    datasets = {}
    with warnings.catch_warnings():
        # ArviZ 0.x warns "More chains than draws" whenever chain > draw, a normal layout
        # with hundreds of vectorized chains; the layout is built here, so it is right.
        warnings.filterwarnings("ignore", message="More chains .* than draws", category=UserWarning)
        for name, data in groups.items():
            group_attrs = attrs if name in ("posterior", "sample_stats") else None
            datasets[name] = az.dict_to_dataset(data, library=pyro, attrs=group_attrs, **options[name])
    return az.InferenceData(**datasets)


def _build_v1(groups: Dict[str, Dict[str, np.ndarray]], coords, dims, attrs):  # pragma: no cover
    """ArviZ 1.x (untested here): ``arviz_base.from_dict`` takes the nested
    ``{group: {var: array}}`` dict and returns a DataTree; groups whose name contains
    "data" get no sample dims, those containing "log_likelihood" skip event dims."""
    import arviz_base

    group_attrs = {name: dict(attrs) for name in ("posterior", "sample_stats") if name in groups}
    return arviz_base.from_dict(groups, coords=coords, dims=dims, attrs=group_attrs)


def summary(data, **kwargs):
    """``arviz.summary`` of :func:`to_inference_data`'s result (a pandas DataFrame)."""
    return _arviz().summary(data, **kwargs)


def save_trace_plot(data, path, **kwargs) -> None:
    """Save ArviZ's trace plot (``plot_trace`` in 0.x, ``plot_trace_dist`` in 1.x) as
    an image at ``path``; ``kwargs`` go to the ArviZ function (``var_names``, ``coords``)."""
    _save_plot("plot_trace", "plot_trace_dist", data, path, kwargs)


def save_rank_plot(data, path, **kwargs) -> None:
    """Save ArviZ's rank plot (``plot_rank``) as an image at ``path``."""
    _save_plot("plot_rank", "plot_rank", data, path, kwargs)


def _save_plot(name_v0: str, name_v1: str, data, path, kwargs) -> None:
    import matplotlib.pyplot as plt

    az = _arviz()
    if arviz_major_version() >= 1:  # pragma: no cover
        getattr(az, name_v1)(data, backend="matplotlib", **kwargs).savefig(path)
        return
    with warnings.catch_warnings():
        # ArviZ 0.2x's plots call a matplotlib API deprecated in 3.11 (normalize_kwargs
        # with a dict); that deprecation is ArviZ's to fix, not our users'.
        warnings.filterwarnings("ignore", message="Passing a dict or None as alias_mapping",
                                category=DeprecationWarning)
        axes = getattr(az, name_v0)(data, **kwargs)
    figure = np.asarray(axes).ravel()[0].figure
    if figure.get_layout_engine() is None:
        figure.set_layout_engine("constrained")  # two-line titles of a per-coordinate layout overlap otherwise
    figure.savefig(path)
    plt.close(figure)


# ---------------------------------------------------------------------- conversion
def to_inference_data(mcmc, *, log_likelihood: Optional[bool] = None, coords: Optional[Dict[str, Any]] = None,
                      dims: Optional[Dict[str, List[str]]] = None):
    r"""Convert a finished :class:`~pyro.infer.mcmc.api.MCMC` run to ArviZ.

    Groups:

    - ``posterior``: the (constrained) samples, ``(chain, draw, *site_shape)`` with
      ``chain = pyro_chain * C + vectorized_chain``.
    - ``sample_stats``: from the Langevin kernels' per-draw statistics,
      ``lp`` (minus the potential :math:`-U`, in the unconstrained space, log-Jacobian
      included), ``diverging`` (bool), ``step_size`` and, where tracked,
      ``acceptance_rate`` (MALA's acceptance probability, or ULA's shadow one). For
      other kernels (Pyro's NUTS, say) only ``diverging``, from ``divergences``.
    - with a model: ``observed_data`` (the observed sites) and ``log_likelihood``
      (each observed site's pointwise :math:`\log p(y \mid \theta)` at every
      (chain, draw), ``(chain, draw, *obs_batch_shape)``), as ``arviz.from_pyro``
      makes them -- from a vectorized trace of the model over all draws, which also
      works for latent sites with event dims outside plates, where ``from_pyro``'s
      ``Predictive`` fails.

    :param mcmc: a :class:`~pyro.infer.mcmc.api.MCMC` after ``run``; the kernel may
        have ``vectorized_chains``.
    :param bool log_likelihood: compute the ``log_likelihood`` group (default: ArviZ's
        ``rcParams["data.log_likelihood"]``; when left at the default, a model whose
        trace cannot be vectorized gives a warning and no group instead of an error).
    :param dict coords: ``{dim_name: values}``, passed to ArviZ.
    :param dict dims: ``{var_name: [dim_name, ...]}``, passed to ArviZ.
    :returns: ``arviz.InferenceData`` (ArviZ 0.x) or ``xarray.DataTree`` (ArviZ 1.x).
    """
    if not hasattr(mcmc, "get_samples") or not hasattr(mcmc, "kernel"):
        raise TypeError(f"to_inference_data expects a pyro.infer.MCMC, got {type(mcmc).__name__}")
    if getattr(mcmc, "_samples", None) is None:
        raise ValueError("to_inference_data needs a finished run: call mcmc.run(...) first")
    kernel = mcmc.kernel
    num_pyro_chains, num_draws = mcmc.num_chains, mcmc.num_samples
    C = getattr(kernel, "vectorized_chains", None)

    samples = mcmc.get_samples(group_by_chain=True)
    posterior = {name: _chains_first(value, num_pyro_chains, num_draws, C, name) for name, value in samples.items()}
    groups = {"posterior": {name: _numpy(v) for name, v in posterior.items()}}

    stats = _sample_stats(mcmc, num_pyro_chains, num_draws, C)
    if stats:
        groups["sample_stats"] = stats

    if getattr(kernel, "model", None) is not None:
        with torch.random.fork_rng(devices=[]):  # tracing the model draws from the prior: leave the CPU RNG as it was
            _model_groups(groups, kernel, mcmc, posterior, log_likelihood)

    attrs = {"sampler": type(kernel).__name__, "pyro_chains": int(num_pyro_chains), "vectorized_chains": int(C or 1)}
    build = _build_v1 if arviz_major_version() >= 1 else _build_v0
    return build(groups, coords, dims, attrs)


def _numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


def _chains_first(value: torch.Tensor, P: int, S: int, C: Optional[int], name: str) -> torch.Tensor:
    """``[P, S, C, *site]`` (or ``[P, S, *site]``) -> ``[P * C, S, *site]``."""
    expected = (P, S) if C is None else (P, S, C)
    if tuple(value.shape[: len(expected)]) != expected:
        raise ValueError(
            f"samples of {name!r} have shape {tuple(value.shape)}; expected leading dims {expected} "
            "(num_chains, num_samples[, vectorized_chains])"
        )
    if C is None:
        return value
    return value.transpose(1, 2).reshape((P * C, S) + tuple(value.shape[3:]))


_STAT_NAMES = {"lp": "lp", "diverging": "diverging", "step_size": "step_size", "accept_prob": "acceptance_rate"}


def _per_chain_diagnostics(mcmc) -> List[dict]:
    # MCMC keeps each chain's kernel.diagnostics() in _diagnostics; the public
    # mcmc.diagnostics() would also recompute ESS and R-hat of every site first.
    diagnostics = getattr(mcmc, "_diagnostics", None)
    if diagnostics is None:
        public = mcmc.diagnostics()
        keys = [k for k, v in public.items() if isinstance(v, dict) and "chain 0" in v]
        diagnostics = [{k: public[k][f"chain {i}"] for k in keys} for i in range(mcmc.num_chains)]
    return diagnostics


def _sample_stats(mcmc, P: int, S: int, C: Optional[int]) -> Dict[str, np.ndarray]:
    per_chain = _per_chain_diagnostics(mcmc)
    if all(d.get("sample_stats") for d in per_chain):
        out = {}
        for key, name in _STAT_NAMES.items():
            values = [d["sample_stats"].get(key) for d in per_chain]
            if any(v is None for v in values):
                continue
            stacked = []
            for v in values:
                v = torch.as_tensor(v)
                expected = (S,) if C is None else (S, C)
                if tuple(v.shape) != expected:
                    raise ValueError(
                        f"kernel sample_stats[{key!r}] has shape {tuple(v.shape)}, expected {expected} "
                        "(num_samples[, vectorized_chains])"
                    )
                stacked.append(v.unsqueeze(0) if C is None else v.T)
            out[name] = _numpy(torch.cat(stacked, 0))
        out["diverging"] = out["diverging"].astype(bool)
        return out
    if C is not None:
        return {}  # per-vectorized-chain divergences are unknown without the kernel's statistics
    diverging = np.zeros((P, S), dtype=bool)
    for i, d in enumerate(per_chain):
        diverging[i, list(d.get("divergences", []))] = True
    return {"diverging": diverging}


# ---------------------------------------------------------------------- model groups
def _model_groups(groups, kernel, mcmc, posterior, log_likelihood) -> None:
    """Add ``observed_data`` and, if wanted, ``log_likelihood`` to ``groups``."""
    args, kwargs = mcmc._args or (), mcmc._kwargs or {}  # the run's model arguments, as from_pyro reads them
    observed = _observations(kernel.model, args, kwargs)
    if observed:
        groups["observed_data"] = {name: _numpy(v) for name, v in observed.items()}
        if _want_log_likelihood(log_likelihood):
            loglik = _log_likelihood(kernel.model, args, kwargs, posterior, observed,
                                     getattr(kernel, "max_plate_nesting", None), strict=log_likelihood is True)
            if loglik:
                groups["log_likelihood"] = loglik


def _want_log_likelihood(log_likelihood: Optional[bool]) -> bool:
    if log_likelihood is not None:
        return bool(log_likelihood)
    az = _arviz()
    try:
        return bool(az.rcParams["data.log_likelihood"])
    except KeyError:  # pragma: no cover - an ArviZ without that setting
        return True


def _observations(model, args, kwargs) -> Dict[str, torch.Tensor]:
    import pyro.poutine as poutine

    with poutine.block():
        trace = poutine.trace(model).get_trace(*args, **kwargs)
    return {
        name: site["value"]
        for name, site in trace.nodes.items()
        if site["type"] == "sample" and site["is_observed"]
    }


def _log_likelihood(model, args, kwargs, posterior: Dict[str, torch.Tensor], observed, max_plate_nesting,
                    strict: bool):
    r"""Pointwise :math:`\log p(y \mid \theta)` of every observed site at every
    (chain, draw), ``[K, S, *obs_batch_shape]``, from vectorized traces over blocks of
    whole chains (so that memory stays bounded); see :func:`_vectorized_trace`."""
    first = next(iter(posterior.values()))
    K, S = first.shape[:2]
    obs_size = max(sum(v.numel() for v in observed.values()), 1)
    chains_per_block = max(1, _LOG_LIKELIHOOD_BLOCK // (S * obs_size))
    blocks: Dict[str, list] = {name: [] for name in observed}
    try:
        for start in range(0, K, chains_per_block):
            stop = min(K, start + chains_per_block)
            flat = {name: v[start:stop].reshape((-1,) + tuple(v.shape[2:])) for name, v in posterior.items()}
            trace = _vectorized_trace(model, args, kwargs, flat, max_plate_nesting)
            for name in observed:
                site = trace.nodes[name]
                loglik = site["fn"].log_prob(site["value"]).detach()
                blocks[name].append(loglik.reshape((stop - start, S) + tuple(loglik.shape[1:])))
    except Exception as error:  # noqa: BLE001 - as from_pyro: any model that does not vectorize
        if strict:
            raise
        warnings.warn(
            f"could not compute the log_likelihood group ({type(error).__name__}: {error}); it is left out. "
            "Check that the model's batch dims are declared with pyro.plate, or pass log_likelihood=False",
            UserWarning,
        )
        return {}
    return {name: _numpy(torch.cat(parts, 0)) for name, parts in blocks.items()}


def _vectorized_trace(model, args, kwargs, samples: Dict[str, torch.Tensor], max_plate_nesting):
    """One trace of ``model`` conditioned on ``N`` draws at once, inside an outer
    plate of size ``N`` at ``dim = -(max_plate_nesting + 1)``: each site's draws
    ``[N, *batch_shape, *event_shape]`` are padded to ``[N, 1, .., 1, *batch_shape,
    *event_shape]`` by the site's own batch rank. (``pyro.infer.Predictive``, which
    ``arviz.from_pyro`` uses, pads by the rank of the whole value, event dims included,
    and so fails on sites such as ``Normal(..).to_event(1)`` outside a plate.)"""
    import pyro
    import pyro.poutine as poutine
    from pyro.infer.mcmc.util import _guess_max_plate_nesting

    if max_plate_nesting is None:
        max_plate_nesting = _guess_max_plate_nesting(model, args, kwargs)
    num_draws = next(iter(samples.values())).shape[0]
    with torch.no_grad(), poutine.block():
        prototype = poutine.trace(model).get_trace(*args, **kwargs)
        data = {}
        for name, value in samples.items():
            batch_rank = len(prototype.nodes[name]["fn"].batch_shape)
            pad = (1,) * (max_plate_nesting - batch_rank)
            data[name] = value.reshape((num_draws,) + pad + tuple(value.shape[1:]))

        def draws_model():
            with pyro.plate("_arviz_draws", num_draws, dim=-(max_plate_nesting + 1)):
                return model(*args, **kwargs)

        return poutine.trace(poutine.condition(draws_model, data=data)).get_trace()
