"""ctrl+e: the export folder and names, typed CSV/JSON read back with csv/json and compared with each
pane's core report, the system prompt in the A/B export, and a path line that outlives the next run."""

from __future__ import annotations

import csv
import json
import math
import re
from contextlib import asynccontextmanager
from pathlib import Path

import numpy as np
import pytest
from textual.widgets import Input, Static

from spectrascope.core.views.logits import ABReport, NextToken
from spectrascope.tui.app import SpectrascopeApp
from spectrascope.tui.cli import parse_args
from spectrascope.tui.config import load_config
from spectrascope.tui.export import (DEFAULT_FOLDER, ab_rows, distribution_rows, export_folder, export_note,
                                     new_stem, pairing_rows, slug, steering_rows, typed, write_csv, write_json,
                                     write_new)
from tests.tui.fake_session import FakeSession, fake_with_saes
from tests.tui.pilot_helpers import show_pane, until

SYSTEM = "You are a pirate."


def distribution_report(dist, piece, top):  # the Logits report's distribution, as its JSON has it
    return NextToken.of(dist, piece, top).to_dict()


def ab_report(comp, piece):  # the Logits report's A/B, as its JSON has it
    return ABReport.of("", comp, piece).to_dict()


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


NUMBER_LIKE = re.compile(r"^\s*[-+]?[\d.]+(e[-+]?\d+)?\s*%?\s*$")


def assert_clean(rows: list[dict[str, str]], may_be_empty: tuple[str, ...] = ()) -> None:
    """No column without a name or empty in every row (but data that can be: no concept word in any
    text); a number is a bare number (no "%", no padding)."""
    assert rows
    for column in rows[0]:
        assert column and (column in may_be_empty or any(r[column] != "" for r in rows)), column
    for r in rows:
        for v in r.values():
            if NUMBER_LIKE.match(v):
                float(v)  # "12%" or " 0.5" would fail here
                assert v == v.strip(), repr(v)


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-15)


# ---- the writers -------------------------------------------------------------------------------
def test_folder_names_and_never_overwrite(tmp_path):
    assert export_folder(tmp_path) == (tmp_path / DEFAULT_FOLDER).resolve()
    assert export_folder(tmp_path, "~/x") == (Path.home() / "x").resolve()
    assert slug("The capital of  France, é?") == "the-capital-of-france" and slug("!!!") == "empty"
    folder = tmp_path / "new" / "folder"  # created on first export
    first = new_stem(folder, "logits", "The capital", when=0)
    assert first.name.startswith("spectrascope-logits-the-capital-19") and folder.is_dir()
    write_new(first.with_suffix(".csv"), "a\n")
    second = new_stem(folder, "logits", "The capital", when=0)  # same second: a new name
    assert second.name == first.name + "-2"
    with pytest.raises(FileExistsError):
        write_new(first.with_suffix(".csv"), "b\n")
    assert first.with_suffix(".csv").read_text() == "a\n"
    assert sorted(p.name for p in folder.iterdir()) == [first.name + ".csv"]  # no temp file left
    assert export_note([first.with_suffix(".csv"), first.with_suffix(".json")]) == f"Exported {first}.csv (+ .json)"


def test_json_is_typed_and_csv_cells_are_plain(tmp_path):
    doc = {"n": np.int64(3), "p": np.float32(0.25), "flag": np.bool_(True), "arr": np.arange(2), "t": (1, 2.5),
           "nan": float("nan"), "none": None, "ok": False}
    back = json.loads(write_json(tmp_path / "a.json", doc).read_text())
    assert back == {"n": 3, "p": 0.25, "flag": True, "arr": [0, 1], "t": [1, 2.5], "nan": None, "none": None,
                    "ok": False}
    assert type(back["flag"]) is bool and type(back["n"]) is int
    with pytest.raises(TypeError):
        typed(object())
    rows = [{"rank": 1, "p": 0.123456789012, "kept": True, "shift": None}, {"rank": 2, "p": 1e-9, "kept": False,
                                                                          "shift": -3}]
    back = read_csv(write_csv(tmp_path / "a.csv", rows))
    assert back == [{"rank": "1", "p": "0.123456789012", "kept": "true", "shift": ""},
                    {"rank": "2", "p": "1e-09", "kept": "false", "shift": "-3"}]
    with pytest.raises(ValueError):
        write_csv(tmp_path / "b.csv", [{"a": 1}, {"b": 2}])
    with pytest.raises(TypeError):
        write_csv(tmp_path / "c.csv", [{"a": [1, 2]}])


def test_row_builders_keep_the_report_numbers():
    report = {"top": [{"rank": 1, "id": 5, "token": "a", "logit": 2.0, "raw_p": 0.6, "final_p": 0.7,
                       "excluded_by": None},
                      {"rank": 2, "id": 6, "token": "b", "logit": 1.0, "raw_p": 0.1, "final_p": 0.0,
                       "excluded_by": "top_k"}]}
    assert [r["status"] for r in distribution_rows(report)] == ["kept", "top_k"]
    ab = {"rows": [{"id": 5, "token": "a", "p_without": 0.2, "p_with": 0.5, "rank_without": 3, "rank_with": 1,
                    "rank_change": 2, "new_in_top": False, "dropped": False},
                   {"id": 7, "token": "c", "p_without": 0.1, "p_with": 0.0, "rank_without": 4, "rank_with": None,
                    "rank_change": None, "new_in_top": False, "dropped": True}]}
    rows = ab_rows(SYSTEM, ab)
    assert [(r["system"], r["rank_shift"], r["status"]) for r in rows] == [(SYSTEM, 2, "in both"),
                                                                           (SYSTEM, None, "dropped")]
    steer = {"cells": [{"config": "baseline", "strength": 0.0, "runs": [
        {"seed": 0, "text": "x y", "concept_act": 0.5, "perplexity": 3.0, "concept_words": ["Paris", "France"],
         "concept_trace": [0.0, 1.0]}]}]}
    assert steering_rows(steer) == [{"config": "baseline", "strength": 0.0, "seed": 0, "concept_act": 0.5,
                                     "perplexity": 3.0, "concept_words": "Paris France", "text": "x y",
                                     "concept_trace": "0.000 1.000"}]


def test_export_folder_from_the_config_and_the_flag(tmp_path, monkeypatch):
    cfg = tmp_path / "config.toml"
    cfg.write_text('[export]\nfolder = "~/my-exports"\n')
    monkeypatch.setenv("SPECTRASCOPE_CONFIG", str(cfg))
    assert load_config()["export"]["folder"] == "~/my-exports"
    cfg.write_text("[export]\nfolder = 3\n")
    with pytest.raises(ValueError, match=r"\[export\] folder"):
        load_config()
    assert parse_args(["--export-dir", "out"]).export_dir == "out"
    with pytest.raises(ValueError, match="--export-dir is a TUI option"):
        parse_args(["--export-dir", "out", "probe", "hi"])


# ---- from the panes, with ctrl+e -----------------------------------------------------------------
def exported(folder: Path, before: set) -> dict[str, Path]:
    return {p.suffix: p for p in folder.iterdir() if p not in before}


@asynccontextmanager
async def on_pane(tmp_path, session, pane: str, prompt: str = "The capital of France", size=(120, 40), **kwargs):
    """The real app on `session` with its first result in, `pane` shown: (app, pilot, pane widget)."""
    app = SpectrascopeApp(lambda progress: session, prompt=prompt, output_dir=tmp_path, **kwargs)
    async with app.run_test(size=size) as pilot:
        await until(pilot, lambda: app.result is not None)
        await show_pane(pilot, pane)
        yield app, pilot, app.query_one(f"#{pane}")


async def export_now(pilot, folder: Path) -> dict[str, Path]:
    before = set(folder.iterdir()) if folder.is_dir() else set()
    await pilot.press("ctrl+e")
    await until(pilot, lambda: folder.is_dir() and set(folder.iterdir()) - before)
    return exported(folder, before)


@pytest.mark.asyncio
async def test_logits_and_ab_exports_hold_the_reports_numbers_and_the_system_prompt(tmp_path):
    fake = FakeSession()
    folder = tmp_path / DEFAULT_FOLDER
    async with on_pane(tmp_path, fake, "logits") as (app, pilot, pane):
        # The A/B: the system prompt on every row and in the JSON, both distributions, rank and shift apart.
        await pilot.press("a")
        await pilot.press(*SYSTEM, "enter")
        await until(pilot, lambda: pane.ab is not None and not pane.busy)
        app.query_one("#logits-table").focus()
        files = await export_now(pilot, folder)
        assert files[".csv"].name.startswith("spectrascope-logits-ab-")
        want = ab_report(pane.ab.comparison, fake.piece)
        rows = read_csv(files[".csv"])
        assert_clean(rows)
        assert [r["system"] for r in rows] == [SYSTEM] * len(want["rows"])
        for r, w in zip(rows, want["rows"]):
            assert int(r["token_id"]) == w["id"]
            assert close(float(r["p_without"]), w["p_without"]) and close(float(r["p_with"]), w["p_with"])
            assert r["rank_shift"] == ("" if w["rank_change"] is None else str(w["rank_change"]))
            assert r["rank_without"] == ("" if w["rank_without"] is None else str(w["rank_without"]))
        doc = json.loads(files[".json"].read_text())["system_ab"]
        assert doc["system"] == SYSTEM and doc["rows"] == want["rows"]
        assert doc["without"]["top"] and doc["with_system"]["top"]  # both distributions in full
        assert type(doc["rows"][0]["new_in_top"]) is bool

        # The distribution under top-k 3: excluded rows say which knob cut them.
        await pilot.press("a")  # A/B off: the table is the distribution again
        await pilot.press("K", "K", "K")  # top-k 3: excluded rows in the table
        files = await export_now(pilot, folder)
        assert files[".csv"].name.startswith("spectrascope-logits-the-capital-of-france-")
        report = distribution_report(pane.view.apply(pane.settings), fake.piece, pane.top_n)
        rows = read_csv(files[".csv"])
        assert_clean(rows)
        assert len(rows) == len(report["top"])
        for r, want in zip(rows, report["top"]):
            assert int(r["rank"]) == want["rank"] and int(r["token_id"]) == want["id"] and r["token"] == want["token"]
            assert close(float(r["final_p"]), want["final_p"]) and close(float(r["raw_p"]), want["raw_p"])
            assert r["status"] == (want["excluded_by"] or "kept")
        assert {r["status"] for r in rows} >= {"kept", "top-k"}
        doc = json.loads(files[".json"].read_text())
        assert doc["top"] == report["top"] and type(doc["survivors"]) is int

        assert len(list(folder.glob("*.csv"))) == 2  # the first export is still there


@pytest.mark.asyncio
async def test_the_path_line_stays_through_the_next_run_until_dismissed(tmp_path):
    async with on_pane(tmp_path, FakeSession(), "logits", export_dir=tmp_path / "mine") as (app, pilot, _):
        files = await export_now(pilot, tmp_path / "mine")
        note = app.query_one("#export-note", Static)
        text = str(note.render())
        assert note.display and str((tmp_path / "mine").resolve() / files[".csv"].name) in text
        app.query_one("#prompt", Input).value = "Paris is"  # the next run
        await until(pilot, lambda: app.result.prompt == "Paris is")
        await pilot.press("ctrl+r")
        await pilot.pause(0.3)
        assert note.display and str(note.render()) == text
        await show_pane(pilot, "logits")
        await pilot.press("ctrl+t")
        assert not note.display


@pytest.mark.asyncio
async def test_steering_export_is_its_report(tmp_path):
    folder = tmp_path / DEFAULT_FOLDER
    async with on_pane(tmp_path, fake_with_saes(), "steering", "The capital of France is", (160, 45)) as (
            app, pilot, pane):
        await pilot.press("ctrl+e")
        await pilot.pause()
        assert "Nothing to export yet" in str(app.query_one("#status", Static).render())
        pane.tokens, pane.n_seeds = 3, 2
        for selector, value in (("#steer-words", "Paris, France"), ("#steer-features", "coarse:3:2 fine:10:1")):
            box = app.query_one(selector, Input)
            box.focus()
            box.value = value
            await pilot.press("enter")
            await pilot.pause()
        pane.action_generate()
        await until(pilot, lambda: pane.report is not None and not pane.busy)
        files = await export_now(pilot, folder)
        assert files[".csv"].name.startswith("spectrascope-steering-side-the-capital-of-france-is-")
        doc = json.loads(files[".json"].read_text())
        assert doc == json.loads(json.dumps(typed(pane.report.to_dict())))
        assert doc["features"] == [{"role": "coarse", "id": 3, "strength": 2.0}, {"role": "fine", "id": 10,
                                                                                 "strength": 1.0}]
        rows = read_csv(files[".csv"])
        assert_clean(rows, may_be_empty=("concept_words",))  # the fake's texts may hold no concept word
        runs = [(c, r) for c in pane.report.cells for r in c.runs]
        assert len(rows) == len(runs) == 4 * 2  # baseline, coarse, fine, coarse+fine x 2 seeds
        for row, (cell, run) in zip(rows, runs):
            assert (row["config"], float(row["strength"]), int(row["seed"])) == (cell.config, cell.strength, run.seed)
            assert row["text"] == run.text and close(float(row["perplexity"]), run.perplexity)
            assert row["concept_act"] == "" if run.concept_act is None else close(float(row["concept_act"]),
                                                                                  run.concept_act)


@pytest.mark.asyncio
async def test_spectrum_export_lands_in_the_folder_with_a_named_file(tmp_path):
    folder = tmp_path / DEFAULT_FOLDER
    async with on_pane(tmp_path, fake_with_saes(), "spectrum") as (app, pilot, _):
        await until(pilot, lambda: app.result.spectra)
        files = await export_now(pilot, folder)
        assert list(files) == [".json"] and files[".json"].name.startswith("spectrascope-spectrum-the-capital-")
        doc = json.loads(files[".json"].read_text())
        assert doc == json.loads(json.dumps(typed({**app.query_one("#spectrum").view().to_dict(), "fidelity": {
            r: s.fidelity.tolist() for r, s in app.result.spectra.items()}})))


@pytest.mark.asyncio
async def test_layers_export_is_the_lens_report(tmp_path):
    async with on_pane(tmp_path, fake_with_saes(), "layers", size=(150, 45)) as (app, pilot, pane):
        await until(pilot, lambda: pane.report is not None)
        files = await export_now(pilot, tmp_path / DEFAULT_FOLDER)
        assert list(files) == [".json"]
        assert files[".json"].name.startswith("spectrascope-lens-the-capital-of-france-pos-")
        assert json.loads(files[".json"].read_text()) == json.loads(json.dumps(typed(pane.report.to_dict())))


def test_pairing_rows_are_the_reports_pairs():
    report = {"anchors": [{"feature": 4, "pairs": [
        {"fine": 9, "cosine": 0.5, "correlation": 0.25, "cls": "child", "selectivity": 1.5, "label": "Paris"},
        {"fine": 2, "cosine": -0.1, "correlation": 0.0, "cls": "unrelated", "selectivity": 0.0, "label": ""}]}]}
    assert pairing_rows(report) == [
        {"coarse": 4, "fine": 9, "cosine": 0.5, "correlation": 0.25, "class": "child", "fine_selectivity": 1.5,
         "fine_label": "Paris"},
        {"coarse": 4, "fine": 2, "cosine": -0.1, "correlation": 0.0, "class": "unrelated", "fine_selectivity": 0.0,
         "fine_label": ""}]
