"""The results folder of a sweep: Parquet part files of rows, appended atomically."""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import ConfigError

if TYPE_CHECKING:
    from harness.sweep.plan import SweepPlan

#: the columns of a configuration (what a task computes with), in order
CONFIG_COLUMNS: tuple[tuple[str, str], ...] = (
    ("config_hash", "str"), ("dataset", "str"), ("dims", "str"), ("hidden", "str"),
    ("n_params", "int"), ("activation", "str"), ("layers", "str"), ("input_shape", "str"),
    ("loss", "str"),
    ("loss_outputs", "str"), ("mse_half", "bool"), ("dtype", "str"), ("optimizer", "str"),
    ("lr", "float"), ("weight_decay", "float"), ("momentum", "float"), ("nesterov", "bool"),
    ("beta1", "float"), ("beta2", "float"), ("eps", "float"), ("batch_size", "int"),
    ("seed", "int"), ("loss_reduction", "str"), ("weight_decay_in", "str"),
    ("weight_decay_on", "str"), ("reference", "str"), ("candidate", "str"), ("checks", "str"),
    ("epochs", "int"), ("train_samples", "int"), ("check_samples", "int"),
    ("gradcheck_eps", "float"), ("gradcheck_entries", "int"), ("rtol", "float"),
    ("atol", "float"),
)
#: where and when a row was computed
META_COLUMNS: tuple[tuple[str, str], ...] = (
    ("error_type", "str"), ("error", "str"), ("t_total_s", "float"), ("worker", "str"),
    ("task_id", "str"), ("run_id", "str"), ("finished_at", "str"),
)


def result_columns() -> dict[str, str]:
    """The columns a task fills (name -> type): verdicts, every check's own, timings.

    The checks' columns come from :func:`harness.checks.columns`, so a field the
    checks layer adds to a result is stored here without further wiring.
    """
    from harness.checks import columns as check_columns
    from harness.sweep.plan import CHECKS

    return {"status": "str", "passed": "bool", **check_columns(CHECKS), **dict(META_COLUMNS)}


def _types() -> dict[str, str]:
    return {**dict(CONFIG_COLUMNS), **result_columns()}


#: row columns that differ between two runs of the same configuration
VOLATILE_COLUMNS: tuple[str, ...] = (
    "t_equivalence_s", "t_gradcheck_s", "t_training_s", "t_total_s",
    "worker", "task_id", "run_id", "finished_at",
)


def _schema():
    import pyarrow as pa

    kinds = {"str": pa.string(), "int": pa.int64(), "float": pa.float64(), "bool": pa.bool_()}
    return pa.schema([(name, kinds[kind]) for name, kind in _types().items()])


def columns() -> list[str]:
    """The columns of a results table, in order."""
    return list(_types())


class ResultsStore:
    """A results folder: Parquet part files of rows, appended atomically.

    The rows live in ``rows/``: every :meth:`append` writes one new ``part-*.parquet``
    file there through a hidden temporary file and a rename, so a reader (or a resumed
    sweep) sees whole part files or none; temporary files left by a killed writer are
    ignored (by ``pandas.read_parquet(".../rows")`` too, as their names start with a
    dot). A configuration may have more than one row (``--retry-errors`` writes a new
    one); :meth:`read` keeps the last written. Beside ``rows/`` are ``plan.json`` (the
    latest sweep's configurations, in order) and the summary plot.
    """

    PART_GLOB = "part-*.parquet"

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.rows_dir = self.path / "rows"
        self._seq = 0
        self._tag = uuid.uuid4().hex[:8]

    # ---------------------------------------------------------------- checks
    def check(self) -> None:
        """Refuse (ConfigError) a path that is a file or a non-empty folder of other things."""
        p = self.path
        if p.exists() and not p.is_dir():
            raise ConfigError(f"results folder {str(p)!r} exists and is not a folder")
        if p.is_dir() and any(p.iterdir()) and not self.is_results_dir():
            raise ConfigError(f"{str(p)!r} is not empty and holds no sweep results; choose "
                              f"another folder with --out")

    def ensure(self) -> None:
        """:meth:`check`, then create the folder if it is missing."""
        self.check()
        self.path.mkdir(parents=True, exist_ok=True)

    def is_results_dir(self) -> bool:
        return self.path.is_dir() and (any(self.rows_dir.glob(self.PART_GLOB))
                                       or (self.path / "plan.json").exists())

    def parts(self) -> list[Path]:
        """The part files, oldest first (names start with the write time)."""
        return sorted(self.rows_dir.glob(self.PART_GLOB))

    # ---------------------------------------------------------------- writing
    def append(self, rows: list[dict[str, Any]]) -> Path | None:
        """Write ``rows`` as one new part file (atomically); return its path."""
        if not rows:
            return None
        import pyarrow as pa

        schema = _schema()
        table = pa.Table.from_pylist([{k: r.get(k) for k in schema.names} for r in rows],
                                     schema=schema)
        self._seq += 1
        name = f"part-{time.time_ns():020d}-{self._tag}-{self._seq:06d}.parquet"
        return self._write(table, name)

    def _write(self, table, name: str) -> Path:
        import pyarrow.parquet as pq

        self.rows_dir.mkdir(parents=True, exist_ok=True)
        final = self.rows_dir / name
        tmp = self.rows_dir / f".{name}.{os.getpid()}.tmp"
        try:
            pq.write_table(table, tmp)
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, final)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return final

    def compact(self) -> Path | None:
        """Merge the part files into one (rows deduplicated); None when there is at most one.

        The merged file is in place before the parts it replaces are removed, so a crash
        in between leaves duplicate rows, which :meth:`read` ignores, and loses none.
        """
        parts = self.parts()
        if len(parts) < 2:
            return None
        import pyarrow as pa

        df = _dedupe(self._read_parts(parts))
        table = pa.Table.from_pandas(df[[c for c in columns() if c in df.columns]],
                                     schema=_schema(), preserve_index=False)
        stamp = parts[-1].name.split("-")[1]
        merged = self._write(table, f"part-{stamp}-merged-{uuid.uuid4().hex[:8]}.parquet")
        for p in parts:
            p.unlink(missing_ok=True)
        return merged

    # ---------------------------------------------------------------- reading
    def _read_parts(self, parts: list[Path]):
        import pandas as pd
        import pyarrow as pa
        import pyarrow.parquet as pq

        mapper = {pa.bool_(): pd.BooleanDtype(), pa.int64(): pd.Int64Dtype()}.get
        frames = []
        for p in parts:
            try:
                frames.append(pq.read_table(p).to_pandas(types_mapper=mapper))
            except FileNotFoundError:
                continue  # merged away by a concurrent compaction; its rows are elsewhere
            except Exception as exc:  # noqa: BLE001 - any unreadable file
                raise ConfigError(f"results file {str(p)!r} is not readable Parquet ({exc}); "
                                  f"move it out of the folder to go on") from None
        if not frames:
            return _empty_frame()
        frames = [f for f in frames if len(f)] or frames[:1]
        df = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
        for col in columns():
            if col not in df.columns:
                df[col] = None
        return df[columns() + [c for c in df.columns if c not in columns()]]

    def read_raw(self):
        """Every row of every part file, in write order (duplicates kept)."""
        return self._read_parts(self.parts()) if self.rows_dir.is_dir() else _empty_frame()

    def read(self):
        """The results table: one row per configuration, the last written."""
        return _dedupe(self.read_raw())

    def write_plan(self, plan: SweepPlan) -> None:
        from harness.data.atomic import atomic_write_json

        atomic_write_json(self.path / "plan.json", {
            "source": plan.source, "mode": plan.mode, "grid_size": plan.grid_size,
            "samples": plan.samples, "draw_seed": plan.draw_seed,
            "settings": plan.settings.to_dict(), "hashes": plan.hashes})

    def read_plan(self) -> dict | None:
        p = self.path / "plan.json"
        if not p.exists():
            return None
        try:
            return json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None


def _empty_frame():
    import pandas as pd
    import pyarrow as pa

    mapper = {pa.bool_(): pd.BooleanDtype(), pa.int64(): pd.Int64Dtype()}.get
    return _schema().empty_table().to_pandas(types_mapper=mapper)


def _dedupe(df):
    if not len(df):
        return df
    return df.drop_duplicates("config_hash", keep="last").reset_index(drop=True)


def _ordered(df, hashes: list[str]):
    """Rows of ``df`` whose hash is in ``hashes``, in that order."""
    pos = {h: i for i, h in enumerate(hashes)}
    df = df[df["config_hash"].isin(pos)].copy()
    df["_pos"] = df["config_hash"].map(pos)
    return df.sort_values("_pos").drop(columns="_pos").reset_index(drop=True)
