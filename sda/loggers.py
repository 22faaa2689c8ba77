"""Optional experiment loggers, fed the very records of ``metrics.jsonl`` (``--log-to``).

* ``tensorboard``: event files in ``<output dir>/tensorboard`` (``tensorboard --logdir runs``),
  written by tensorboardX, which needs neither torch nor tensorflow (``pip install -e .[tensorboard]``);
* ``mlflow``: one MLflow run per sda run, named after its output folder, in MLflow's default store
  (``./mlflow.db`` in the working directory, or wherever ``MLFLOW_TRACKING_URI`` points;
  ``pip install -e .[mlflow]``, then ``mlflow ui``).

Each gets the run's configuration once, then every epoch's record (:func:`sda.run.epoch_records`)
as it is written: pretraining cost and seconds per layer, fine-tuning cost, validation error,
test error (at a new best) and seconds, with the epoch as the step.
"""

from __future__ import annotations

import json
import warnings
from contextlib import contextmanager
from pathlib import Path

from sda.run import epoch_records

__all__ = ["LOGGERS", "LoggerError", "TensorBoardLogger", "MLflowLogger", "EpochFeed", "open_loggers"]

LOGGERS = ("tensorboard", "mlflow")


class LoggerError(ValueError):
    """A logger was asked for whose package is not installed."""


def _scalars(record: dict) -> tuple[str, dict]:
    """``(prefix, {name: value})`` of the numbers in one record of :func:`sda.run.epoch_records`."""
    if record["phase"] == "pretraining":
        prefix, names = f"pretraining/layer{record['layer']}", ("cost", "seconds")
    else:
        prefix, names = "fine-tuning", ("cost", "validation_error", "test_error", "seconds")
    return prefix, {name: float(record[name]) for name in names if record.get(name) is not None}


class TensorBoardLogger:
    """Scalars ``pretraining/layer<k>/cost``, ``fine-tuning/validation_error`` ... per epoch."""

    def __init__(self, output_dir):
        try:
            from tensorboardX import SummaryWriter
        except ImportError:
            raise LoggerError("--log-to tensorboard needs tensorboardX: pip install -e \".[tensorboard]\"") from None
        self.directory = Path(output_dir) / "tensorboard"
        self.writer = SummaryWriter(str(self.directory))

    def log_config(self, config: dict) -> None:
        self.writer.add_text("config", "\n".join(f"    {key}: {json.dumps(value)}" for key, value in config.items()))

    def log_record(self, record: dict) -> None:
        prefix, values = _scalars(record)
        for name, value in values.items():
            self.writer.add_scalar(f"{prefix}/{name}", value, record["epoch"])
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class MLflowLogger:
    """One MLflow run: the configuration as parameters, metrics ``pretraining_layer<k>_cost``,
    ``fine-tuning_validation_error`` ... with the epoch as the step."""

    def __init__(self, output_dir):
        try:
            import mlflow
        except ImportError:
            raise LoggerError("--log-to mlflow needs mlflow: pip install -e \".[mlflow]\"") from None
        self.mlflow = mlflow
        with _quiet_dependencies():
            self.run = mlflow.start_run(run_name=Path(output_dir).name)

    def log_config(self, config: dict) -> None:
        with _quiet_dependencies():
            self.mlflow.log_params({key: json.dumps(value) if isinstance(value, list) else value
                                    for key, value in config.items()})

    def log_record(self, record: dict) -> None:
        prefix, values = _scalars(record)
        with _quiet_dependencies():
            self.mlflow.log_metrics({f"{prefix.replace('/', '_')}_{name}": value for name, value in values.items()},
                                    step=record["epoch"])

    def close(self) -> None:
        with _quiet_dependencies():
            self.mlflow.end_run()


@contextmanager
def _quiet_dependencies():
    """MLflow's database layer warns of its own deprecated calls: nothing the user can act on."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


class EpochFeed:
    """``on_epoch_end`` hook of :func:`sda.run.train_SdA` that hands each record not yet sent
    (``already``: those a resumed run's earlier process logged) to every logger."""

    def __init__(self, loggers, already: int = 0):
        self.loggers, self.sent = list(loggers), already

    def __call__(self, pretrain, state) -> None:
        records = epoch_records(pretrain, state)
        for record in records[self.sent:]:
            for logger in self.loggers:
                logger.log_record(record)
        self.sent = len(records)

    def close(self) -> None:
        for logger in self.loggers:
            logger.close()


def open_loggers(names, output_dir, config: dict) -> list:
    """The loggers ``names`` (of :data:`LOGGERS`) for a run in ``output_dir``, each given ``config``."""
    kinds = {"tensorboard": TensorBoardLogger, "mlflow": MLflowLogger}
    loggers = []
    for name in dict.fromkeys(names or ()):
        if name not in kinds:
            raise LoggerError(f"unknown logger {name!r}; choose among {', '.join(LOGGERS)}")
        logger = kinds[name](output_dir)
        logger.log_config(config)
        loggers.append(logger)
    return loggers
