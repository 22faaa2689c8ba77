"""Milliseconds per compiled call of a pretraining step (dA 784->1000) and of a fine-tuning
step (784-1000-1000-1000-10) in each installed mode, at batch sizes 1 and 20.

    python bench/bench_modes.py [--steps 300]

The numbers choose ``sda.modes.default_mode``; they are recorded in docs/RESULTS.md.
"""

import argparse
import time

import numpy as np
import pytensor

from sda.data import shared_dataset
from sda.modes import available_modes
from sda.SdA import SdA


def time_calls(fn, args_of, steps):
    fn(*args_of(0))  # compile / warm up
    start = time.perf_counter()
    for i in range(steps):
        fn(*args_of(i))
    return (time.perf_counter() - start) / steps * 1e3


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 20])
    args = parser.parse_args()
    pytensor.config.floatX = "float32"
    rng = np.random.RandomState(0)
    n = 2000
    data = shared_dataset((rng.uniform(size=(n, 784)).astype("float32"), rng.randint(10, size=n)))
    datasets = [data, data, data]
    print(f"{'mode':<14}{'batch':>6}{'dA step ms':>12}{'finetune step ms':>18}")
    for mode in [m for m in available_modes() if m != "FAST_COMPILE"]:
        for batch in args.batch_sizes:
            sda = SdA(np.random.RandomState(1), hidden_layers_sizes=[1000, 1000, 1000],
                      corruption_levels=[0.1, 0.2, 0.3])
            pre = sda.pretraining_functions(data[0], batch, mode)[0]
            train_fn, _, _ = sda.build_finetune_functions(datasets, batch, 0.1, mode)
            count = n // batch
            da_ms = time_calls(pre, lambda i: (i % count, 0.1, 0.001), args.steps)
            ft_ms = time_calls(train_fn, lambda i: (i % count,), args.steps)
            print(f"{mode:<14}{batch:>6}{da_ms:>12.3f}{ft_ms:>18.3f}", flush=True)


if __name__ == "__main__":
    main()
