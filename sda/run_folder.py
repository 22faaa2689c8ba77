"""A run's output folder: the files a run writes there, by name, and the lock that keeps it alone.

A run writes only the files :func:`run_files` finds: the fixed names of :data:`RUN_FILES`, one
``filters_layer<k>.png`` per layer, the temporary files of writes cut short by a kill
(``.<one of those names>.<8 characters>.tmp``, as :func:`sda.utils.atomic_write` names them), and
the files listed in :data:`WRITTEN_LIST` (the TensorBoard event files, whose names their writer
chooses).  ``overwrite`` removes exactly those; every other file in the folder is the user's and
stays.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

from filelock import FileLock, Timeout

from sda.utils import atomic_write

__all__ = ["RUN_FILES", "LOCK_FILE", "WRITTEN_LIST", "RunError", "OutputDir", "run_files", "record_written"]

#: The files of fixed name a run writes into its output directory.
RUN_FILES = ("checkpoint.safetensors", "best_model.safetensors", "metrics.jsonl", "results.json", "reconstructions.png",
             "learning_curves.png")
LOCK_FILE = ".sda.lock"
#: The files a run wrote under names it did not choose, one relative path a line.
WRITTEN_LIST = ".sda-written"
_MAX_WRITTEN_LIST_BYTES = 1 << 20

_PICTURE = re.compile(r"filters_layer(0|[1-9][0-9]{0,5})\.png")
# mkstemp's names: the prefix, 8 characters of [a-z0-9_], the suffix
_UNFINISHED = re.compile(r"\.(?P<name>[^/]+)\.[a-z0-9_]{8}\.tmp")
_ASIDE_PREFIX = ".sda-overwritten-"
_ASIDE = re.compile(re.escape(_ASIDE_PREFIX) + r"[a-z0-9_]{8}")
# what may be listed in WRITTEN_LIST: event files directly in the run's tensorboard folder
_LISTED = re.compile(r"tensorboard/events\.out\.tfevents\.[^/\x00]+")


class RunError(ValueError):
    """A run cannot start as asked: its output directory, checkpoint or data do not fit."""


def _written_by_a_run(name: str) -> bool:
    """Whether ``name`` (a file directly in the folder) is one a run writes."""
    if name in RUN_FILES or name == WRITTEN_LIST or _PICTURE.fullmatch(name):
        return True
    unfinished = _UNFINISHED.fullmatch(name)
    return unfinished is not None and _written_by_a_run(unfinished["name"]) and not _UNFINISHED.fullmatch(unfinished["name"])


def _listed_files(folder: Path) -> list[Path]:
    """The files :data:`WRITTEN_LIST` names that are still there; a line naming anything but an
    event file of the run's tensorboard folder is ignored (the list is a file anyone can edit)."""
    path = folder / WRITTEN_LIST
    try:
        if path.is_symlink() or not path.is_file() or path.stat().st_size > _MAX_WRITTEN_LIST_BYTES:
            return []
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []
    names = dict.fromkeys(line for line in lines if _LISTED.fullmatch(line) and ".." not in line.split("/"))
    return [folder / name for name in names if os.path.lexists(folder / name)]


def run_files(folder: Path) -> list[Path]:
    """The files of an earlier run in ``folder``, and nothing else: see the module docstring."""
    if not folder.is_dir():
        return []
    found = [entry for entry in folder.iterdir()
             if (_written_by_a_run(entry.name) and (entry.is_symlink() or not entry.is_dir()))
             or (_ASIDE.fullmatch(entry.name) and entry.is_dir() and not entry.is_symlink())]
    return sorted(found) + _listed_files(folder)


def record_written(folder, paths) -> None:
    """Add ``paths`` (files a run wrote in ``folder`` under names it did not choose) to its
    :data:`WRITTEN_LIST`, so that ``overwrite`` removes them and nothing else."""
    folder = Path(folder)
    names = [Path(p).relative_to(folder).as_posix() for p in paths]
    if not names:
        return
    earlier = [p.relative_to(folder).as_posix() for p in _listed_files(folder)]
    text = "".join(f"{name}\n" for name in dict.fromkeys([*earlier, *names])).encode()
    atomic_write(folder / WRITTEN_LIST, lambda f: f.write(text))


class OutputDir:
    """An output directory held by one run: locked from the start, and, once the run is known to
    be able to start (:meth:`claim`), empty of other runs' files."""

    def __init__(self, path, resume: bool):
        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise RunError(f"output directory {self.path} is a file")
        if self.path.is_symlink() and not self.path.exists():  # mkdir would say only "File exists"
            raise RunError(f"output directory {self.path} is a symbolic link to {os.readlink(self.path)}, "
                           f"which does not exist")
        # the folders this run makes, deepest first: a refused run takes them away again
        self._made = [p for p in (self.path, *self.path.parents) if not p.exists()]
        self._lock_made = not os.path.lexists(self.path / LOCK_FILE)
        self.claimed = False
        lock_path = self.path / LOCK_FILE
        # a link planted there would make the run create or lock a file outside its folder
        if lock_path.is_symlink():
            raise RunError(f"output directory {self.path}: {LOCK_FILE} is a symbolic link, not the lock "
                           f"file of a run; remove it")
        # filelock: flock on Unix, msvcrt on Windows; the lock dies with the process
        self._lock = FileLock(lock_path, timeout=0, thread_local=False)
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            self._lock.acquire()
        except Timeout:
            raise RunError(f"output directory {self.path} is in use by another sda run") from None
        except OSError as exc:
            self._remove_made_folders()
            raise RunError(f"cannot use output directory {self.path}: {exc.strerror or exc}") from None
        self.resume = resume
        checkpoint = self.path / "checkpoint.safetensors"
        if resume and not checkpoint.is_file():
            self.release()
            raise RunError(f"no checkpoint to resume from: {checkpoint} does not exist")
        self._earlier = [] if resume else run_files(self.path)

    def check_free(self, overwrite: bool) -> None:
        """Refuse a folder holding another run, unless it is to be overwritten."""
        if self._earlier and not overwrite:
            raise RunError(f"output directory {self.path} already holds a run: continue it with --resume "
                           f"{self.path} or replace it with --overwrite (in Python: resume=True or overwrite=True)")

    def claim(self) -> None:
        """Remove the earlier run's files (``overwrite``): called once everything else is checked.

        They are first moved aside together, so that a file that cannot be removed leaves the
        earlier run whole rather than half deleted."""
        self.claimed = True
        if not self._earlier:
            return
        aside = Path(tempfile.mkdtemp(prefix=_ASIDE_PREFIX, dir=self.path))
        moved = []
        try:
            for k, path in enumerate(self._earlier):
                path.rename(aside / f"{k}-{path.name}")
                moved.append(path)
        except OSError as exc:
            for k, earlier in enumerate(moved):
                (aside / f"{k}-{earlier.name}").rename(earlier)
            aside.rmdir()
            raise RunError(f"cannot replace the earlier run in {self.path}: {path.name}: {exc.strerror}") from None
        shutil.rmtree(aside, ignore_errors=True)
        try:
            (self.path / "tensorboard").rmdir()  # only while empty: the user's files there stay
        except OSError:
            pass

    def file(self, name: str) -> Path:
        return self.path / name

    def release(self) -> None:
        """Drop the lock; a run refused before :meth:`claim` leaves no lock file and no folder
        it made behind (a later run there would otherwise meet a stray file)."""
        if not self.claimed and self._lock_made:
            # removed while still held: a run that opens the path from now on gets a new file
            (self.path / LOCK_FILE).unlink(missing_ok=True)
        self._lock.release()
        if not self.claimed:
            self._remove_made_folders()

    def _remove_made_folders(self) -> None:
        for folder in self._made:
            try:
                folder.rmdir()  # only while empty: whatever else appeared there stays
            except OSError:
                break
