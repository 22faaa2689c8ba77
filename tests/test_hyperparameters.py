"""The hyperparameter table (sda.hyperparameters) is the one place a hyperparameter is declared:
the flags, the checks, the estimators' parameters and the sweep keys all follow it."""

import inspect
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from sda.cli import FLAGS, build_parser
from sda.config import TUTORIAL, validate_config
from sda.estimators import SdAClassifier
from sda.hyperparameters import HYPERPARAMETERS, estimator_hyperparameters, finetune_arguments, model_arguments
from sda.SdA import SdA
from sda.sweep_config import SweepConfigError, parse_sweep

ESTIMATOR_ONLY = {"validation_fraction": 0.0, "scale_inputs": True, "random_state": None, "mode": None, "verbose": 0}


def test_the_estimators_signature_is_the_tables():
    signature = inspect.signature(SdAClassifier.__init__).parameters
    expected = {h.name: h.estimator_value for h in estimator_hyperparameters()} | ESTIMATOR_ONLY
    assert {name: p.default for name, p in signature.items() if name != "self"} == expected
    assert set(SdAClassifier._parameter_constraints) == set(expected)
    for h in estimator_hyperparameters():  # documented, with the table's words
        assert f"{h.name} : default={h.estimator_value!r}" in SdAClassifier.__doc__


def test_every_key_has_a_flag_and_the_table_is_the_configuration():
    assert list(TUTORIAL) == [h.name for h in HYPERPARAMETERS]
    parser = build_parser("sda")
    dests = {action.dest: action.option_strings for action in parser._actions}
    assert all(FLAGS[h.name] in dests[h.name] for h in HYPERPARAMETERS)


def test_the_arguments_a_run_passes_are_the_models():
    config = validate_config(TUTORIAL)
    assert set(model_arguments(config)) <= set(inspect.signature(SdA.__init__).parameters)
    assert set(finetune_arguments(config)) <= set(inspect.signature(SdA.build_finetune_functions).parameters)
    assert model_arguments(config)["hidden_layers_sizes"] == [1000, 1000, 1000]


ADDED = """
import sda.hyperparameters as hp
hp.HYPERPARAMETERS += (hp.Hyperparameter("warmup_epochs", 0, hp._count(0), "epochs of warm-up", hp.TRAINING),)
from sda.cli import build_parser
from sda.config import TUTORIAL, validate_config
from sda.estimators import SdAClassifier
from sda.sweep_config import parse_sweep
parser = build_parser("sda")
assert parser.parse_args(["--warmup-epochs", "3"]).warmup_epochs == 3
assert "epochs of warm-up (tutorial: 0)" in " ".join(parser.format_help().split())
assert TUTORIAL["warmup_epochs"] == 0
try:
    validate_config({**TUTORIAL, "warmup_epochs": -1})
except ValueError as exc:
    assert "warmup_epochs must be >= 0" in str(exc), exc
else:
    raise AssertionError("validate_config let a negative warmup_epochs through")
assert "warmup_epochs" in SdAClassifier._parameter_constraints
assert parse_sweep("[search]\\nwarmup_epochs = [1, 2]").n_trials == 2
print("seen everywhere")
"""


def test_a_hyperparameter_added_to_the_table_is_seen_everywhere():
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(ADDED)], capture_output=True, text=True)
    assert done.returncode == 0 and "seen everywhere" in done.stdout, done.stderr


def test_the_old_spelling_of_layer_sizes_names_the_new_one():
    config = {**TUTORIAL}
    config["hidden_layers_sizes"] = config.pop("hidden_layer_sizes")
    with pytest.raises(ValueError, match="hidden_layers_sizes is now called hidden_layer_sizes"):
        validate_config(config)
    with pytest.raises(SweepConfigError, match=r"\[config\]: hidden_layers_sizes is now called hidden_layer_sizes$"):
        parse_sweep("[config]\nhidden_layers_sizes = [10]")


def test_one_noise_level_serves_every_layer_and_none_rises_as_the_tutorials():
    base = {**TUTORIAL, "hidden_layer_sizes": [5, 5, 5, 5, 5, 5]}
    assert validate_config({**base, "corruption_levels": 0.25})["corruption_levels"] == [0.25] * 6
    assert validate_config({**base, "corruption_levels": None})["corruption_levels"] == [0.1, 0.2, 0.3, 0.4, 0.5, 0.5]
    with pytest.raises(ValueError, match="one value per hidden layer"):
        validate_config({**base, "corruption_levels": [0.1, 0.2]})
    args = build_parser("sda").parse_args(["--hidden-layers", "4", "4", "--corruption", "0.2"])
    from sda.cli import config_from_args
    assert validate_config(config_from_args(args))["corruption_levels"] == [0.2, 0.2]


@pytest.mark.filterwarnings("ignore:SdAClassifier did not learn:sklearn.exceptions.ConvergenceWarning")  # one epoch
def test_a_gaussian_noise_of_one_or_more_is_the_same_for_the_run_and_the_estimator():
    """The estimator's constraints come from the table, so they no longer cap every noise at 1."""
    import numpy as np
    X, y = np.random.RandomState(0).rand(20, 4), np.arange(20) % 2
    model = SdAClassifier(hidden_layer_sizes=[3], corruption_type="gaussian", corruption_levels=1.5,
                          pretraining_epochs=1, training_epochs=1, mode="FAST_COMPILE")
    assert model.fit(X, y).model_.corruption_levels == [1.5]
    validate_config({**TUTORIAL, "hidden_layer_sizes": [3], "corruption_type": "gaussian", "corruption_levels": [1.5]})
    with pytest.raises(ValueError, match=r"corruption_levels must be in \[0, 1\)"):
        SdAClassifier(hidden_layer_sizes=[3], corruption_levels=1.5, mode="FAST_COMPILE").fit(X, y)


def test_layer_sizes_given_as_a_string_are_refused_as_a_whole():
    with pytest.raises(TypeError, match="hidden_layer_sizes must be a sequence of layer sizes, got '100'"):
        validate_config({**TUTORIAL, "hidden_layer_sizes": "100"})


def test_a_probability_is_below_1_also_in_the_type_it_is_computed_in(float32):
    largest = float(1 - np.finfo(np.float32).epsneg)  # the largest float32 below 1: at the bound, accepted
    assert validate_config({**TUTORIAL, "finetune_momentum": largest})["finetune_momentum"] == largest
    with pytest.raises(ValueError, match="which is 1 as a float32"):
        validate_config({**TUTORIAL, "finetune_momentum": 0.99999999})
    assert validate_config({**TUTORIAL, "finetune_lr_decay": 1e-300})["finetune_lr_decay"] == 1e-300
