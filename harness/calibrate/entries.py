"""The catalogue's entries: each bug of :mod:`harness.calibrate.catalogue` with the
configuration it needs to exist at all and what it can show (``expect``: see that
module's docstring)."""

from __future__ import annotations

from dataclasses import dataclass, field

from harness.calibrate.catalogue import (
    AdagradAccumulatorReset, AdagradNoLrDecay, AdamAsAdamW, AdamBiasCorrectionFrozen,
    AdamEpsInsideSqrt, AdamNoBiasCorrection, AdamStepOffByOne, AdamWAsAdam,
    BceFromProbabilities, BceOutputsSummed, BiasGradMean, ClipAfterStep, ClipPerParameter,
    DividesByNMinus1, GeluTanhApprox, LastLayerFrozenLate, LazyAdam, LeakySlopeDropped,
    LossNotAveraged, LowPrecisionSoftmax, LrCutLate, MomentumDampening,
    MseGradientWithoutTwo, NesterovIgnored, OneEntryOff, RMSpropEpsInsideSqrt,
    RMSpropForgetsAlpha, RMSpropStartsAtG2, ReluMaskAtZero, ReluNoMask, ScheduleNotApplied,
    ScheduleOneStepEarly, SigmoidNoOneMinus, SignFlipLayer, SoftmaxNoMaxSub, TanhOneMinusT,
    TransposedWeightGrad, WeightDecayNoBias, WeightDecayOutsideMomentum, WrongBeta2, MODULE,
)


@dataclass(frozen=True)
class Bug:
    """One catalogue entry: a class and the configuration it is run on.

    Attributes
    ----------
    key : str
        The entry's name in tables (a class may appear under several keys).
    cls : str
        The class's name in this module.
    description : str
    expect : str
        ``one_step``, ``trajectory`` or ``none`` (see the module docstring).
    activation : str
    optimizer : dict
        :class:`harness.OptimizerSpec` arguments.
    logit_scale : float
        The last layer's initial weights and biases are multiplied by this (large
        logits for the softmax case).
    expect_float32 : str, optional
        What the bug can show in float32 when it differs from ``expect``: ``unseen``
        for a bug below float32's resolution (a relative error of 1e-6).
    model : dict
        More :class:`harness.ModelSpec` arguments (the loss of the loss bugs).
    """

    key: str
    cls: str
    description: str
    expect: str = "one_step"
    activation: str = "relu"
    optimizer: dict = field(default_factory=lambda: {"name": "sgd", "lr": 0.05})
    logit_scale: float = 1.0
    expect_float32: str | None = None
    model: dict = field(default_factory=dict)

    @property
    def backend(self) -> str:
        return f"{MODULE}:{self.cls}"

    def expected(self, dtype: str) -> str:
        return self.expect_float32 if dtype == "float32" and self.expect_float32 else self.expect


_ADAM = {"name": "adam", "lr": 1e-2}
_SGD_M = {"name": "sgd", "lr": 0.05, "momentum": 0.9}
_RMSPROP = {"name": "rmsprop", "lr": 1e-3, "alpha": 0.9}
_ADAGRAD = {"name": "adagrad", "lr": 0.05, "initial_accumulator_value": 0.1}

CATALOGUE: tuple[Bug, ...] = (
    Bug("bce_outputs_summed", "BceOutputsSummed", BceOutputsSummed.__doc__,
        model={"loss": "bce"}),
    Bug("mse_gradient_without_two", "MseGradientWithoutTwo", MseGradientWithoutTwo.__doc__,
        model={"loss": "mse"}),
    Bug("bce_from_probabilities@large_logits", "BceFromProbabilities",
        BceFromProbabilities.__doc__, logit_scale=1e4, model={"loss": "bce"}),
    Bug("sigmoid_no_one_minus", "SigmoidNoOneMinus", SigmoidNoOneMinus.__doc__,
        activation="sigmoid"),
    Bug("tanh_one_minus_t", "TanhOneMinusT", TanhOneMinusT.__doc__, activation="tanh"),
    Bug("relu_no_mask", "ReluNoMask", ReluNoMask.__doc__),
    Bug("leaky_slope_dropped", "LeakySlopeDropped", LeakySlopeDropped.__doc__,
        activation="leaky_relu"),
    Bug("gelu_tanh_approx", "GeluTanhApprox", GeluTanhApprox.__doc__, activation="gelu"),
    Bug("bias_grad_mean", "BiasGradMean", BiasGradMean.__doc__, activation="tanh"),
    Bug("transposed_weight_grad", "TransposedWeightGrad", TransposedWeightGrad.__doc__,
        activation="tanh"),
    Bug("one_entry_1e-6", "OneEntryOff", OneEntryOff.__doc__, activation="tanh",
        expect_float32="unseen"),
    Bug("sign_flip_layer0", "SignFlipLayer", SignFlipLayer.__doc__, activation="tanh"),
    Bug("loss_not_averaged", "LossNotAveraged", LossNotAveraged.__doc__),
    Bug("divides_by_n_minus_1", "DividesByNMinus1", DividesByNMinus1.__doc__),
    Bug("softmax_no_max_sub@large_logits", "SoftmaxNoMaxSub", SoftmaxNoMaxSub.__doc__,
        logit_scale=1e4),
    Bug("low_precision_softmax", "LowPrecisionSoftmax", LowPrecisionSoftmax.__doc__,
        activation="tanh", expect_float32="unseen"),
    Bug("adam_no_bias_correction", "AdamNoBiasCorrection", AdamNoBiasCorrection.__doc__,
        optimizer=_ADAM),
    Bug("adam_eps_inside_sqrt", "AdamEpsInsideSqrt", AdamEpsInsideSqrt.__doc__,
        activation="tanh", optimizer=_ADAM),
    Bug("adam_step_off_by_one", "AdamStepOffByOne", AdamStepOffByOne.__doc__,
        optimizer=_ADAM),
    Bug("lazy_adam", "LazyAdam", LazyAdam.__doc__, expect="trajectory",
        optimizer={"name": "adam", "lr": 1e-2, "weight_decay": 1e-2}),
    Bug("weight_decay_no_bias", "WeightDecayNoBias", WeightDecayNoBias.__doc__,
        optimizer={"name": "adamw", "lr": 1e-2, "weight_decay": 0.1}),
    Bug("momentum_dampening", "MomentumDampening", MomentumDampening.__doc__,
        expect="trajectory", optimizer=_SGD_M),
    Bug("weight_decay_outside_momentum", "WeightDecayOutsideMomentum",
        WeightDecayOutsideMomentum.__doc__, expect="trajectory",
        optimizer={**_SGD_M, "weight_decay": 1e-2}),
    Bug("adamw_as_adam", "AdamWAsAdam", AdamWAsAdam.__doc__,
        optimizer={"name": "adamw", "lr": 1e-2, "weight_decay": 0.1}),
    Bug("adam_as_adamw", "AdamAsAdamW", AdamAsAdamW.__doc__,
        optimizer={"name": "adam", "lr": 1e-2, "weight_decay": 0.1}),
    Bug("nesterov_ignored", "NesterovIgnored", NesterovIgnored.__doc__,
        optimizer={**_SGD_M, "nesterov": True}),
    Bug("wrong_beta2", "WrongBeta2", WrongBeta2.__doc__, expect="trajectory",
        optimizer=_ADAM),
    Bug("rmsprop_eps_inside_sqrt", "RMSpropEpsInsideSqrt", RMSpropEpsInsideSqrt.__doc__,
        activation="tanh", optimizer=_RMSPROP),
    Bug("rmsprop_starts_at_g2", "RMSpropStartsAtG2", RMSpropStartsAtG2.__doc__,
        optimizer=_RMSPROP),
    Bug("rmsprop_forgets_alpha", "RMSpropForgetsAlpha", RMSpropForgetsAlpha.__doc__,
        expect="trajectory", optimizer=_RMSPROP),
    Bug("adagrad_no_lr_decay", "AdagradNoLrDecay", AdagradNoLrDecay.__doc__,
        expect="trajectory", optimizer={**_ADAGRAD, "lr_decay": 0.1}),
    Bug("adagrad_accumulator_reset", "AdagradAccumulatorReset",
        AdagradAccumulatorReset.__doc__, expect="trajectory", optimizer=_ADAGRAD),
    Bug("schedule_one_step_early", "ScheduleOneStepEarly", ScheduleOneStepEarly.__doc__,
        expect="trajectory", optimizer={**_SGD_M, "lr_schedule": "step", "step_size": 3,
                                        "gamma": 0.5}),
    Bug("schedule_one_step_early@exponential", "ScheduleOneStepEarly",
        ScheduleOneStepEarly.__doc__, optimizer={**_ADAM, "lr_schedule": "exponential",
                                                 "gamma": 0.9}),
    Bug("schedule_not_applied", "ScheduleNotApplied", ScheduleNotApplied.__doc__,
        expect="trajectory", optimizer={**_ADAM, "lr_schedule": "cosine", "t_max": 10}),
    Bug("clip_per_parameter", "ClipPerParameter", ClipPerParameter.__doc__,
        optimizer={**_SGD_M, "clip_grad_norm": 0.05}),
    Bug("clip_after_step", "ClipAfterStep", ClipAfterStep.__doc__,
        optimizer={"name": "sgd", "lr": 0.1, "clip_grad_value": 0.01}),
    Bug("lr_cut_late", "LrCutLate", LrCutLate.__doc__, expect="late", optimizer=_SGD_M),
    Bug("last_layer_frozen_late", "LastLayerFrozenLate", LastLayerFrozenLate.__doc__,
        expect="late", optimizer=_SGD_M),
    Bug("adam_bias_correction_frozen", "AdamBiasCorrectionFrozen",
        AdamBiasCorrectionFrozen.__doc__, expect="trajectory", optimizer=_ADAM),
    # controls: nothing to find
    Bug("relu_mask_at_zero (control)", "ReluMaskAtZero", ReluMaskAtZero.__doc__,
        expect="none"),
    # a latent bug: ordinary logits never overflow, the check's stress row (logits near
    # 1000) does
    Bug("softmax_no_max_sub@ordinary_logits", "SoftmaxNoMaxSub", SoftmaxNoMaxSub.__doc__),
)
