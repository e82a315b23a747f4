"""Where ctrl+e's files go and how they are written.

One folder (spectrascope-exports/ in the output folder, by default the per-user data folder:
tui/folders.py; --export-dir or the config's [export] folder choose another), names that say what a file holds and when
(spectrascope-PANE-WHAT-YYYYmmdd-HHMMSS.EXT), and an export never replaces an earlier one.
CSV cells are plain numbers or text (no "%", no padding); JSON keeps numbers as numbers and
booleans as booleans. The row builders flatten a pane's core report, so the files hold its numbers.
"""

from __future__ import annotations

import csv
import io
import json
import math
import numbers
import os
import re
import time
from pathlib import Path
from typing import Any, Iterable

from spectrascope.core.views.logits import top_status

DEFAULT_FOLDER = "spectrascope-exports"


def export_folder(output_dir: str | Path, configured: str | Path | None = None) -> Path:
    """The folder exports go to, absolute (the status line shows it in full)."""
    folder = Path(configured).expanduser() if configured else Path(output_dir) / DEFAULT_FOLDER
    return folder.resolve()


def slug(text: str, max_len: int = 32) -> str:
    """A file-name-safe few words of `text`: "The capital of France" -> "the-capital-of-france"."""
    words = re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-")
    return words[:max_len].strip("-") or "empty"


def new_stem(folder: str | Path, pane: str, what: str, when: float | None = None) -> Path:
    """folder/spectrascope-PANE-WHAT-TIME, with -2, -3... when that name is taken (two exports in one second)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    base = f"spectrascope-{pane}-{slug(what)}-{time.strftime('%Y%m%d-%H%M%S', time.localtime(when))}"
    taken = {p.name.split(".")[0] for p in folder.iterdir()}
    n, name = 1, base
    while name in taken:
        n += 1
        name = f"{base}-{n}"
    return folder / name


def write_new(path: str | Path, text: str) -> Path:
    """Write `text` to a file that must not exist yet: a temp file linked into place (os.link fails on
    an existing name), so a reader never sees half a file and nothing earlier is overwritten."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    try:
        os.link(tmp, path)
    finally:
        tmp.unlink()
    return path


def typed(value: Any) -> Any:
    """A JSON-ready copy: numpy scalars and arrays become Python numbers and lists, tuples lists,
    NaN and inf null (JSON has neither); anything else that is not plain data is an error, never str()."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        number = float(value)
        return number if math.isfinite(number) else None
    if isinstance(value, dict):
        return {str(k): typed(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [typed(v) for v in value]
    if hasattr(value, "tolist"):  # numpy / torch scalars (np.bool_ too) and arrays
        return typed(value.tolist())
    raise TypeError(f"cannot export a {type(value).__name__} as JSON")


def write_json(path: str | Path, doc: Any) -> Path:
    return write_new(path, json.dumps(typed(doc), indent=1, ensure_ascii=False, allow_nan=False) + "\n")


def write_csv(path: str | Path, rows: list[dict[str, Any]]) -> Path:
    """Rows of plain cells (text, numbers, booleans as true/false; None is an empty cell); every row
    has the same named columns."""
    if not rows:
        raise ValueError("nothing to write")
    columns = list(rows[0])
    if any(not c for c in columns) or any(list(r) != columns for r in rows):
        raise ValueError(f"every row needs the same named columns: {columns}")
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row[c]) for c in columns])
    return write_new(path, buf.getvalue())


def _cell(value: Any) -> Any:
    value = typed(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        raise TypeError("a CSV cell holds one value; join lists before writing")
    return "" if value is None else value


# ---- rows: a core report flattened, one table row per line -------------------------------------------------
def distribution_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """A Logits report's top rows (core/views/logits.NextToken) as the Logits table shows them: status kept or
    the knob that cut it."""
    return [{"rank": r["rank"], "token_id": r["id"], "token": r["token"], "logit": r["logit"], "raw_p": r["raw_p"],
             "final_p": r["final_p"], "status": r["excluded_by"] or "kept"} for r in report["top"]]


def ab_rows(system: str, report: dict[str, Any]) -> list[dict[str, Any]]:
    """A Logits report's A/B rows (core/views/logits.ABReport) with the system prompt on each: both distributions
    (p without / with), both ranks, the rank shift as a number (positive = climbed with the system prompt) and
    where the token stands in the top N (logits.top_status)."""
    return [{"system": system, "token_id": r["id"], "token": r["token"], "p_without": r["p_without"],
             "p_with": r["p_with"], "rank_without": r["rank_without"], "rank_with": r["rank_with"],
             "rank_shift": r["rank_change"], "status": top_status(r["new_in_top"], r["dropped"])}
            for r in report["rows"]]


def steering_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """steering.SteeringReport.to_dict() as one row per generated text (configuration x strength x seed);
    concept_trace: the concept feature's unsteered activation at each generated token, space-separated."""
    return [{"config": cell["config"], "strength": cell["strength"], "seed": run["seed"],
             "concept_act": run["concept_act"], "perplexity": run["perplexity"],
             "concept_words": " ".join(run["concept_words"]), "text": run["text"],
             "concept_trace": " ".join(f"{v:.3f}" for v in run.get("concept_trace") or ())}
            for cell in report["cells"] for run in cell["runs"]]


def export_note(paths: list[Path]) -> str:
    """The line that names what was written, in full: "Exported /dir/stem.csv (+ .json)" for one stem."""
    stem = paths[0].with_suffix("")
    if all(p.with_suffix("") == stem for p in paths):
        more = ", ".join(p.suffix for p in paths[1:])
        return f"Exported {paths[0]}" + (f" (+ {more})" if more else "")
    return "Exported " + ", ".join(str(p) for p in paths)


def export_files(stem: Path, doc: dict[str, Any], rows: Iterable[dict[str, Any]] | None = None) -> list[Path]:
    """stem.json with the whole report, and stem.csv with its table when there is one."""
    rows = list(rows or [])
    return ([write_csv(stem.with_suffix(".csv"), rows)] if rows else []) + [write_json(stem.with_suffix(".json"), doc)]


def pairing_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """A `PairingReport.to_dict()`'s anchors as one row per (coarse anchor, fine feature) pair, with its class."""
    return [{"coarse": a["feature"], "fine": p["fine"], "cosine": p["cosine"], "correlation": p["correlation"],
             "class": p["cls"], "fine_selectivity": p["selectivity"], "fine_label": p["label"]}
            for a in report["anchors"] for p in a["pairs"]]
