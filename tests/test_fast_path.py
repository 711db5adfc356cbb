"""The fast scratch MLP: same numbers as the readable reference and as torch, buffers
reused, float32 kept, nothing aliased that a caller keeps. Correctness only, no timing."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from harness import ModelSpec, OptimizerSpec, check_equivalence, make_backend
from scratch import MLP
from scratch.activations import ACTIVATIONS, activate_inplace, relu_inplace
from scratch.losses import cross_entropy_grad, softmax_cross_entropy_t
from scratch.optimizers import SGD, make_optimizer
from scratch.reference import ReferenceMLP

ACTS = list(ACTIVATIONS)
ARCHS = [(5, 3), (5, 8, 3), (5, 7, 6, 3), (5, 16, 1, 8, 3)]
TOL = {"float64": dict(rtol=1e-10, atol=1e-12), "float32": dict(rtol=2e-4, atol=2e-6)}


def twins(dims, activation="relu", dtype="float64", seed=0, opt=("sgd", 0.05)):
    name, lr = opt
    fast = MLP(dims, activation, dtype, seed, optimizer=make_optimizer(name, lr=lr))
    ref = ReferenceMLP(dims, activation, dtype, seed, optimizer=make_optimizer(name, lr=lr))
    return fast, ref


def assert_close(a, b, dtype, what=""):
    a, b = np.asarray(a), np.asarray(b)
    assert a.dtype == b.dtype == np.dtype(dtype), (what, a.dtype, b.dtype)
    assert a.shape == b.shape, (what, a.shape, b.shape)
    np.testing.assert_allclose(a, b, err_msg=what, **TOL[dtype])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("activation", ACTS)
@pytest.mark.parametrize("dims", ARCHS, ids=str)
def test_fast_equals_reference_everywhere(dims, activation, dtype, batch):
    fast, ref = twins(dims, activation, dtype, seed=3)
    for n in (1, 6, 33):
        x, y = batch(n=n, d=dims[0], c=dims[-1], seed=n)
        x = x.astype(dtype)
        assert_close(fast.forward(x), ref.forward(x), dtype, "logits")
        lf, gf = fast.loss_and_grads(x, y)
        lr_, gr = ref.loss_and_grads(x, y)
        assert isinstance(lf, float)
        assert lf == pytest.approx(lr_, rel=TOL[dtype]["rtol"])
        assert list(gf) == list(gr)
        for k in gr:
            assert_close(gf[k], gr[k], dtype, f"grads[{k}]")
        inter_f, inter_r = fast.intermediates(x, y), ref.intermediates(x, y)
        assert list(inter_f) == list(inter_r)  # the names and order others rely on
        for k in inter_r:
            assert_close(inter_f[k], inter_r[k], dtype, k)
        assert fast.train_step(x, y) == pytest.approx(ref.train_step(x, y),
                                                      rel=TOL[dtype]["rtol"])
        for k in ref.params:
            assert_close(fast.params[k], ref.params[k], dtype, f"params[{k}] after step")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("optimizer", [OptimizerSpec("sgd", lr=0.1, momentum=0.9, weight_decay=0.0),
                                       OptimizerSpec("adam", lr=1e-2, weight_decay=1e-3)],
                         ids=["sgd-momentum", "adam"])
def test_fast_path_trains_like_torch_across_changing_batch_sizes(dtype, optimizer, batch):
    """Ten steps with batch sizes 16, 16, 5, 16, 5, 7 (three workspaces, one evicted)."""
    spec = ModelSpec((6, 12, 9, 4), dtype=dtype, seed=1)
    torch_model = make_backend("torch", spec, optimizer)
    fast = make_backend("scratch", spec, optimizer)
    fast.set_params(torch_model.get_params())
    for step, n in enumerate([16, 16, 5, 16, 5, 7, 7, 16, 5, 16]):
        x, y = batch(n=n, d=6, c=4, seed=step)
        x = x.astype(dtype)
        assert fast.train_step(x, y) == pytest.approx(torch_model.train_step(x, y),
                                                      rel=1e-4 if dtype == "float32" else 1e-9)
    theirs, ours = torch_model.get_params(), fast.get_params()
    for k in theirs:
        np.testing.assert_allclose(ours[k], theirs[k], rtol=1e-3 if dtype == "float32" else 1e-8,
                                   atol=1e-5 if dtype == "float32" else 1e-11)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_check_equivalence_passes_for_the_fast_path_on_digits(dtype, digits):
    X, y = digits
    spec = ModelSpec((64, 32, 10), dtype=dtype)
    report = check_equivalence(make_backend("torch", spec), make_backend("scratch", spec),
                               X[:64], y[:64])
    assert report.passed, str(report)


@pytest.mark.parametrize("activation", ACTS)
def test_float32_stays_float32_end_to_end(activation, batch):
    model = MLP((5, 8, 6, 3), activation, "float32", optimizer=make_optimizer("adam"))
    x, y = batch(n=9)
    assert model.forward(x).dtype == np.float32  # float64 input is cast once, at the door
    loss, grads = model.loss_and_grads(x.astype(np.float32), y)
    assert all(g.dtype == np.float32 for g in grads.values())
    assert all(v.dtype == np.float32 for v in model.intermediates(x, y).values())
    model.train_step(x.astype(np.float32), y)
    assert all(p.dtype == np.float32 for p in model.params.values())
    ws = model._workspace(9)
    assert ws.logits_t.dtype == np.float32
    assert all(h.dtype == np.float32 for h in ws.hidden)


def test_results_handed_out_are_never_overwritten_by_later_calls(batch):
    model = MLP((5, 8, 3), dtype="float64")
    x1, y1 = batch(n=10, seed=1)
    x2, y2 = batch(n=10, seed=2)
    logits = model.forward(x1)
    loss, grads = model.loss_and_grads(x1, y1)
    inter = model.intermediates(x1, y1)
    saved = ({k: v.copy() for k, v in grads.items()}, logits.copy(),
             {k: v.copy() for k, v in inter.items()})
    model.forward(x2)
    model.loss_and_grads(x2, y2)
    model.intermediates(x2, y2)
    model.train_step(x2, y2)
    for k in grads:
        np.testing.assert_array_equal(grads[k], saved[0][k])
    np.testing.assert_array_equal(logits, saved[1])
    for k in inter:
        np.testing.assert_array_equal(inter[k], saved[2][k])
    params = model.get_params()
    params["W0"][...] = 0  # get_params hands out copies
    assert np.any(model.params["W0"] != 0)


def test_train_step_updates_parameters_in_place_with_reused_buffers(batch):
    seen = []

    class Recording(SGD):
        def step(self, params, grads):
            seen.append((params, {k: id(v) for k, v in grads.items()}))
            super().step(params, grads)

    model = MLP((5, 8, 6, 3), optimizer=Recording(lr=0.1))
    x, y = batch(n=12)
    before = {k: v for k, v in model.params.items()}
    model.train_step(x, y)
    ws = model._workspace(12)
    buffers = [id(h) for h in ws.hidden] + [id(ws.logits_t)]
    model.train_step(x, y)
    assert all(model.params[k] is before[k] for k in before)  # same arrays, updated in place
    assert seen[0][0] is model.params and seen[1][0] is model.params
    assert seen[0][1] == seen[1][1]  # the same gradient buffers both steps
    ws2 = model._workspace(12)
    assert ws2 is ws and [id(h) for h in ws2.hidden] + [id(ws2.logits_t)] == buffers


def test_workspaces_are_kept_per_batch_size_and_bounded(batch):
    model = MLP((5, 8, 3))
    for n in (4, 7, 4, 7):
        model.train_step(*batch(n=n))
    assert sorted(model._workspaces) == [4, 7]
    model.train_step(*batch(n=9))
    assert sorted(model._workspaces) == [7, 9]  # the least recently used went


def test_set_params_after_steps_is_used_by_the_fast_path(batch):
    fast, ref = twins((5, 8, 3), seed=0)
    x, y = batch(n=8)
    fast.train_step(x, y)  # buffers now exist
    other = ReferenceMLP((5, 8, 3), seed=7)
    fast.set_params(other.get_params())
    ref.set_params(other.get_params())
    assert_close(fast.forward(x), ref.forward(x), "float64")
    assert fast.train_step(x, y) == pytest.approx(ref.train_step(x, y), rel=1e-12)


def test_inputs_of_other_dtypes_and_integer_label_types(batch):
    fast, ref = twins((5, 8, 3))
    x, y = batch(n=11)
    for xs, ys in ((x.astype(np.float32), y.astype(np.int32)), (x, y.astype(np.uint8))):
        lf, _ = fast.loss_and_grads(xs, ys)
        lr_, _ = ref.loss_and_grads(xs, ys.astype(np.int64))
        assert lf == pytest.approx(lr_, rel=1e-12)
    with pytest.raises(ValueError, match="shape"):
        fast.forward(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="N >= 1"):
        fast.forward(np.zeros((0, 5)))
    with pytest.raises(ValueError, match="y must have shape"):
        fast.train_step(x, y[:-1])


def test_the_training_step_allocates_nothing_of_activation_size():
    """After a first step, a forward and backward pass reuses its buffers: what it
    allocates is a few per-sample vectors and NumPy's fixed-size casting buffers, far
    below one activation."""
    dims, n = (64, 256, 256, 10), 512
    model = MLP(dims, dtype="float32")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, 64)).astype(np.float32)
    y = rng.integers(0, 10, n)
    model.train_step(x, y)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        model._loss_and_grads_into(x, y, model._grads)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    one_activation = n * 256 * 4
    assert peak < one_activation / 8, peak


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_transposed_softmax_cross_entropy_matches_the_readable_one(dtype):
    rng = np.random.default_rng(0)
    n, c = 13, 4
    logits = (rng.standard_normal((n, c)) * 3).astype(dtype)
    logits[0] = [1e4, -1e4, 0.0, 5.0]  # huge logits stay finite
    y = rng.integers(0, c, n)
    loss_ref, grad_ref = cross_entropy_grad(logits, y)
    z_t = np.ascontiguousarray(logits.T)
    buffers = dict(row_max=np.empty(n, dtype), row_sum=np.empty(n, dtype),
                   columns=np.arange(n), flat_index=np.empty(n, np.intp))
    loss = softmax_cross_entropy_t(z_t, y, **buffers)
    assert np.isfinite(loss)
    assert loss == pytest.approx(loss_ref, rel=1e-6 if dtype == "float32" else 1e-13)
    assert z_t.dtype == np.dtype(dtype)
    np.testing.assert_allclose(z_t.T, grad_ref, **TOL[dtype])
    np.testing.assert_allclose(z_t.sum(axis=0), 0, atol=1e-6)  # each sample's dz sums to 0


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", ACTS)
def test_activate_inplace_matches_the_function_and_its_derivative(name, dtype):
    f, f_grad = ACTIVATIONS[name]
    rng = np.random.default_rng(1)
    z = (rng.standard_normal((7, 5)) * 2).astype(dtype)
    z[0, :3] = 0  # the kink
    expected_a, expected_d = f(z), f_grad(z, f(z))
    h = z.copy()
    zeros = np.zeros_like(z)
    mask = np.empty(z.shape, bool)
    deriv = activate_inplace(name, h, zeros, mask)
    np.testing.assert_array_equal(h, expected_a)
    assert h.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(np.asarray(deriv, dtype=dtype), expected_d)
    assert activate_inplace(name, z.copy(), zeros, mask, need_deriv=False) is None


def test_relu_inplace_mask_is_the_left_derivative_at_zero():
    z = np.array([[-1.0, 0.0, 2.0]])
    mask = np.empty(z.shape, bool)
    relu_inplace(z, np.zeros_like(z), mask)
    np.testing.assert_array_equal(z, [[0.0, 0.0, 2.0]])
    np.testing.assert_array_equal(mask, [[False, False, True]])
