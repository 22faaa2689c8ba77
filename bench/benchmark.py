"""sda against plain PyTorch on the SdA protocol, on this machine, in one run.

    python bench/benchmark.py            # about 5-8 minutes on 2 cores
    python bench/benchmark.py --quick    # fewer steps per measurement
    python bench/benchmark.py --modes JAX --torch-device cuda    # on a GPU machine

Prints two tables:

1. Seconds per epoch (50,000 MNIST images) of pretraining each layer of a 784-1000-1000-1000
   SdA and of fine-tuning it, at batch 1 and batch 20, for sda in each installed fast mode and
   for PyTorch, with the ratio sda / PyTorch (below 1: sda is faster).  Each number is the
   time of a run of minibatches (after a warm-up) scaled to the epoch's number of minibatches.
2. Throughput of the pretraining step of layer 0 and of the fine-tuning step in GFLOP/s
   (matrix products only) at batch 1, 20, 100 and 500, as a share of the machine's float32
   matrix multiply rate (numpy GEMM, 2000x2000, all cores).
3. Every phase of a run at batch 100, for each mode: GFLOP per epoch, seconds per epoch and
   share of the GEMM rate of pretraining each layer (with the one pass that fills a layer's
   input cache), of fine-tuning and of a validation pass over 10,000 images, and the seconds of
   compiling (PyTensor's, and what NUMBA and JAX compile at a function's first call).

``--tables`` chooses among them (``--tables phases`` alone takes a few minutes with ``--quick``).
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

N_TRAIN = 50_000
SIZES = [784, 1000, 1000, 1000]


def sgemm_gflops(n=2000, repeats=10):
    a = np.random.rand(n, n).astype(np.float32)
    a @ a
    start = time.perf_counter()
    for _ in range(repeats):
        a @ a
    return 2 * n ** 3 * repeats / (time.perf_counter() - start) / 1e9


def step_flops(phase, batch):
    """Multiply-adds x 2 of the matrix products in one step."""
    if phase.startswith("pretrain"):
        k = int(phase[-1])
        return 10 * batch * SIZES[k] * SIZES[k + 1]  # encode, decode, 3 gradient products
    macs = sum(a * b for a, b in zip(SIZES[:-1], SIZES[1:])) + SIZES[-1] * 10
    # forward, weight gradients, input gradients (none for the first layer's input)
    return 2 * batch * (3 * macs - SIZES[0] * SIZES[1])


def forward_flops(n):
    """Multiply-adds x 2 of the matrix products of the network's forward pass over ``n`` images."""
    return 2 * n * (sum(a * b for a, b in zip(SIZES[:-1], SIZES[1:])) + SIZES[-1] * 10)


def timed(run_chunk, steps_per_chunk, min_steps, min_seconds, rounds=3):
    """Seconds per step: warm up once, then, in each of ``rounds`` rounds, run whole chunks
    until both minimums are met; the best round counts (as timeit does: the others were
    slowed by something else)."""
    run_chunk(0)
    chunk, best = 1, float("inf")
    for _ in range(rounds):
        steps, start = 0, time.perf_counter()
        while steps < min_steps or time.perf_counter() - start < min_seconds:
            run_chunk(chunk)
            steps += steps_per_chunk
            chunk += 1
        best = min(best, (time.perf_counter() - start) / steps)
    return best


def sda_timings(mode, batch, data, min_steps, min_seconds, steps_per_call,
                phases=("pretrain layer 0", "pretrain layer 1", "pretrain layer 2", "fine-tune")):
    import pytensor

    from sda.datasets import shared_dataset
    from sda.SdA import SdA

    pytensor.config.floatX = "float32"
    x, y = data
    datasets = [shared_dataset((x, y))] * 3
    model = SdA(np.random.RandomState(0), hidden_layers_sizes=SIZES[1:], corruption_levels=[0.1, 0.2, 0.3])
    out = {}
    for k, step in enumerate(model.pretraining_functions(datasets[0][0], batch, mode, steps_per_call=steps_per_call)):
        if f"pretrain layer {k}" not in phases:
            continue
        step.prepare()
        per = step.steps_per_call
        out[f"pretrain layer {k}"] = timed(
            lambda c: np.asarray(step((c * per) % step.n_batches, 0.1, 0.001)), per, min_steps, min_seconds)
    train_step = model.build_finetune_functions(datasets, batch, 0.1, mode, steps_per_call=steps_per_call)[0]
    per = train_step.steps_per_call
    out["fine-tune"] = timed(lambda c: np.asarray(train_step((c * per) % train_step.n_batches)), per, min_steps,
                             min_seconds)
    return out


def phase_timings(mode, batch, data, valid, min_steps, min_seconds):
    """``{phase: (FLOPs per epoch, seconds per epoch)}`` of every phase of a run at ``batch``, and
    ``compile`` (FLOPs None): PyTensor's compiling of every function plus each function's first
    call less a later one (NUMBA and JAX compile there)."""
    import pytensor

    from sda.datasets import shared_dataset
    from sda.SdA import SdA

    pytensor.config.floatX = "float32"
    start = time.perf_counter()
    train, valid = shared_dataset(data), shared_dataset(valid)
    model = SdA(np.random.RandomState(0), hidden_layers_sizes=SIZES[1:], corruption_levels=[0.1, 0.2, 0.3])
    steps = model.pretraining_functions(train[0], batch, mode)
    train_step, validate, _ = model.build_finetune_functions([train, valid, None], batch, 0.1, mode)
    compile_seconds = time.perf_counter() - start
    n_train, n_valid = len(data[0]), len(valid[1].get_value(borrow=True))
    out = {}

    def first_call(call):
        begin = time.perf_counter()
        call()
        return time.perf_counter() - begin

    for k, step in enumerate(steps):
        fill = first_call(step.prepare) if k else 0.0  # encodes the training set through layers < k
        first = first_call(lambda: np.asarray(step(0, 0.1, 0.001)))
        per_step = timed(lambda c: np.asarray(step(c % step.n_batches, 0.1, 0.001)), 1, min_steps, min_seconds)
        compile_seconds += max(0.0, first - per_step)
        if k:  # once per layer, not per epoch
            out[f"input cache {k}, once"] = (2 * n_train * sum(a * b for a, b in zip(SIZES[:k], SIZES[1:k + 1])), fill)
        out[f"pretrain layer {k}"] = (step_flops(f"pretrain layer {k}", batch) * step.n_batches,
                                      per_step * step.n_batches)
    first = first_call(lambda: np.asarray(train_step(0)))
    per_step = timed(lambda c: np.asarray(train_step(c % train_step.n_batches)), 1, min_steps, min_seconds)
    compile_seconds += max(0.0, first - per_step)
    out["fine-tune"] = (step_flops("fine-tune", batch) * train_step.n_batches, per_step * train_step.n_batches)
    first = first_call(lambda: np.asarray(validate()))
    per_pass = timed(lambda c: np.asarray(validate()), 1, 3, min_seconds)
    compile_seconds += max(0.0, first - per_pass)
    out[f"validation ({n_valid:,})"] = (forward_flops(n_valid), per_pass)
    out["compile"] = (None, compile_seconds)
    return out


def torch_timings(batch, data, min_steps, min_seconds, device="cpu"):
    import torch
    from torch_sda import TorchSdA, finetune_step, pretrain_step

    x = torch.tensor(data[0], device=device)
    y = torch.tensor(data[1], dtype=torch.long, device=device)
    model = TorchSdA(device=device)
    g = torch.Generator(device=device).manual_seed(0)
    n_batches = len(x) // batch
    sync = torch.cuda.synchronize if device != "cpu" else (lambda: None)
    out = {}
    for k in range(3):
        inputs = model.layer_input(k, x)

        def run(c, k=k, inputs=inputs):
            i = c % n_batches
            pretrain_step(model, k, inputs[i * batch:(i + 1) * batch], 0.1 * (k + 1), 0.001, g)
            sync()
        out[f"pretrain layer {k}"] = timed(run, 1, min_steps, min_seconds)

    def run_ft(c):
        i = c % n_batches
        finetune_step(model, x[i * batch:(i + 1) * batch], y[i * batch:(i + 1) * batch], 0.1)
        sync()
    out["fine-tune"] = timed(run_ft, 1, min_steps, min_seconds)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="shorter measurements")
    parser.add_argument("--modes", nargs="+", help="sda modes to time (default: every installed fast one)")
    parser.add_argument("--torch-device", default="cpu",
                        help="where PyTorch runs: cpu, or cuda to compare with sda's JAX on a GPU")
    parser.add_argument("--jax-steps-per-call", type=int, default=250,
                        help="minibatches per compiled call for JAX (CVM and NUMBA use 1)")
    parser.add_argument("--tables", nargs="+", choices=("epochs", "throughput", "phases"),
                        default=["epochs", "throughput", "phases"], help="which tables to measure (default: all)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    import pytensor

    import sda
    from sda.data import load_mnist
    from sda.modes import available_modes, device_description

    modes = args.modes or [m for m in ("CVM", "JAX", "NUMBA") if m in available_modes()]
    min_steps, min_seconds = (100, 0.3) if args.quick else (250, 1.0)
    split = load_mnist()
    data = (split.train[0][:N_TRAIN], split.train[1][:N_TRAIN])
    peak = sgemm_gflops()
    try:
        import torch
        torch_version = torch.__version__
    except ImportError:
        torch_version = None
    print(f"sda {sda.__version__}, pytensor {pytensor.__version__}, torch {torch_version}, "
          f"{device_description('JAX' if 'JAX' in modes else 'CVM')}; numpy float32 GEMM {peak:.0f} GFLOP/s")

    if "epochs" in args.tables:
        epoch_table(modes, data, min_steps, min_seconds, args, torch_version)
    if "throughput" in args.tables:
        throughput_table(modes, data, min_steps, min_seconds, args, peak)
    if "phases" in args.tables:
        phase_table(modes, data, split.valid, min_steps, min_seconds, peak)


def epoch_table(modes, data, min_steps, min_seconds, args, torch_version):
    print("\nseconds per epoch of 50,000 images (ratio = sda / PyTorch)")
    print(f"{'batch':>5}  {'phase':<17}" + "".join(f"{m:>9}" for m in modes) + f"{'PyTorch':>9}  ratio (best sda)")
    for batch in (1, 20):
        n_batches = N_TRAIN // batch
        results = {m: sda_timings(m, batch, data, min_steps, min_seconds,
                                  args.jax_steps_per_call if m == "JAX" else 1) for m in modes}
        reference = torch_timings(batch, data, min_steps, min_seconds, args.torch_device) if torch_version else None
        for phase in next(iter(results.values())):
            row = [results[m][phase] * n_batches for m in modes]
            line = f"{batch:>5}  {phase:<17}" + "".join(f"{v:>9.2f}" for v in row)
            if reference:
                ref = reference[phase] * n_batches
                line += f"{ref:>9.2f}  {min(row) / ref:.2f} ({modes[int(np.argmin(row))]})"
            print(line, flush=True)


def throughput_table(modes, data, min_steps, min_seconds, args, peak):
    print(f"\nthroughput, GFLOP/s (share of the {peak:.0f} GFLOP/s GEMM rate)")
    print(f"{'batch':>5}  {'phase':<17}" + "".join(f"{m:>16}" for m in modes))
    for batch in (1, 20, 100, 500):
        results = {m: sda_timings(m, batch, data, max(20, min_steps // batch), min_seconds / 2,
                                  args.jax_steps_per_call if m == "JAX" and batch <= 20 else 1,
                                  phases=("pretrain layer 0", "fine-tune"))
                   for m in modes}
        for phase in ("pretrain layer 0", "fine-tune"):
            cells = []
            for m in modes:
                gflops = step_flops(phase, batch) / results[m][phase] / 1e9
                cells.append(f"{gflops:>8.1f} ({gflops / peak:>4.0%})")
            print(f"{batch:>5}  {phase:<17}" + "".join(f"{c:>16}" for c in cells), flush=True)


def phase_table(modes, data, valid, min_steps, min_seconds, peak, batch=100):
    print(f"\nevery phase at batch {batch}: GFLOP per epoch, seconds per epoch, share of the {peak:.0f} GFLOP/s "
          f"GEMM rate")
    results = {m: phase_timings(m, batch, data, valid, max(20, min_steps // 5), min_seconds / 2) for m in modes}
    print(f"{'phase':<20}{'GFLOP':>8}" + "".join(f"{m:>18}" for m in modes))
    for phase in next(iter(results.values())):
        flops = results[modes[0]][phase][0]
        cells = []
        for m in modes:
            seconds = results[m][phase][1]
            cells.append(f"{seconds:>8.2f} s" + ("" if flops is None else f" ({flops / seconds / 1e9 / peak:>4.0%})"))
        print(f"{phase:<20}{'' if flops is None else f'{flops / 1e9:.0f}':>8}" + "".join(f"{c:>18}" for c in cells),
              flush=True)


if __name__ == "__main__":
    main()
