"""Before any check: can every backend be built, and does each plug-in keep the contract?

:func:`preflight` builds each backend once (a class that cannot be imported or
constructed is bad input, a :class:`~harness.errors.ProtocolError`, exit code 2),
then runs a user's class (``module:Class``) through the ``Classifier`` contract on a
small batch (:data:`PREFLIGHT_ROWS` rows of the data), on fresh models, not the ones
the checks compare:

* ``forward`` returns an (N, C) NumPy array of floats;
* ``loss_and_grads`` returns a finite number and one gradient per parameter, each of
  the parameter's shape;
* ``get_params`` returns copies: changing the returned arrays leaves the model as it is;
* ``set_params`` copies in: changing the dict or its arrays afterwards leaves the model
  as it is;
* the requested dtype holds in the parameters, the logits and the gradients;
* ``train_step`` returns the loss *before* its update (the loss ``loss_and_grads``
  gives on the same batch, within the dtype's tolerance).

Each broken rule is a FAIL finding (exit code 1), one line each::

    contract: mynet:MyMLP.forward returned float64 logits for a float32 model

except a class that computes in float64 whatever it is asked: asked for float32, it is
refused as bad input (:class:`~harness.errors.ConfigError`, exit code 2), since no
float32 comparison of it means anything. Built-in backends are trusted and skipped.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from harness.checks.config import CheckConfig
from harness.checks.result import FAIL, PASS, CheckResult, Finding, Verdict
from harness.errors import BackendRaised, ConfigError
from harness.model.masks import held_masks

#: rows of the data the contract is checked on
PREFLIGHT_ROWS = 5


@dataclass
class ContractFinding(Finding):
    """A broken rule of the contract (the method returned, it did not raise)."""

    def __str__(self) -> str:
        message = self.message
        if message.startswith(f"{self.method} "):  # "forward returned ...": said once
            message = message[len(self.method) + 1:]
        text = f"contract: {self.backend}.{self.method} {message}"
        if self.where:
            text += f" (see {self.where}" + (f": `{self.source}`" if self.source else "") + ")"
        return text

    def to_dict(self) -> dict:
        return {**super().to_dict(), "kind": "contract"}


def is_plugin(name: str) -> bool:
    """Whether ``name`` is a user's class (``module:Class``), not a built-in backend."""
    return ":" in name


def preflight(config: CheckConfig, data=None, *, dtype: str | None = None) -> CheckResult:
    """Build every backend of ``config``; check each plug-in's contract on a small batch.

    Parameters
    ----------
    config : CheckConfig
    data : harness.data.datasets.Dataset, optional
        The first :data:`PREFLIGHT_ROWS` rows of the check rows are used; without data,
        seeded standard-normal rows of the model's width (``export``).
    dtype : str, optional
        Check in this dtype instead of the configuration's (the report's float32 drift).

    Returns
    -------
    CheckResult
        ``check`` "preflight": PASS, or FAIL with one finding per broken rule.

    Raises
    ------
    ProtocolError
        A backend cannot be imported or built.
    ConfigError
        A plug-in computes in float64 when float32 was asked.
    """
    from harness.checks.run import build_model

    t0 = time.perf_counter()
    dtype = dtype or config.spec.dtype
    findings: list[Finding] = []
    plugins = []
    for name in config.backends:
        model = build_model(config, name, dtype=dtype)  # ProtocolError: exit 2
        if is_plugin(name):
            plugins.append((name, model))
    if plugins:
        x, y = _batch(config, data)
        for name, model in plugins:
            findings.extend(_contract(name, model, x, y, dtype))
    seconds = time.perf_counter() - t0
    checked = [n for n, _ in plugins]
    if findings:
        summary = (f"{len(findings)} broken rule{'s' * (len(findings) > 1)} of the Classifier "
                   f"contract; the checks did not run")
        status = FAIL
    elif checked:
        summary = f"{', '.join(checked)} keeps the Classifier contract on {PREFLIGHT_ROWS} rows"
        status = PASS
    else:
        summary = "built-in backends only: trusted, not checked"
        status = PASS
    verdict = Verdict("preflight", "Contract preflight", status, summary, seconds)
    result = CheckResult("preflight", [verdict], None, settings={
        "backends": list(config.backends), "dtype": dtype, "checked": checked,
        "n_samples": PREFLIGHT_ROWS if checked else 0}, findings=findings,
        header=config.describe(), seconds=seconds)
    if findings and data is not None and len(config.backends) == 2 and dtype == config.spec.dtype:
        # why the contract broke, where the numbers say (a reduction used for maximum,
        # gradients transposed, ...), on the rows the equivalence check would use
        from harness.checks.run import _diagnosed, check_rows

        broken = {f.backend for f in findings}
        reference, candidate = config.backends
        hung = any(f.error_type == "CallTimedOut" for f in findings)  # nothing numerical to explain
        if candidate in broken and reference not in broken and not hung:
            _diagnosed(result, config, *check_rows(config, data), reference, candidate)
    return result


def _batch(config: CheckConfig, data) -> tuple[np.ndarray, np.ndarray]:
    dims = config.spec.dims
    if data is None:
        rng = np.random.default_rng(config.spec.seed)
        x = rng.standard_normal((PREFLIGHT_ROWS, dims[0]))
        y = np.arange(PREFLIGHT_ROWS, dtype=np.int64) % dims[-1]
        return x, y
    from harness.checks.run import check_rows

    x, y = check_rows(config, data)
    return x[:PREFLIGHT_ROWS], np.asarray(y[:PREFLIGHT_ROWS], dtype=np.int64)


class _Stop(Exception):
    """The rest of the contract cannot be checked (the finding is recorded)."""


def _contract(name: str, model, x, y, dtype: str) -> list[Finding]:
    """The broken rules of one plug-in, checked on ``model`` and one more fresh model."""
    from harness.checks.outcome import finding_of
    from harness.model.contract import ContractViolation, method_location

    findings: list[Finding] = []

    def broke(method: str, message: str) -> None:
        where, source = method_location(_inner(model), method)
        findings.append(ContractFinding(name, method, "ContractViolation", message, where,
                                        source))

    def call(method: str, *args):
        try:
            return getattr(model, method)(*args)
        except BackendRaised as exc:
            f = finding_of(exc)
            if isinstance(exc.original, ContractViolation):
                f = ContractFinding(f.backend, f.method, f.error_type, f.message, f.where,
                                    f.source)
            findings.append(f)
            raise _Stop from exc

    xd = x.astype(dtype)
    try:
        with held_masks(model):  # every training pass here: the same dropout masks
            _contract_rules(name, model, xd, y, dtype, call, broke)
    except _Stop:
        pass
    return findings


def _contract_rules(name: str, model, xd, y, dtype: str, call, broke) -> None:
    """The rules of :func:`_contract`, in order (``call`` raises _Stop on a raise)."""
    from harness.model.contract import check_copies, check_train_step_loss, dtype_violations

    params = call("get_params")
    got = {np.asarray(v).dtype.name for v in params.values()}
    if dtype == "float32" and got == {"float64"}:
        logits = _quiet(model, "forward", xd)
        also = " and logits" if getattr(logits, "dtype", None) == np.float64 else ""
        raise ConfigError(
            f"`{name}` computes in float64 when float32 was asked (its parameters{also} "
            f"are float64); it does not support --dtype float32")
    for method, message in dtype_violations(dtype, params=params):
        broke(method, message)
    logits = call("forward", xd)
    for method, message in dtype_violations(dtype, logits=logits):
        broke(method, message)
    loss, grads = call("loss_and_grads", xd, y)
    if not math.isfinite(float(np.asarray(loss).reshape(()))):
        broke("loss_and_grads", f"returned a non-finite loss ({float(np.asarray(loss))}) "
                                f"on {len(y)} rows of the data at the initial parameters")
    for method, message in dtype_violations(dtype, grads=grads):
        broke(method, message)
    check_copies(call, broke, params)
    check_train_step_loss(call, broke, xd, y, loss, dtype)


def _inner(model):
    from harness.checks.guard import unwrap
    from harness.model.masks import unwrap as without_masks

    return without_masks(unwrap(model))


def _quiet(model, method, *args):
    try:
        return getattr(_inner(model), method)(*args)
    except Exception:  # noqa: BLE001 - only to word a message better
        return None
