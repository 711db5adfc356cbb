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

#: the configuration of issue 22's late changes and false alarms: iris 4-32-3 relu, SGD lr
#: 0.3 momentum 0.9 (weight decay 1e-4, the default), batches of 4, 20% held out. Float32
#: correct runs part from float64 from step 132 and are decorrelated by step 232 (seed 0);
#: float64 runs part from their witnesses by step 110 and decorrelate between steps 423
#: and 620 on seeds 3, 4 and 6. 12 epochs (360 steps) reach the late changes at step 301
EPOCHS_TO_SHOW_LATE = 12
LATE_CHANGE_CONFIG = {
    "dataset": "iris", "dims": (4, 32, 3), "activation": "relu", "optimizer": "sgd",
    "lr": 0.3, "momentum": 0.9, "weight_decay": 1e-4, "batch_size": 4, "val_fraction": 0.2,
    "epochs": EPOCHS_TO_SHOW_LATE,
}
