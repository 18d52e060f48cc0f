"""Reading the user's sample files for ``mi-estimators estimate``: ``.npy``, ``.npz`` and CSV/TSV.

Every failure is a ``ValueError`` whose message names the file and, for text files, the column as
the user wrote it and the line of the file (counted from 1, the header included), and says what
to do. In a CSV file only the selected columns are read, so a text column that is not selected
(an id, a label) does no harm. ``.npy``/``.npz`` files are read with ``allow_pickle=False``:
loading a file never runs code.
"""

from __future__ import annotations

import csv
import dataclasses
import zipfile
from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = ["SampleFiles", "load_array", "select_columns"]

#: text fields read as a missing value (compared in lower case)
MISSING = frozenset({"", "na", "n/a", "nan", "null", "none", "?"})


def select_columns(spec: str | None, names: Sequence[str] | None, width: int) -> list[tuple[str, int]] | None:
    """``(label, index)`` of the columns ``spec`` selects (``"0,2"``, ``"1:4"``, header names), or
    None for all. ``label`` is how the user wrote the column.

    >>> select_columns("b,0", ["a", "b", "c"], 3)
    [('b', 1), ('0', 0)]
    >>> select_columns("1:", None, 3)
    [('1', 1), ('2', 2)]
    """
    if spec is None:
        return None
    cols: list[tuple[str, int]] = []
    for part in (p.strip() for p in spec.split(",")):
        if names is not None and part in names:
            cols.append((part, list(names).index(part)))
        elif ":" in part:
            lo, hi = part.split(":", 1)
            try:
                rng = range(int(lo or 0), int(hi) if hi else width)
            except ValueError:
                raise ValueError(f"column range {part!r} is not of the form START:STOP with integers") from None
            cols.extend((str(j), j) for j in rng)
        else:
            try:
                cols.append((part, int(part)))
            except ValueError:
                known = f"; the header names are {list(names)}" if names else " (the file has no header row)"
                raise ValueError(f"unknown column {part!r}: give 0-based indices (0,2), a range (1:4) or "
                                 f"header names{known}") from None
    bad = [label for label, j in cols if not -width <= j < width]
    if bad:
        raise ValueError(f"columns {bad} are out of range: the file has {width} columns (indices 0 to {width - 1})")
    return [(label, j % width) for label, j in cols]


def _read_text(path: Path, columns: str | None) -> np.ndarray:
    delim = "\t" if path.suffix.lower() == ".tsv" else ","
    with open(path, newline="") as fh:
        rows = [(i, r) for i, r in enumerate(csv.reader(fh, delimiter=delim), start=1) if any(f.strip() for f in r)]
    if not rows:
        raise ValueError(f"{path} is empty: it holds no rows of samples")
    first = [f.strip() for f in rows[0][1]]
    header = not all(_is_number(f) for f in first)
    names = first if header else None
    data = rows[1:] if header else rows
    if not data:
        raise ValueError(f"{path} has a header row ({', '.join(first)}) but no data rows")
    cols = select_columns(columns, names, len(first)) or [(names[j] if names else str(j), j) for j in range(len(first))]
    out = np.empty((len(data), len(cols)))
    for r, (line, fields) in enumerate(data):
        for c, (label, j) in enumerate(cols):
            out[r, c] = _parse(fields[j] if j < len(fields) else "", path, label, line)
    return out


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _parse(text: str, path: Path, label: str, line: int) -> float:
    text = text.strip()
    if text.lower() in MISSING:
        raise ValueError(f"{path}: missing value in column {label!r} at line {line}; drop or impute the rows "
                         "with missing values first")
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{path}: column {label!r} at line {line} holds {text!r}, not a number; select only "
                         "numeric columns (--x-cols/--y-cols) or encode categories as numbers") from None
    if not np.isfinite(value):
        raise ValueError(f"{path}: column {label!r} at line {line} holds {text!r}, which is infinite")
    return value


def _read_binary(path: Path, key: str | None) -> np.ndarray:
    try:
        if path.suffix.lower() == ".npy":
            return np.load(path, allow_pickle=False)
        with np.load(path, allow_pickle=False) as data:
            keys = list(data.keys())
            if not keys:
                raise ValueError(f"{path} holds no arrays")
            if key is not None and key not in keys:
                raise ValueError(f"{path} has no array {key!r}; it holds {keys}")
            return data[key or keys[0]]
    except (EOFError, OSError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{path} is not a readable {path.suffix} file (empty, truncated or another format: "
                         f"{type(exc).__name__}: {exc}); write it with numpy.save/numpy.savez") from None
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise ValueError(f"{path} holds Python objects, which are not loaded (it could run code); save a "
                             "numeric array instead") from None
        raise


def load_array(path: str, columns: str | None = None, key: str | None = None) -> np.ndarray:
    """Load ``.npy``, ``.npz`` (``key`` picks the array, default the first) or ``.csv``/``.tsv``/``.txt``
    (a header row of names is detected) and select ``columns`` (``"0,2"``, ``"1:4"`` or names)."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"no such file: {path}")
    suffix = p.suffix.lower()
    if suffix in (".csv", ".txt", ".tsv"):
        return _read_text(p, columns)
    if suffix not in (".npy", ".npz"):
        raise ValueError(f"{path}: unsupported file type {suffix!r}; use .npy, .npz, .csv or .tsv")
    arr = np.asarray(_read_binary(p, key))
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[0] == 0:
        raise ValueError(f"{path} holds an array of shape {arr.shape}; expected (n_samples, n_columns) with n >= 1")
    cols = select_columns(columns, None, arr.shape[1])
    return arr[:, [j for _, j in cols]] if cols is not None else arr


@dataclasses.dataclass(frozen=True)
class SampleFiles:
    """Where ``mi-estimators estimate`` reads X and Y (its file arguments are generated from these fields).

    >>> SampleFiles("xy.csv").load()
    Traceback (most recent call last):
    ...
    ValueError: give a Y file, or --y-cols to take Y from the columns of the X file
    """

    #: file with X (.npy, .npz or .csv; rows are samples)
    x: str
    #: file with Y (none: the same file as X, with --y-cols)
    y: str | None = dataclasses.field(default=None, metadata={"positional": True})
    #: columns of X: 0-based indices '0,2', a range '0:3', or CSV header names (none: all)
    x_cols: str | None = None
    #: columns of Y (required when Y comes from the same file as X)
    y_cols: str | None = None
    #: array name inside an .npz for X (none: the first)
    x_key: str | None = None
    #: array name inside an .npz for Y (none: the first)
    y_key: str | None = None

    def load(self) -> tuple[np.ndarray, np.ndarray]:
        """``(x, y)`` as float64 arrays of the selected columns."""
        if self.y is None and self.y_cols is None:
            raise ValueError("give a Y file, or --y-cols to take Y from the columns of the X file")
        return (load_array(self.x, self.x_cols, self.x_key),
                load_array(self.y or self.x, self.y_cols, self.y_key))
