"""Optional experiment loggers, fed the very records of ``metrics.jsonl`` (``--log-to``).

* ``tensorboard``: event files in ``<output dir>/tensorboard`` (``tensorboard --logdir runs``),
  written by tensorboardX, which needs neither torch nor tensorflow (``pip install -e .[tensorboard]``);
* ``mlflow``: one MLflow run per sda run, named after its output folder, in MLflow's default store
  (``./mlflow.db`` in the working directory, or wherever ``MLFLOW_TRACKING_URI`` points;
  ``pip install -e .[mlflow]``, then ``mlflow ui``).

Each gets the run's configuration once, then every epoch's record (:func:`sda.run_record.epoch_records`)
as it is written: pretraining cost and seconds per layer, fine-tuning cost, validation error,
test error (at a new best) and seconds, with the epoch as the step.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from contextlib import contextmanager
from pathlib import Path

from sda.run_record import epoch_records
from sda.run_folder import record_written

__all__ = ["LOGGERS", "LoggerError", "TensorBoardLogger", "MLflowLogger", "EpochFeed", "open_loggers"]

LOGGERS = ("tensorboard", "mlflow")


class LoggerError(ValueError):
    """A logger was asked for whose package is not installed."""


def _scalars(record: dict) -> tuple[str, dict]:
    """``(prefix, {name: value})`` of the numbers in one record of :func:`sda.run_record.epoch_records`."""
    names: tuple[str, ...]
    if record["phase"] == "pretraining":
        prefix, names = f"pretraining/layer{record['layer']}", ("cost", "seconds")
    else:
        prefix, names = "fine-tuning", ("cost", "validation_error", "test_error", "seconds")
    return prefix, {name: float(record[name]) for name in names if record.get(name) is not None}


class TensorBoardLogger:
    """Scalars ``pretraining/layer<k>/cost``, ``fine-tuning/validation_error`` ... per epoch.

    The event files are written from the first epoch on, once the run holds its output directory;
    their names (chosen by tensorboardX) go to the folder's list of files the run wrote
    (:func:`sda.run_folder.record_written`), so that ``--overwrite`` removes them and no others.
    """

    def __init__(self, output_dir):
        try:
            from tensorboardX import SummaryWriter
        except ImportError:
            raise LoggerError("--log-to tensorboard needs tensorboardX: pip install -e \".[tensorboard]\"") from None
        self.output_dir = Path(output_dir)
        self.directory = self.output_dir / "tensorboard"
        self._writer_class, self.writer = SummaryWriter, None

    def start(self, config: dict) -> None:
        before = set(self._event_files())
        self.writer = self._writer_class(str(self.directory))
        record_written(self.output_dir, [p for p in self._event_files() if p not in before])
        self.writer.add_text("config", "\n".join(f"    {key}: {json.dumps(value)}" for key, value in config.items()))

    def _event_files(self) -> list[Path]:
        return sorted(self.directory.glob("events.out.tfevents.*")) if self.directory.is_dir() else []

    def log_record(self, record: dict) -> None:
        prefix, values = _scalars(record)
        for name, value in values.items():
            self.writer.add_scalar(f"{prefix}/{name}", value, record["epoch"])
        self.writer.flush()

    def close(self, failed: bool = False) -> None:
        if self.writer is not None:
            self.writer.close()


class MLflowLogger:
    """One MLflow run: the configuration as parameters, metrics ``pretraining_layer<k>_cost``,
    ``fine-tuning_validation_error`` ... with the epoch as the step.  The MLflow run starts with
    the first epoch, so that a run refused before training leaves none behind."""

    def __init__(self, output_dir):
        try:
            import mlflow
        except ImportError:
            raise LoggerError("--log-to mlflow needs mlflow: pip install -e \".[mlflow]\"") from None
        self.mlflow, self.name, self.run = mlflow, Path(output_dir).name, None
        self._check_store()

    #: The one request that checks the tracking store before training: no retries, this many seconds.
    CHECK_SECONDS = 10

    def _check_store(self) -> None:
        """Reach the tracking store (``MLFLOW_TRACKING_URI``) now, so that a store MLflow cannot
        use is a :class:`LoggerError` before training, not an error after the first epoch."""
        from mlflow.exceptions import MlflowException

        uri = self.mlflow.get_tracking_uri()
        try:
            # MLflow's own warnings while it tries (e.g. of credentials it lacks) would be a second line
            with _quiet_dependencies(), _environment(MLFLOW_HTTP_REQUEST_MAX_RETRIES="0",
                                                     MLFLOW_HTTP_REQUEST_TIMEOUT=str(self.CHECK_SECONDS)), \
                    _log_level("mlflow", logging.ERROR):
                self.mlflow.MlflowClient(uri).search_experiments(max_results=1)
        except (MlflowException, OSError, ValueError, *_database_errors()) as exc:
            reason = " ".join(str(exc).split())[:600]  # its remedy may come last (MLFLOW_ALLOW_FILE_STORE)
            raise LoggerError(f"--log-to mlflow cannot use the tracking store {uri} (MLFLOW_TRACKING_URI): "
                              f"{reason}") from None

    def start(self, config: dict) -> None:
        with _quiet_dependencies():
            self.run = self.mlflow.start_run(run_name=self.name)
            self.mlflow.log_params({key: json.dumps(value) if isinstance(value, list) else value
                                    for key, value in config.items()})

    def log_record(self, record: dict) -> None:
        prefix, values = _scalars(record)
        with _quiet_dependencies():
            self.mlflow.log_metrics({f"{prefix.replace('/', '_')}_{name}": value for name, value in values.items()},
                                    step=record["epoch"])

    def close(self, failed: bool = False) -> None:
        if self.run is not None:
            with _quiet_dependencies():
                self.mlflow.end_run(status="FAILED" if failed else "FINISHED")


@contextmanager
def _log_level(name: str, level: int):
    """The logger ``name`` at ``level`` for a while, as it was afterwards."""
    logger = logging.getLogger(name)
    earlier = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(earlier)


@contextmanager
def _environment(**values):
    """Environment variables set to ``values`` for a while (MLflow reads its settings there),
    as they were afterwards; ones the user set are kept."""
    earlier = {key: os.environ.get(key) for key in values}
    os.environ.update({key: value for key, value in values.items() if earlier[key] is None})
    try:
        yield
    finally:
        for key, value in earlier.items():
            if value is None:
                os.environ.pop(key, None)


def _database_errors() -> tuple:
    """SQLAlchemy's errors (MLflow's database stores raise them), when it is installed."""
    try:
        from sqlalchemy.exc import SQLAlchemyError
    except ImportError:
        return ()
    return (SQLAlchemyError,)


@contextmanager
def _quiet_dependencies():
    """MLflow's database layer warns of its own deprecated calls: nothing the user can act on."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


class EpochFeed:
    """``on_epoch_end`` hook of :func:`sda.run.train_SdA` that starts the loggers with the run's
    ``config`` at the first epoch, then hands each record not yet sent (``already``: those a
    resumed run's earlier process logged) to every logger."""

    def __init__(self, loggers, config: dict, already: int = 0):
        self.loggers, self.config, self.sent, self.started = list(loggers), config, already, False

    def __call__(self, pretrain, state) -> None:
        if not self.started:
            for logger in self.loggers:
                logger.start(self.config)
            self.started = True
        records = epoch_records(pretrain, state)
        for record in records[self.sent:]:
            for logger in self.loggers:
                logger.log_record(record)
        self.sent = len(records)

    def close(self, failed: bool = False) -> None:
        """End every logger; ``failed``: the run stopped on an error (MLflow marks it so)."""
        for logger in self.loggers:
            logger.close(failed)


def open_loggers(names, output_dir) -> list:
    """The loggers ``names`` (of :data:`LOGGERS`) for a run in ``output_dir``; a missing package is
    a :class:`LoggerError` now, before training."""
    kinds = {"tensorboard": TensorBoardLogger, "mlflow": MLflowLogger}
    unknown = [name for name in names or () if name not in kinds]
    if unknown:
        raise LoggerError(f"unknown logger {unknown[0]!r}; choose among {', '.join(LOGGERS)}")
    return [kinds[name](output_dir) for name in dict.fromkeys(names or ())]
