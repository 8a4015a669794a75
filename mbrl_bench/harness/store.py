"""The results layout on disk, atomic file writes, and the per-cell lock.

The layout is a contract read by the leaderboard and by users' own scripts::

    DIR/<algo>/<env label, "/" written as "__">/<capacity>/
        .lock                      the cell's lock (held while a process runs the cell)
        seed_<k>/
            config.json            the fully resolved config and the software/machine it ran on
            status.json            state (pending|running|done|failed|diverged), error, traceback, times,
                                   and while running a heartbeat: when and at which env step it last
                                   made progress (rewritten at least every HEARTBEAT_S of training)
            curve.csv              one row per evaluation, step 0 included: CURVE_COLUMNS, then the
                                   agent's metrics averaged over the steps since the previous row
            checkpoint.pkl         everything needed to resume this seed at its last evaluation

Every file is written to a temporary file in the same directory and moved into place with
``os.replace``, so a reader (or a process killed mid-write) sees either the old or the new file, never
a torn one.
"""

from __future__ import annotations

import csv
import io
import json
import os
import pickle
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import filelock

CURVE_COLUMNS: tuple[str, ...] = (
    "env_step",
    "eval_return",
    "eval_return_std",
    "eval_episodes",
    "wall_time_s",
)
"""Columns of curve.csv, in order."""
STATES: tuple[str, ...] = ("pending", "running", "done", "failed", "diverged")
"""The states a seed's status.json can hold."""
FINAL_STATES: frozenset[str] = frozenset({"done", "diverged"})
"""States a re-run leaves alone (a failed seed is retried from its last checkpoint)."""

CONFIG_FILE = "config.json"
STATUS_FILE = "status.json"
CURVE_FILE = "curve.csv"
CHECKPOINT_FILE = "checkpoint.pkl"
LOCK_FILE = ".lock"


def env_dir_name(env_label: str) -> str:
    """The directory name of an env label: "/" is written as "__" (labels never contain "__")."""
    return env_label.replace("/", "__")


def env_label_from_dir(name: str) -> str:
    """Inverse of ``env_dir_name``."""
    return name.replace("__", "/")


def cell_dir(out_dir: Path, algo: str, env_label: str, capacity: str) -> Path:
    """``DIR/<algo>/<env dir>/<capacity>``: one (algorithm, environment variant, capacity) cell."""
    return Path(out_dir) / algo / env_dir_name(env_label) / capacity


def seed_dir(cell: Path, seed: int) -> Path:
    return cell / f"seed_{seed}"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: temp file in the same directory, fsync, ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())


def metric_columns(rows: Sequence[dict[str, Any]]) -> list[str]:
    """The agent-metric columns of curve rows: every key beyond CURVE_COLUMNS, in first-seen order."""
    return list(dict.fromkeys(k for row in rows for k in row if k not in CURVE_COLUMNS))


def format_curve(rows: Sequence[dict[str, Any]]) -> str:
    """curve.csv text; floats are written with ``repr`` so they read back bit for bit."""
    columns = [*CURVE_COLUMNS, *metric_columns(rows)]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        values = [row.get(c, float("nan")) for c in columns]
        writer.writerow([repr(v) if isinstance(v, float) else v for v in values])
    return buf.getvalue()


def write_curve(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    atomic_write_bytes(path, format_curve(rows).encode())


def read_curve(path: Path) -> list[dict[str, Any]]:
    """The rows of a curve.csv with its metric columns, typed (ints for step and episode counts, floats
    otherwise)."""
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = set(CURVE_COLUMNS) - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path}: missing columns {sorted(missing)}; expected {list(CURVE_COLUMNS)}")
        ints = {"env_step", "eval_episodes"}
        return [{c: (int(v) if c in ints else float(v)) for c, v in r.items()} for r in reader]


def write_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    atomic_write_bytes(path, pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL))


def read_checkpoint(path: Path) -> dict[str, Any]:
    with open(path, "rb") as f:
        return pickle.load(f)


def heartbeat_time(status: dict[str, Any]) -> float | None:
    """The POSIX time of a status's heartbeat (``heartbeat_at``, UTC ISO 8601), None if it has none."""
    text = status.get("heartbeat_at")
    return datetime.fromisoformat(text).timestamp() if text else None


@dataclass(frozen=True)
class Heartbeat:
    """The latest sign of progress of a cell's running seeds."""

    time: float
    """POSIX time of the heartbeat."""
    env_step: int
    pid: int
    host: str


def cell_heartbeat(cell: Path, pid: int | None = None, host: str | None = None) -> Heartbeat | None:
    """The freshest heartbeat among the cell's ``running`` seeds, only those written by ``pid`` on
    ``host`` if given (a restarted cell's old heartbeats are not its new worker's); None if none."""
    latest = None
    for sd in Path(cell).glob("seed_*"):
        try:
            status = read_json(sd / STATUS_FILE)
        except (OSError, ValueError):  # not written yet: files are replaced atomically, never torn
            continue
        when = heartbeat_time(status) if status.get("state") == "running" else None
        if when is None or (pid is not None and status.get("pid") != pid):
            continue
        if host is not None and status.get("host") != host:
            continue
        if latest is None or when > latest.time:
            latest = Heartbeat(when, int(status.get("heartbeat_step", 0)), status["pid"], status["host"])
    return latest


def cell_lock(cell: Path) -> filelock.FileLock:
    """The cell's inter-process lock (an OS file lock: released by the kernel if the holder dies)."""
    cell.mkdir(parents=True, exist_ok=True)
    return filelock.FileLock(cell / LOCK_FILE)


def is_locked(cell: Path) -> bool:
    """Whether some process holds the cell's lock now (a probe: takes and drops the lock if free)."""
    lock = cell_lock(cell)
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        return True
    lock.release()
    return False


@dataclass(frozen=True)
class SeedRecord:
    """What a results directory says about one seed of one cell."""

    algo: str
    env_label: str
    capacity: str
    seed: int
    path: Path
    status: dict[str, Any]
    config: dict[str, Any]
    curve: list[dict[str, Any]]


def _seed_dirs(out_dir: Path) -> Iterator[tuple[str, str, str, int, Path]]:
    for sd in sorted(Path(out_dir).glob("*/*/*/seed_*")):
        suffix = sd.name.removeprefix("seed_")
        if sd.is_dir() and suffix.isdigit():
            cap = sd.parent
            yield cap.parent.parent.name, env_label_from_dir(cap.parent.name), cap.name, int(suffix), sd


def scan_results(out_dir: Path) -> list[SeedRecord]:
    """Every seed directory under ``out_dir``, sorted by (algo, env, capacity, seed)."""
    records = []
    for algo, env_label, capacity, seed, sd in _seed_dirs(out_dir):
        status = read_json(sd / STATUS_FILE) if (sd / STATUS_FILE).exists() else {"state": "pending"}
        config = read_json(sd / CONFIG_FILE) if (sd / CONFIG_FILE).exists() else {}
        curve = read_curve(sd / CURVE_FILE) if (sd / CURVE_FILE).exists() else []
        records.append(SeedRecord(algo, env_label, capacity, seed, sd, status, config, curve))
    return sorted(records, key=lambda r: (r.algo, r.env_label, r.capacity, r.seed))
