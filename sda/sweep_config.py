"""A sweep's configuration file (TOML): read it, check it, and expand it into trials.

This module knows nothing of Ray: :mod:`sda.sweep` runs what it describes.  The format::

    preset = "fast"          # the base: a preset of sda.run.PRESETS (default "tutorial")
    seeds = 3                # run every configuration with 3 seeds: seed, seed + 1, seed + 2
                             # (or seeds = [89677, 1, 2]: those)
    num_samples = 4          # random search: 4 draws of the uniform/loguniform entries per grid point
    sample_seed = 0          # seeds those draws, so that a sweep is the same sweep every time

    [config]                 # fixed overrides of the preset: any key of sda.run.TUTORIAL
    training_epochs = 20

    [data]                   # where the data come from
    data_dir = "data/mnist"  # relative to the current directory, as on the command line
                             # (default: the repository's data/mnist)
    valid_size = 10000       # validation = the last this many training images
    verify = true            # check the MNIST checksums
    train_size = 5000        # optional: train on the first this many training images only
    # or your own file instead of data_dir, as --data (sda.own_data), relative to this file's folder:
    # data = "mine.npz"      # or "mine.csv"
    # label_column = "y"     # a .csv file's label column (--label-column; default: the last)
    # shuffle = false        # split the rows in the file's order (--no-shuffle; default: true)
    # valid_size defaults to a sixth of the file's rows (at most 10,000), as on the command line

    [run]                    # how to compute, not part of the configuration
    mode = "JAX"             # a mode of sda.modes (default: AUTO)
    steps_per_call = 250

    [search]                 # what varies
    finetune_lr = [0.05, 0.1]                 # a list is a grid axis
    pretrain_lr = {loguniform = [1e-3, 1e-1]} # a range is searched at random
    finetune_momentum = {uniform = [0.0, 0.9]}

    [[variants]]             # optional: named configurations, each run with the [search] grid
    name = "sparse"          # (an ablation's rows); its other keys override the preset and [config]
    criteria = "sparse"
    [[variants]]
    name = "denoising"

    [scheduler]              # optional early stopping of bad trials on the validation error
    type = "asha"
    grace_period = 2         # fine-tuning epochs every trial runs at least
    reduction_factor = 3     # keep the best third at each rung
    max_t = 40               # optional: the rungs' last epoch (default: training_epochs)

Grids multiply: every combination of the lists (and of the seeds) is one trial.  With
``[[variants]]``, every variant is combined with every grid point; the results name each trial's
variant (a column ``variant``).

Layer shapes come from two or three axes through three convenience keys, allowed in
``[config]`` and ``[search]``: ``depth = D`` (hidden layers), ``units = U`` (units in every
hidden layer) and ``corruption_level = c`` (the masking level of every layer).  A trial's
``hidden_layer_sizes`` becomes ``[U] * D`` and its ``corruption_levels`` ``[c] * D``; a key that
is not given is taken from the preset's list when that already has D entries, else as its first
entry repeated D times.  So ``depth = [1, 2, 3]`` with ``units = [1000, 2000]`` sweeps the six
shapes of Vincent et al. (2010).  List-valued keys can also be swept directly: in ``[search]``
every list is a grid, so ``hidden_layer_sizes = [[500], [500, 500]]`` is a grid of two shapes.

Everything is checked before anything runs: unknown keys, bad values, and every configuration
of the expansion through :func:`sda.run.validate_config`.  Errors are :class:`SweepConfigError`.
"""

from __future__ import annotations

import copy
import itertools
import math
import numbers
import re
import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytensor

from sda.config import preset_with
from sda.hyperparameters import RENAMED, flags
from sda.modes import MODES
from sda.resources import shipped_sweeps
from sda.run import PRESETS, TUTORIAL, validate_config
from sda.sweep_data import DATA_KEYS, SweepConfigError, count, data_flags, data_source
from sda.utils import read_bounded
from sda.validation import check_number, check_seed

__all__ = ["SweepConfigError", "Sweep", "read_sweep", "parse_sweep", "LAYER_SHAPE_KEYS", "VARIANT", "rerun_command",
           "MAX_TRIALS", "validate_trials"]

#: The trials a sweep file may ask for unless the command says more (``--max-trials``): a
#: typo such as ``seeds = 1000000000`` is refused at once instead of filling the memory.
MAX_TRIALS = 1000

#: Convenience keys that build ``hidden_layer_sizes`` and ``corruption_levels`` (see above).
LAYER_SHAPE_KEYS = ("depth", "units", "corruption_level")
_TOP_KEYS = {"preset", "seeds", "num_samples", "sample_seed", "config", "data", "run", "search", "scheduler",
             "variants"}
VARIANT = "variant"  # the column naming a trial's variant
_RUN_KEYS = {"mode", "steps_per_call"}
_SCHEDULER_KEYS = {"type", "grace_period", "reduction_factor", "max_t"}
_RANDOM_KINDS = ("uniform", "loguniform")
_HYPERPARAMETERS = set(TUTORIAL) | set(LAYER_SHAPE_KEYS)
#: each convenience key and the list it builds: the two may not both be given
_CONFLICTS = {"units": "hidden_layer_sizes", "depth": "hidden_layer_sizes",
              "corruption_level": "corruption_levels"}


@dataclass
class Sweep:
    """A checked sweep: the base configuration, what varies, and the trials it expands to.

    ``configurations`` lists the swept values of each configuration (grid points, with the
    random draws made); ``seeds`` are run for each of them.
    """

    preset: str
    base: dict
    data: dict
    run: dict
    axes: list[str]
    configurations: list[dict]
    seeds: list[int]
    scheduler: dict | None
    random_axes: dict = field(default_factory=dict)
    text: str = field(default="", compare=False)  # the file as written, saved beside the results
    #: the hyperparameters the file sets ([config], [search], variants): the others are the preset's
    given: frozenset = field(default=frozenset(), compare=False)
    folder: str = field(default=".", compare=False)  # what a relative data = FILE is relative to

    @property
    def n_trials(self) -> int:
        return len(self.configurations) * len(self.seeds)

    def trial_config(self, configuration: dict, seed: int) -> dict:
        """The full configuration (every key of TUTORIAL) of one trial, for ``train_SdA``."""
        values = {key: value for key, value in configuration.items() if key != VARIANT}
        return expand_layer_shape({**self.base, **values, "seed": seed})


#: The largest sweep file read (real ones are a few KiB).
MAX_SWEEP_BYTES = 1 << 20
#: The deepest nesting of arrays and inline tables in a sweep file: tomllib recurses once per level.
MAX_TOML_DEPTH = 32
#: The longest line of a sweep file: a dotted key (``a.b.c = 1``, ``[a.b.c]``) lies on one line, and
#: tomllib's time grows with the square of its parts, so this bounds it too.
MAX_TOML_LINE = 4096
# what changes the nesting, and the strings and comments that may hold brackets, each matched whole
_TOML_TOKENS = re.compile(r'"""(?:\\.|[^\\])*?"""' r"|'''.*?'''" r'|"(?:\\.|[^"\\\n])*"' r"|'[^'\n]*'"
                          r"|#[^\n]*|[\[\]{}]", re.DOTALL)


def toml_depth(text: str) -> int:
    """How deeply TOML ``text`` nests arrays and inline tables, found without recursing (brackets
    in strings and comments do not count; a table header's brackets open and close at once)."""
    depth = deepest = 0
    for token in _TOML_TOKENS.finditer(text):
        bracket = token.group()
        if bracket in ("[", "{"):
            depth += 1
            deepest = max(deepest, depth)
        elif bracket in ("]", "}"):
            depth -= 1
    return deepest


def read_sweep(path, max_trials: int | None = MAX_TRIALS, folder=None) -> Sweep:
    """Read and check the sweep file ``path`` (at most :data:`MAX_SWEEP_BYTES`; see :func:`parse_sweep`);
    a relative ``data = FILE`` lies in ``folder``, by default the file's own."""
    path = Path(path)
    try:
        # utf-8-sig: a byte-order mark, as some editors write, is not part of the TOML
        text = read_bounded(path, MAX_SWEEP_BYTES, "sweep file").decode("utf-8-sig")
    except FileNotFoundError:
        raise SweepConfigError(f"sweep file {path} does not exist (shipped sweeps, given by name: "
                               f"{', '.join(shipped_sweeps())})") from None
    except OSError as exc:
        raise SweepConfigError(f"cannot read sweep file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise SweepConfigError(f"cannot read sweep file {path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except ValueError as exc:  # too large, or not a regular file
        raise SweepConfigError(f"sweep file {exc}") from None
    return parse_sweep(text, str(path), max_trials, folder=path.parent if folder is None else folder)


def parse_sweep(text: str, where: str = "sweep file", max_trials: int | None = MAX_TRIALS,
                folder: str | Path = ".") -> Sweep:
    """Check the TOML ``text`` of a sweep and expand it; ``where`` names it in messages.  Its size
    and nesting are bounded before it is parsed, and a file asking for more than ``max_trials``
    trials (None: no limit) is refused before any is made.  ``folder`` is the file's: a relative
    ``data = FILE`` lies there, whatever the current directory."""
    if len(text) > MAX_SWEEP_BYTES:
        raise SweepConfigError(f"{where} holds {len(text)} characters, more than a sweep file may ({MAX_SWEEP_BYTES})")
    depth = toml_depth(text)
    if depth > MAX_TOML_DEPTH:
        raise SweepConfigError(f"{where} nests arrays or tables {depth} deep, more than {MAX_TOML_DEPTH}")
    longest = max(map(len, text.splitlines()), default=0)
    if longest > MAX_TOML_LINE:
        raise SweepConfigError(f"{where} has a line of {longest} characters, more than {MAX_TOML_LINE}")
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SweepConfigError(f"{where} is not valid TOML: {exc}") from None
    try:
        sweep = _build(raw, max_trials, Path(folder))
    except SweepConfigError as exc:
        raise SweepConfigError(f"{where}: {exc}") from None
    except (ValueError, TypeError) as exc:  # validate_config's messages
        raise SweepConfigError(f"{where}: {' '.join(str(exc).split())}") from None
    sweep.text = text
    sweep.folder = str(Path(folder).resolve())
    return sweep


def _build(raw: dict, max_trials: int | None, folder: Path) -> Sweep:
    _refuse_unknown("the file's top level", raw, _TOP_KEYS)
    preset = raw.get("preset", "tutorial")
    if preset not in PRESETS:
        raise SweepConfigError(f"preset must be one of {sorted(PRESETS)}, got {preset!r}")
    fixed = _table(raw, "config")
    search = _table(raw, "search")
    _refuse_unknown("[config]", fixed, _HYPERPARAMETERS)
    _refuse_unknown("[search]", search, _HYPERPARAMETERS)
    _refuse_conflicts(fixed, search)
    if "seed" in search:
        raise SweepConfigError("sweep seeds with seeds = N or seeds = [s1, s2, ...], not in [search]")
    base = preset_with(preset, fixed)
    grid, random_axes = _split_search(search)
    variants = _variants(raw, fixed, search)
    seeds = raw.get("seeds", 1)
    n_trials = (math.prod(len(values) for values in grid.values()) * count(raw, "num_samples", 1)
                * max(1, len(variants)) * (len(seeds) if isinstance(seeds, list) else count(raw, "seeds", 1)))
    if max_trials is not None and n_trials > max_trials:
        raise SweepConfigError(f"the file asks for {n_trials:,} trials, more than the {max_trials:,} a sweep runs "
                               f"unless told (--max-trials N)")
    seeds = _seeds(raw, base)
    configurations = _expand(grid, random_axes, count(raw, "num_samples", 1), raw.get("sample_seed", 0))
    axes = list(search)
    if variants:
        configurations = [{VARIANT: name, **copy.deepcopy(overrides), **point}
                          for name, overrides in variants.items() for point in configurations]
        axes = [VARIANT, *axes]
    given = frozenset(fixed) | frozenset(search) | frozenset(key for v in variants.values() for key in v)
    sweep = Sweep(preset=preset, base=base, data=_data(raw, folder), run=_run(raw), axes=axes,
                  configurations=configurations, seeds=seeds, scheduler=_scheduler(raw, base),
                  random_axes=random_axes, given=given)
    validate_trials(sweep)
    return sweep


def _variants(raw: dict, fixed: dict, search: dict) -> dict:
    """``{name: overrides}`` of ``[[variants]]`` (empty without them), in the file's order."""
    variants = raw.get("variants", [])
    if not isinstance(variants, list) or not all(isinstance(v, dict) for v in variants):
        raise SweepConfigError("variants must be an array of tables ([[variants]] with a name each)")
    named = {}
    for number, variant in enumerate(variants, start=1):
        overrides = dict(variant)
        name = overrides.pop("name", None)
        if not isinstance(name, str) or not name or name in named:
            raise SweepConfigError(f"variant {number} needs a name of its own, got {name!r}")
        _refuse_unknown(f"variant {name!r}", overrides, _HYPERPARAMETERS)
        if "seed" in overrides:
            raise SweepConfigError(f"variant {name!r} sets seed: every variant runs with the sweep's seeds "
                                   f"(seeds = N or seeds = [s1, s2, ...])")
        _refuse_conflicts(overrides, search, f"variant {name!r}")
        for key, built in _CONFLICTS.items():
            if (key in fixed and built in overrides) or (built in fixed and key in overrides):
                raise SweepConfigError(f"variant {name!r} gives {key if key in overrides else built} while [config] "
                                       f"gives {built if key in overrides else key}: give the layer shape in one place")
        named[name] = overrides
    return named


def _table(raw: dict, name: str) -> dict:
    table = raw.get(name, {})
    if not isinstance(table, dict):
        raise SweepConfigError(f"[{name}] must be a table, got {table!r}")
    return table


def _refuse_unknown(where: str, table: dict, allowed) -> None:
    unknown = sorted(set(table) - set(allowed))
    renamed = [key for key in unknown if key in RENAMED and RENAMED[key] in allowed]
    if renamed:
        raise SweepConfigError(f"{where}: {renamed[0]} is now called {RENAMED[renamed[0]]}")
    if unknown:
        raise SweepConfigError(f"unknown keys in {where}: {', '.join(unknown)} (allowed: {', '.join(sorted(allowed))})")


def _refuse_conflicts(fixed: dict, search: dict, where: str = "[config]") -> None:
    """A key fixed (in ``where``) and swept at once, or a layer-shape key beside the list it builds."""
    both = sorted(set(fixed) & set(search))
    if both:
        raise SweepConfigError(f"{', '.join(both)} both fixed in {where} and swept in [search]")
    given = set(fixed) | set(search)
    for key, built in _CONFLICTS.items():
        if key in given and built in given:
            raise SweepConfigError(f"give either {key} or {built}, not both ({key} builds {built})")


def _split_search(search: dict) -> tuple[dict, dict]:
    """The grid axes ``{key: [values]}`` and the random ones ``{key: (kind, low, high)}``."""
    grid, random_axes = {}, {}
    for key, spec in search.items():
        if isinstance(spec, list):
            if not spec:
                raise SweepConfigError(f"search.{key} is an empty list: a grid axis needs at least one value")
            grid[key] = spec
        elif isinstance(spec, dict) and len(spec) == 1 and next(iter(spec)) in _RANDOM_KINDS:
            random_axes[key] = _random_range(key, *next(iter(spec.items())))
        else:
            raise SweepConfigError(f"search.{key} must be a list of values (a grid) or {{uniform = [a, b]}} "
                                   f"or {{loguniform = [a, b]}}, got {spec!r}")
    return grid, random_axes


def _random_range(key: str, kind: str, bounds) -> tuple[str, float, float]:
    """``(kind, low, high)``, each bound a number finite as a float (the hyperparameter's own
    check, on each draw, says whether a value fits where it is stored)."""
    needs = f"search.{key}: {kind} needs [low, high] with finite low < high, got {bounds!r:.200}"
    if not isinstance(bounds, list) or len(bounds) != 2:
        raise SweepConfigError(needs)
    try:
        low, high = (check_number(f"search.{key}", b, dtype=None) for b in bounds)
    except (TypeError, ValueError):
        raise SweepConfigError(needs) from None
    if not low < high:
        raise SweepConfigError(needs)
    if kind == "loguniform" and low <= 0:
        raise SweepConfigError(f"search.{key}: loguniform needs low > 0, got {bounds!r:.200}")
    return kind, low, high


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _seeds(raw: dict, base: dict) -> list[int]:
    """``seeds = N``: the base configuration's seed and the N - 1 after it (modulo 2**32);
    ``seeds = [s1, s2, ...]``: those.  Without ``seeds``, the base configuration's seed.

    Consecutive seeds are as independent as any for numpy's Mersenne Twister, and they keep
    a sweep's trials reproducible from its file alone.
    """
    seeds = raw.get("seeds", 1)
    if isinstance(seeds, list):
        if not seeds or len(set(seeds)) != len(seeds):
            raise SweepConfigError(f"seeds must be a count or a list of distinct seeds, got {seeds!r}")
        return [check_seed("seeds", s) for s in seeds]
    n = count(raw, "seeds", 1)
    first = check_seed("seed", base["seed"])
    return [(first + i) % 2 ** 32 for i in range(n)]


def _expand(grid: dict, random_axes: dict, num_samples: int, sample_seed) -> list[dict]:
    """Every grid point, ``num_samples`` times, each time with fresh draws of the random axes."""
    if num_samples > 1 and not random_axes:
        raise SweepConfigError("num_samples repeats the random draws of uniform/loguniform entries, and "
                               "[search] has none; to repeat runs use seeds = N")
    if not isinstance(sample_seed, int) or isinstance(sample_seed, bool) or sample_seed < 0:
        raise SweepConfigError(f"sample_seed must be an integer >= 0, got {sample_seed!r}")
    rng = np.random.default_rng(sample_seed)
    points = [dict(zip(grid, values)) for values in itertools.product(*grid.values())]
    configurations = []
    for _ in range(num_samples):
        for point in points:
            draws = {key: _draw(rng, *spec) for key, spec in random_axes.items()}
            configurations.append({**copy.deepcopy(point), **draws})
    return configurations


def _draw(rng, kind: str, low: float, high: float) -> float:
    if kind == "loguniform":
        return float(math.exp(rng.uniform(math.log(low), math.log(high))))
    # in halves, then doubled (exactly): the span of [-1.7e308, 1.7e308] is beyond float64, half of it is not
    return float(2 * rng.uniform(low / 2, high / 2))


def expand_layer_shape(config: dict) -> dict:
    """``depth``, ``units`` and ``corruption_level`` turned into ``hidden_layer_sizes`` and
    ``corruption_levels`` (module docstring); a configuration without them is returned as is."""
    if not any(key in config for key in LAYER_SHAPE_KEYS):
        return config
    config = dict(config)
    depth = config.pop("depth", len(config["hidden_layer_sizes"]))
    if not isinstance(depth, int) or isinstance(depth, bool) or depth < 1:
        raise SweepConfigError(f"depth must be an integer >= 1, got {depth!r}")
    config["hidden_layer_sizes"] = _repeated(config.pop("units", None), config["hidden_layer_sizes"], depth)
    config["corruption_levels"] = _repeated(config.pop("corruption_level", None), config["corruption_levels"], depth)
    return config


def _repeated(value, preset_list: list, depth: int) -> list:
    if value is not None:
        return [value] * depth
    return list(preset_list) if len(preset_list) == depth else [preset_list[0]] * depth


def _data(raw: dict, folder: Path) -> dict:
    data = _table(raw, "data")
    _refuse_unknown("[data]", data, DATA_KEYS)
    return data_source(data, folder)


def _run(raw: dict) -> dict:
    run = _table(raw, "run")
    _refuse_unknown("[run]", run, _RUN_KEYS)
    mode = run.get("mode")
    if mode is not None and (not isinstance(mode, str) or mode.upper() not in ("AUTO", *MODES)):
        raise SweepConfigError(f"run.mode must be one of AUTO, {', '.join(MODES)}, got {mode!r}")
    steps = run.get("steps_per_call")
    if steps is not None:
        steps = count(run, "steps_per_call", 1)
    return {"mode": None if mode is None or mode.upper() == "AUTO" else mode.upper(), "steps_per_call": steps}


def _scheduler(raw: dict, base: dict) -> dict | None:
    if "scheduler" not in raw:
        return None
    table = _table(raw, "scheduler")
    _refuse_unknown("[scheduler]", table, _SCHEDULER_KEYS)
    if table.get("type") != "asha":
        raise SweepConfigError(f'scheduler.type must be "asha" (the only scheduler offered), got {table.get("type")!r}')
    reduction = table.get("reduction_factor", 3)
    if not _is_number(reduction) or not 1 < reduction < math.inf:
        raise SweepConfigError(f"scheduler.reduction_factor must be a finite number > 1, got {reduction!r}")
    max_t = count(table, "max_t", base["training_epochs"])
    return {"type": "asha", "grace_period": count(table, "grace_period", 1), "reduction_factor": float(reduction),
            "max_t": max_t}


def validate_trials(sweep: Sweep) -> None:
    """Every configuration through :func:`sda.run.validate_config`, with every seed, in float32,
    which trials compute in (a rate of 1e39 is finite in float64, not there)."""
    with pytensor.config.change_flags(floatX="float32"):
        for configuration in sweep.configurations:
            for seed in sweep.seeds:
                validate_config(sweep.trial_config(configuration, seed))


def rerun_command(sweep: Sweep, config: dict) -> str:
    """The ``python -m sda.SdA`` command line that trains ``config`` (a trial's full
    configuration) as the sweep did: the preset, then a flag per key that differs from it."""
    preset = PRESETS[sweep.preset]
    args, flag = ["python", "-m", "sda.SdA", "--preset", sweep.preset], flags()
    for key in TUTORIAL:
        if key != "seed" and _same(config[key], preset[key]):
            continue
        values = config[key] if isinstance(config[key], (list, tuple)) else [config[key]]
        args += [flag[key], *(repr(v) if isinstance(v, float) else str(v) for v in values)]
    args += data_flags(sweep.data)
    if sweep.run["mode"] is not None:
        args += ["--mode", sweep.run["mode"]]
    if sweep.run["steps_per_call"] is not None:
        args += ["--steps-per-call", str(sweep.run["steps_per_call"])]
    return shlex.join(args)


def _same(a, b) -> bool:
    """Equal as configuration values: 1000 == 1000.0, (1, 2) == [1, 2]."""
    if isinstance(a, (list, tuple)) or isinstance(b, (list, tuple)):
        return isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) and len(a) == len(b) and all(
            _same(x, y) for x, y in zip(a, b))
    return a == b
