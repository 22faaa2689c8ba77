"""What a run writes into its folder as it trains, so that it can stop at any moment and
continue exactly: the checkpoint, the best model so far and ``metrics.jsonl``
(:class:`RunRecorder`), and the epoch records the metrics file and the loggers share
(:func:`epoch_records`)."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

from sda.checkpoint import save_checkpoint
from sda.jax_noise import write_back_compiled_noise
from sda.persistence import save_model
from sda.training import PretrainResult
from sda.utils import atomic_write

__all__ = ["epoch_records", "MetricsFile", "RunRecorder"]


def epoch_records(pretrain: PretrainResult, state=None) -> list[dict]:
    """One JSON-ready record per epoch of either phase so far, oldest first: what ``metrics.jsonl``
    holds and what the optional loggers (:mod:`sda.loggers`) receive.

    Every record has a ``step``, the global step: the epoch's number in the whole run, counting
    every epoch of every phase from 1 (pretraining layer 0's epochs, then layer 1's, ..., then
    fine-tuning's; with L-BFGS an iteration is an epoch), so it rises by one from record to
    record, across phases and across a resume; and a ``time``, when the epoch ended (UTC,
    ISO 8601, :func:`sda.training.utc_now`).
    Pretraining records also hold the layer, epoch, cost and seconds; fine-tuning records those
    of :func:`fit_early_stopping`."""
    records = []
    for layer, (costs, seconds, times) in enumerate(zip(pretrain.costs, pretrain.epoch_seconds, pretrain.epoch_times)):
        records += [{"phase": "pretraining", "layer": layer, "epoch": epoch, "cost": cost, "seconds": seconds[epoch - 1],
                     "time": times[epoch - 1]}
                    for epoch, cost in enumerate(costs, start=1)]
    if state is not None:
        records += [{"phase": "fine-tuning", **record} for record in state.history]
    return [{"step": step, **record} for step, record in enumerate(records, start=1)]


class MetricsFile:
    """``metrics.jsonl``, one JSON record of :func:`epoch_records` per line, for any plotting tool.

    Records are appended, so that a reader following the file (``tail -f``, a dashboard) sees
    each epoch once and the earlier lines never change.  A new run's file appears with its first
    saved epoch.  A resumed run (``pretrain``, ``state``: its checkpoint's progress) first
    rewrites the file once, atomically, with the checkpoint's records: whatever the stopped
    process left beyond its last checkpoint, an epoch the checkpoint lacks or a half-written
    last line, is gone, and the resumed epochs follow the checkpoint's without a gap or a repeat.
    """

    def __init__(self, path, pretrain: PretrainResult | None = None, state=None):
        self.path, self.written = Path(path), 0
        if pretrain is not None:
            records = epoch_records(pretrain, state)
            text = "".join(json.dumps(record) + "\n" for record in records).encode()
            atomic_write(self.path, lambda f: f.write(text))
            self.written = len(records)

    def append(self, pretrain: PretrainResult, state=None) -> None:
        """Append the records of the epochs done since the last call (L-BFGS saves every few
        seconds, so one call may bring several)."""
        new = epoch_records(pretrain, state)[self.written:]
        if not new:
            return
        # one write of whole lines; no fsync: the checkpoint is what must survive a crash, and
        # a resume rebuilds this file from it
        with open(self.path, "ab") as f:
            f.write("".join(json.dumps(record) + "\n" for record in new).encode())
        self.written += len(new)


class RunRecorder:
    """The files a run keeps in its folder ``out`` (nothing when it is None), written together
    by :meth:`save`: the checkpoint (``state_vars``, the noise generators ``rngs``, the progress,
    the configuration, the data's fingerprint and source from ``data``, and ``execution``), then
    the best model when fine-tuning improved since the last save, then the new lines of
    ``metrics.jsonl``, which so never holds an epoch the checkpoint lacks.

    Saves come at most every ``save_every`` seconds unless forced (an L-BFGS iteration can take
    milliseconds).  ``steps`` (the pretraining steps) and ``train_step`` are the compiled steps
    whose noise a checkpoint must hold where they drew it.  ``pretrain`` and ``fit_state``: the
    progress of the checkpoint a run resumes from, if any.
    """

    def __init__(self, out, model, config: dict, state_vars: list, rngs: list, data: dict, execution: dict,
                 steps: list, train_step, save_every: float, pretrain: PretrainResult | None = None, fit_state=None):
        self.out, self.model, self.config, self.state_vars, self.rngs = out, model, config, state_vars, rngs
        self.data, self.execution, self.steps, self.train_step = data, execution, steps, train_step
        self.save_every, self.last_save = save_every, -math.inf
        self.metrics = None if out is None else MetricsFile(out.file("metrics.jsonl"), pretrain, fit_state)
        #: fine-tuning's latest state, and the best model it has found that no save has written yet
        self.fit_state = fit_state
        self.unsaved_best: dict | None = None
        self._best_iteration = None if fit_state is None else fit_state.best_iteration

    def finetuning_epoch(self, state, trained: list) -> None:
        """Take fine-tuning's ``state`` after an epoch; when its best parameters (of the variables
        ``trained``) changed in it, the best model is written with the next checkpoint."""
        self.fit_state = state
        if state.best_iteration == self._best_iteration:
            return
        self._best_iteration = state.best_iteration
        best = dict(zip(trained, state.best_params))
        self.unsaved_best = {"training_state": {"epoch": state.epoch, "validation_error": state.best_loss,
                                                "test_error": state.test_error, "config": self.config},
                             "values": [best[v] if v in best else v.get_value() for v in self.model.saved_variables()]}

    def save(self, pretrain: PretrainResult, state=None, force: bool = False) -> None:
        """Write the run's files for ``pretrain`` and fine-tuning's ``state`` (None in pretraining)."""
        if self.out is None or not (force or time.perf_counter() - self.last_save >= self.save_every):
            return
        # the noise where the running phase's step has drawn it (JAX keeps it in a compiled copy),
        # so that a resumed run continues it exactly
        running = self.train_step if state is not None else self.steps[max(0, len(pretrain.costs) - 1)]
        write_back_compiled_noise([running.function])
        if self.unsaved_best is not None:
            save_model(self.model, self.out.file("best_model.safetensors"), scaler=self.data["scaler"],
                       **self.unsaved_best)
            self.unsaved_best = None
        save_checkpoint(self.out.file("checkpoint.safetensors"), self.config, self.state_vars, self.rngs, pretrain,
                        state, self.data["fingerprint"], self.data["source"], self.execution)
        if self.metrics is not None:  # there is one whenever there is a folder
            self.metrics.append(pretrain, state)
        self.last_save = time.perf_counter()
