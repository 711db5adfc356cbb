"""A configuration on which float32 rounding is amplified (the calibration's configuration 233
of seed 0 before the draws included the newer recipes): digits 64-8-25-2-10, tanh, SGD lr
0.29, momentum 0.89, batches of 4; float32 runs part from float64 exponentially."""

AMPLIFYING_CONFIG = {
    "index": 233, "dataset": "digits", "n_samples": None, "n_features": None,
    "n_classes": None, "data_seed": None, "feature_scale": 1.0, "hidden": [8, 25, 2],
    "activation": "tanh", "dtype": "float32", "optimizer": "sgd",
    "weight_decay": 0.0003096714591802899, "lr": 0.2947790127191306,
    "momentum": 0.8911266873519685, "nesterov": False, "beta1": None, "beta2": None,
    "eps": None, "batch_size": 4, "seed": 18071,
}
