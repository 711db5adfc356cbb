"""What to check and how: one validated configuration for every check."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

from harness.errors import ConfigError
from harness.model.specs import ModelSpec, OptimizerSpec
from harness.runtime.values import check_int

#: every check the layer runs, in the order it runs them
CHECKS: tuple[str, ...] = ("equivalence", "gradcheck", "training", "drift", "cv", "bench")


@dataclass(frozen=True)
class CheckConfig:
    """Everything a run of checks needs besides the data.

    Parameters
    ----------
    backends : sequence of str
        Backend names (``scratch``, ``torch`` or ``package.module:Class``). The first
        is the reference; comparisons take exactly two, ``gradcheck`` checks each, ``cv``
        takes one or more.
    spec : ModelSpec
    optimizer : OptimizerSpec
    rtol, atol : float, optional
        Both or neither: the tolerances of the equivalence check and the base of the
        trajectory's; default by dtype (:data:`harness.compare.equivalence.DEFAULT_TOLERANCES`).
    init_params : dict, optional
        Parameters every model starts from instead of the seeded initialisation.
    device : str
        ``cpu`` or ``cuda`` (the torch backend only).
    threads : int, optional
        One thread count for NumPy's BLAS and torch while the checks run; default:
        :func:`harness.runtime.threads.default_threads`.
    check_samples : int, optional
        Rows of the equivalence check (and of the gradient check): all rows in their
        order when None, else the first ``check_samples`` of a fixed seeded shuffle.
    gradcheck_samples, gradcheck_max_entries, gradcheck_eps, gradcheck_rtol, gradcheck_atol
        The gradient check: samples the loss is computed on (a seeded subset of the
        check rows; all of them when None), entries per parameter, the central
        difference's half-width, its tolerances (both or neither).
    epochs, batch_size, shuffle, val_fraction, train_samples
        The training trajectory (and the drift run, and each cv fold): epochs, batch
        size, shuffling, the share held out for validation (0: none), and the rows
        trained on (all when None, else the first ``train_samples`` of a fixed shuffle).
    folds, stratified, split_seed, min_agreement
        Cross-validation: folds, stratified or plain k-fold, the split's seed, and the
        share of identical validation predictions it needs (None: no verdict).
    bench : BenchConfig, optional
        What the benchmark measures; ``bench_threads`` its thread count.
    arbiter : bool
        In float32, also build the reference in float64 from the same weights and judge
        the candidate by how far it is from that float64 result compared with how far
        the float32 reference is (:mod:`harness.compare.equivalence`); default True. Where the
        reference cannot be built in float64, the dtype's tolerances judge alone.
    steps : int
        Optimizer steps the equivalence check takes on its batch, comparing the
        parameters (and buffers) after each (:mod:`harness.compare.steps`); default 3.
    stress : bool
        Add the equivalence check's stress rows (:mod:`harness.compare.stress`: logits
        near 1000, gradients near 1e-9, a gradient norm in the hundreds); default True.
    """

    backends: tuple[str, ...]
    spec: ModelSpec
    optimizer: OptimizerSpec = field(default_factory=OptimizerSpec)
    rtol: float | None = None
    atol: float | None = None
    init_params: dict | None = None
    device: str = "cpu"
    threads: int | None = None
    check_samples: int | None = None
    gradcheck_samples: int | None = 128
    gradcheck_max_entries: int | None = 200
    gradcheck_eps: float | None = None
    gradcheck_rtol: float | None = None
    gradcheck_atol: float | None = None
    epochs: int = 50
    batch_size: int = 64
    shuffle: bool = True
    val_fraction: float = 0.0
    train_samples: int | None = None
    folds: int = 5
    stratified: bool = True
    split_seed: int = 42
    min_agreement: float | None = 0.99
    bench: Any = None
    bench_threads: int | None = None
    arbiter: bool = True
    accept: tuple[str, ...] = ()
    steps: int = 3
    stress: bool = True

    def __post_init__(self) -> None:
        from harness.compare.equivalence import resolve_tolerances
        from harness.model.registry import validate_backend_name

        if isinstance(self.backends, str):
            raise ConfigError(f"`backends` must be a sequence of names, got {self.backends!r}")
        names = tuple(self.backends)
        if not names:
            raise ConfigError("`backends` must name at least one backend, got ()")
        for name in names:
            validate_backend_name(name)
        object.__setattr__(self, "backends", names)
        from harness.checks.accept import validate_accept

        object.__setattr__(self, "accept", validate_accept(self.accept))
        if not isinstance(self.spec, ModelSpec):
            raise ConfigError(f"`spec` must be a ModelSpec, got {type(self.spec).__name__}")
        if not isinstance(self.optimizer, OptimizerSpec):
            raise ConfigError(f"`optimizer` must be an OptimizerSpec, got "
                              f"{type(self.optimizer).__name__}")
        resolve_tolerances(self.spec.dtype, self.rtol, self.atol)
        if (self.gradcheck_rtol is None) != (self.gradcheck_atol is None):
            raise ConfigError("give both `gradcheck_rtol` and `gradcheck_atol` or neither")
        if self.device not in ("cpu", "cuda"):
            raise ConfigError(f"`device` must be one of cpu, cuda, got {self.device!r}")
        for key in ("threads", "bench_threads", "check_samples", "gradcheck_samples",
                    "gradcheck_max_entries", "train_samples", "steps"):
            if getattr(self, key) is not None:
                check_int(key, getattr(self, key), 1)
        # epochs, batch size and folds are validated by the checks that use them
        # (harness.training.side_by_side, harness.training.cv), with the data's size at hand
        if self.gradcheck_eps is not None and not (
                isinstance(self.gradcheck_eps, (int, float)) and self.gradcheck_eps > 0
                and math.isfinite(self.gradcheck_eps)):
            raise ConfigError(f"`gradcheck_eps` must be a finite number > 0, got "
                              f"{self.gradcheck_eps!r}")
        if not (isinstance(self.val_fraction, (int, float)) and 0 <= self.val_fraction < 1):
            raise ConfigError(f"`val_fraction` must be in [0, 1), got {self.val_fraction!r}")
        if self.min_agreement is not None and not 0.0 <= self.min_agreement <= 1.0:
            raise ConfigError(f"`min_agreement` must be between 0 and 1, got "
                              f"{self.min_agreement:g}")

    @property
    def resolved_threads(self) -> int:
        """The thread count a training workload runs with: ``threads``, else the count
        that fits the network and the batch size (:func:`harness.runtime.threads.default_threads`)."""
        from harness.runtime.threads import default_threads

        return self.threads or default_threads(self.spec.dims, self.batch_size)

    @property
    def reference(self) -> str:
        return self.backends[0]

    @property
    def candidate(self) -> str:
        return self.backends[1] if len(self.backends) > 1 else self.backends[0]

    def pair(self, what: str) -> tuple[str, str]:
        """(reference, candidate); a ConfigError unless exactly two backends are named."""
        if len(self.backends) != 2:
            raise ConfigError(f"`backends` for {what} takes exactly two names (reference, "
                              f"candidate), got {','.join(self.backends)}")
        return self.backends[0], self.backends[1]

    def with_dtype(self, dtype: str) -> CheckConfig:
        """The same configuration in another dtype (the drift run, the float64 arbiter)."""
        init = self.init_params
        if init is not None:
            init = {k: v.astype(dtype) for k, v in init.items()}
        return replace(self, spec=replace(self.spec, dtype=dtype), init_params=init,
                       rtol=None if dtype != self.spec.dtype else self.rtol,
                       atol=None if dtype != self.spec.dtype else self.atol)

    def describe(self) -> list[str]:
        """Header lines every output shows: the model, the optimizer and its conventions."""
        describe_model = getattr(self.spec, "describe", None)
        describe_opt = getattr(self.optimizer, "describe", None)
        s, o = self.spec, self.optimizer
        model = describe_model() if callable(describe_model) else (
            f"dims {s.dims}, {s.activation}, {s.dtype}, seed {s.seed}")
        if callable(describe_opt):
            opt = describe_opt()
        else:
            extra = (f", momentum {o.momentum:g}{' nesterov' if o.nesterov else ''}"
                     if o.name == "sgd" else f", betas {o.betas[0]:g},{o.betas[1]:g}, "
                                             f"eps {o.eps:g}")
            opt = f"{o.name}, lr {o.lr:g}, weight decay {o.weight_decay:g}{extra}"
        from harness.checks.accept import describe as describe_accepted

        return [f"model: {model}", f"optimizer: {opt}", *describe_accepted(self.accept)]

    def to_dict(self) -> dict[str, Any]:
        bench = self.bench
        return {
            "backends": list(self.backends), **self.spec.to_dict(),
            "optimizer": self.optimizer.to_dict(), "rtol": self.rtol, "atol": self.atol,
            "device": self.device, "threads": self.threads, "accept": list(self.accept),
            "init_from_params": self.init_params is not None,
            "check_samples": self.check_samples, "gradcheck_samples": self.gradcheck_samples,
            "gradcheck_max_entries": self.gradcheck_max_entries,
            "gradcheck_eps": self.gradcheck_eps, "epochs": self.epochs,
            "batch_size": self.batch_size, "shuffle": self.shuffle,
            "val_fraction": self.val_fraction, "train_samples": self.train_samples,
            "folds": self.folds, "stratified": self.stratified, "split_seed": self.split_seed,
            "min_agreement": self.min_agreement,
            "bench": None if bench is None else bench.to_dict(), "arbiter": self.arbiter,
            "steps": self.steps, "stress": self.stress,
        }
