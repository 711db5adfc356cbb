"""The nn-harness pytest plugin: ``--nnh-backend``, three fixtures and the ``nnh`` marker.

Registered through the ``pytest11`` entry point (``nn_harness``), so it is active in
any test run where nn-harness is installed; load it explicitly with
``pytest -p harness.testing.plugin``. It imports nothing heavy until a fixture is used.

* ``--nnh-backend mymod:MyMLP``: the candidate backend of the fixtures
  (``--nnh-reference`` names the reference, default ``torch``).
* ``nnh_reference``, ``nnh_candidate``: factories; ``nnh_candidate(dims=(4, 16, 3),
  activation="tanh")`` builds the model (any of ``dims``, ``activation``, ``dtype``,
  ``seed``, ``optimizer``, ``loss_reduction``, ``weight_decay_in``,
  ``weight_decay_on``), ``.name`` is the backend name, and a factory can be handed to
  the assertions as it is (they build it with their own spec). Without a candidate
  named, tests using ``nnh_candidate`` are skipped with the reason.
* ``nnh_data("iris")``: a bundled data set (:func:`harness.data.datasets.load_dataset`) as
  standardised ``(X, y)``.
* ``@pytest.mark.nnh(backend=..., reference=..., dims=..., activation=..., ...)``:
  per-test defaults of the two factories.

A failure of a :mod:`harness.testing` assertion is reported with the harness's own
message (the comparison table, counts, localisation and likely causes) and the
test's line, without pytest's traceback.
"""

from __future__ import annotations

import sys

import pytest

_SPEC_KEYS = ("dims", "activation", "dtype", "seed", "optimizer", "loss_reduction",
              "weight_decay_in", "weight_decay_on")


def pytest_addoption(parser) -> None:
    group = parser.getgroup("nn-harness", "nn-harness equivalence tests")
    group.addoption("--nnh-backend", default=None, metavar="NAME",
                    help="the candidate of the nnh_candidate fixture: package.module:Class "
                         "(or scratch, torch)")
    group.addoption("--nnh-reference", default="torch", metavar="NAME",
                    help="the reference of the nnh_reference fixture (default: torch)")


def pytest_configure(config) -> None:
    config.addinivalue_line(
        "markers", "nnh(backend=None, reference=None, **spec): nn-harness equivalence test; "
                   "backend/reference and the spec (dims, activation, dtype, ...) of the "
                   "nnh_candidate and nnh_reference fixtures")


class ModelFactory:
    """Builds one backend with a spec: ``factory(dims=..., activation=..., ...)``.

    ``name`` is the backend name. Passed to a :mod:`harness.testing` assertion in
    place of a model, it is built there like a name.
    """

    def __init__(self, name: str, defaults: dict | None = None):
        from harness.model.registry import validate_backend_name

        self.name = validate_backend_name(name)
        self.defaults = dict(defaults or {})

    def __call__(self, dims=None, **spec):
        from harness.errors import ConfigError
        from harness.testing import build

        unknown = set(spec) - set(_SPEC_KEYS)
        if unknown:
            raise ConfigError(f"unknown option {sorted(unknown)[0]!r}; allowed: "
                              f"{', '.join(_SPEC_KEYS)}")
        kw = {**self.defaults, **{k: v for k, v in spec.items() if v is not None}}
        if dims is not None:
            kw["dims"] = dims
        if kw.get("dims") is None:
            raise ConfigError(f"building {self.name} needs `dims` (features, ..., classes)")
        model_spec = build.make_spec(kw["dims"], activation=kw.get("activation", "relu"),
                                     dtype=kw.get("dtype", "float64"), seed=kw.get("seed", 0),
                                     loss_reduction=kw.get("loss_reduction"))
        opt = build.make_optimizer(kw.get("optimizer"), weight_decay_in=kw.get("weight_decay_in"),
                                   weight_decay_on=kw.get("weight_decay_on"))
        return build.build(self.name, model_spec, opt)

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"ModelFactory({self.name!r})"


def _marker(request) -> dict:
    marker = request.node.get_closest_marker("nnh")
    return dict(marker.kwargs) if marker is not None else {}


def _spec_defaults(kw: dict) -> dict:
    return {k: v for k, v in kw.items() if k in _SPEC_KEYS}


@pytest.fixture
def nnh_reference(request) -> ModelFactory:
    """The reference backend's factory (``--nnh-reference``, default torch)."""
    kw = _marker(request)
    name = kw.get("reference") or request.config.getoption("nnh_reference")
    return ModelFactory(name, _spec_defaults(kw))


@pytest.fixture
def nnh_candidate(request) -> ModelFactory:
    """The candidate's factory (``--nnh-backend`` or ``@pytest.mark.nnh(backend=...)``)."""
    kw = _marker(request)
    name = kw.get("backend") or request.config.getoption("nnh_backend")
    if not name:
        pytest.skip("no candidate backend: pass --nnh-backend package.module:Class or mark "
                    "the test @pytest.mark.nnh(backend=...)")
    return ModelFactory(name, _spec_defaults(kw))


@pytest.fixture
def nnh_data():
    """``nnh_data(name="iris", *, n_samples=None, seed=0, input_shape=None)``:
    standardised ``(X, y)``.

    ``name`` is a bundled data set (digits, iris, wine, breast_cancer, synthetic,
    synthetic_images); ``n_samples`` keeps the first rows of a seeded shuffle (or sizes
    the synthetic sets). ``input_shape`` (C, H, W) gives images ``X`` (N, C, H, W),
    standardised per channel: ``nnh_data("digits", input_shape=(1, 8, 8))``; for
    synthetic_images it is the shape of its images.
    """
    def load(name: str = "iris", *, n_samples: int | None = None, seed: int = 0,
             input_shape=None):
        import numpy as np

        from harness.data.datasets import load_dataset, standardize

        synthetic = name in ("synthetic", "synthetic_images")
        size = {"n_samples": n_samples} if synthetic else {}
        if name == "synthetic_images":
            size["input_shape"] = input_shape
        data = load_dataset(name, seed=seed, **size)
        if input_shape is not None:
            data = data.as_images(input_shape)
        X, y = data.X, data.y
        if n_samples is not None and not synthetic:
            order = np.random.default_rng(seed).permutation(len(y))[:n_samples]
            X, y = X[order], y[order]
        (X,) = standardize(X)
        return X, y

    return load


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    excinfo = call.excinfo
    asserts = sys.modules.get("harness.testing.asserts")
    if (excinfo is None or not report.failed or asserts is None
            or not isinstance(excinfo.value, asserts.HarnessAssertionError)):
        return
    where = ""
    for entry in reversed(excinfo.traceback):
        if str(entry.path) == str(item.path):
            where = f"{item.path}:{entry.lineno + 1}: "
            break
    report.longrepr = f"{where}{type(excinfo.value).__name__}\n{excinfo.value}"
