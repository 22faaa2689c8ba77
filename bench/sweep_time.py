"""How long will a sweep take here?  ``python bench/sweep_time.py sweeps/jmlr_mnist.toml``

An estimate from measured per-epoch costs: for every network of the sweep it trains two
pretraining epochs per layer and two fine-tuning epochs on a fraction of the data (training,
validation and test sets cut alike), keeps the second epoch of each (the first one compiles),
scales it to the whole sets, and multiplies by each trial's epochs; the first epochs' extra time
is counted once per trial as compilation.  It assumes that every trial runs all its epochs (the
``fast`` preset's patience of 100 epochs never stops a 40-epoch run early; others may stop
sooner) and that trials run one at a time (on 2 cores two trials at once share the cores and
finish no sooner).
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import pytensor

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sda.run import train_SdA
from sda.sweep import load_sweep_data
from sda.sweep_config import read_sweep


def cut(datasets, fraction: float):
    """The first ``fraction`` of every set."""
    return [(x[:max(1, int(len(x) * fraction))], y[:max(1, int(len(y) * fraction))]) for x, y in datasets]


def measure(datasets, config: dict, mode, pretrain: bool) -> dict:
    """Seconds of the second pretraining epoch of each layer (if ``pretrain``), of the second
    fine-tuning epoch, and the first epochs' extra time (compilation)."""
    layer_epochs = []  # (layer, seconds so far of that layer) after every pretraining epoch

    def on_epoch_end(pretraining, state):
        if state is None:
            layer = len(pretraining.costs) - 1
            layer_epochs.append((layer, pretraining.seconds[layer]))

    run = train_SdA(datasets, mode=mode, progress=False, log=None, on_epoch_end=on_epoch_end,
                    **{**config, "pretraining_epochs": 2 if pretrain else 0, "training_epochs": 2,
                       "patience_epochs": 1000})
    first, second = (record["seconds"] for record in run.finetuning.history)
    result = {"finetune": second, "compile": first - second, "pretrain": []}
    for layer in range(len(config["hidden_layer_sizes"]) if pretrain else 0):
        one, two = [seconds for k, seconds in layer_epochs if k == layer]
        result["pretrain"].append(two - one)
        result["compile"] += one - (two - one)
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sweep", type=Path)
    parser.add_argument("--fraction", type=float, default=0.2, help="share of the data to time on (default 0.2)")
    args = parser.parse_args(argv)
    for notice in ("Explicitly requested dtype", "Skipping Assert"):  # JAX's, as the command line hides them
        warnings.filterwarnings("ignore", message=notice)
    sweep = read_sweep(args.sweep)
    with pytensor.config.change_flags(floatX="float32"):
        datasets = cut(load_sweep_data(sweep), args.fraction)
        layers, networks, total = {}, {}, 0.0
        for configuration in sweep.configurations:
            config = sweep.trial_config(configuration, sweep.seeds[0])
            sizes = [datasets[0][0].shape[1], *config["hidden_layer_sizes"]]
            layer_keys = [(a, b, config["pretrain_batch_size"]) for a, b in zip(sizes, sizes[1:])]
            network = (tuple(sizes), config["finetune_batch_size"])
            if network not in networks:
                pretrain = config["pretraining_epochs"] > 0 and any(key not in layers for key in layer_keys)
                timing = measure(datasets, config, sweep.run["mode"], pretrain)
                layers.update(zip(layer_keys, timing["pretrain"]))
                networks[network] = timing
                print(f"network {'-'.join(map(str, sizes))}: fine-tuning epoch {timing['finetune'] / args.fraction:.1f} s"
                      + "".join(f", pretraining epoch of {a}-{b} {layers[(a, b, bs)] / args.fraction:.1f} s"
                                for a, b, bs in layer_keys) + f", compilation {timing['compile']:.1f} s", flush=True)
            trial = (sum(config["pretraining_epochs"] * layers[key] for key in layer_keys if config["pretraining_epochs"])
                     + config["training_epochs"] * networks[network]["finetune"]) / args.fraction
            total += len(sweep.seeds) * (trial + networks[network]["compile"])
    print(f"estimate: {sweep.n_trials} trials, {total / 3600:.1f} hours one at a time on this machine "
          f"(mode {sweep.run['mode'] or 'AUTO'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
