"""The Logits pane's pieces that draw one part of the Logits view's report (core/views/logits.py): the
next-token and A/B tables' cells, the prompt with its generated tokens, the strip of the generated
tokens' surprise and top feature, and the seeded runs' box."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable, Mapping, Sequence

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import DataTable, Static

from spectrascope.core.text import one_line, visible
from spectrascope.core.views.logits import ABReport, NextToken
from spectrascope.tui.stale import Basis
from spectrascope.tui.widgets.bars import bar
from spectrascope.tui.widgets.fast_table import Column
from spectrascope.tui.widgets.step_strip import step_strip_text

Cells = list[list[tuple[str, str]]]  # rows of (text, style) cells, as FastTable.set_rows takes them

DISTRIBUTION_COLUMNS = [Column("#", 3, True), Column("id", 7, True), Column("token", 18), Column("logit", 7, True),
                        Column("raw p", 7, True), Column("final p", 7, True), Column("", 16), Column("status", 10)]
AB_COLUMNS = [Column("#", 3, True), Column("id", 7, True), Column("token", 18), Column("p without", 9, True),
              Column("p with", 9, True), Column("rank", 11, True), Column("shift", 8), Column("", 12)]
HOW_STYLE = {"greedy": "bold cyan", "sampled": "bold green", "picked": "bold yellow"}
STRIP_STEPS = 40  # the strip reports at most the newest this many steps (more never fit a line)


def distribution_cells(dist: NextToken) -> Cells:
    """The top rows with a bar of their probability; a row a knob excluded stays, dimmed, saying which knob."""
    scale = max([max(r.raw_p, r.final_p) for r in dist.top], default=1.0) or 1.0
    cells = []
    for row in dist.top:
        kept = row.excluded_by is None
        dim = "" if kept else "grey50 strike"
        cells.append([
            (str(row.rank), dim), (str(row.id), dim), (visible(row.token), dim or "bold"),
            (f"{row.logit:.2f}", dim), (f"{row.raw_p:.4f}", dim), (f"{row.final_p:.4f}" if kept else "0", dim),
            (bar((row.final_p if kept else row.raw_p) / scale, 16), "green" if kept else "grey39"),
            ("kept", "green") if kept else (f"✗ {row.excluded_by}", "grey50"),
        ])
    return cells


def distribution_summary(dist: NextToken) -> str:
    return (f"survivors {dist.survivors:,} of {dist.vocab:,} · entropy {abs(dist.entropy_before):.2f}"
            f" → {abs(dist.entropy_after):.2f} nats · excluded tokens stay listed, dimmed, with the knob")


def ab_cells(ab: ABReport) -> Cells:
    """Each token's p and rank without and with the system prompt, its rank shift and top-N status."""
    cells = []
    for i, row in enumerate(ab.rows, start=1):
        change = row.rank_change
        style = "yellow" if change is None else "" if change == 0 else "green" if change > 0 else "red"
        cells.append([
            (str(i), ""), (str(row.id), ""), (visible(row.token), "bold"), (f"{row.p_without:.4f}", ""),
            (f"{row.p_with:.4f}", ""), (f"{row.rank_without or '–'} → {row.rank_with or '–'}", ""),
            (row.shift, style), ("" if row.status == "in both" else row.status, "yellow"),
        ])
    return cells


def ab_summary(ab: ABReport, stale: str) -> tuple[str, str]:
    """The line over the A/B table, and its style: the KL line `spectrascope logits --system` prints, after
    `stale` (what the A/B was computed for) when it no longer matches."""
    summary = f"A/B: {ab.kl_summary} · top {ab.top_n}"
    return (f"{stale} (ctrl+r recomputes) · {summary}", "bold yellow") if stale else (summary, "")


def draw_distribution(table: Any, dist: Any, piece: Callable[[int], str], top: int) -> str:
    """Fill `table` (a FastTable) with the top rows of `dist` (a `sampling.Distribution`); the line over it."""
    shown = NextToken.of(dist, piece, top)
    table.set_rows(distribution_cells(shown), [str(r.id) for r in shown.top])
    return distribution_summary(shown)


def draw_ab(table: Any, ab: Any, system: str, piece: Callable[[int], str], stale: str, busy: bool) -> tuple[str, str]:
    """Fill `table` with the A/B's rows (`ab` a `generation.SystemAB`; None: no rows, never the plain distribution
    under the A/B's headers); the line over it and its style (`stale`: what an older A/B was computed for)."""
    if ab is None:
        table.set_rows([], [])
        return ("A/B: computing…" if busy else "A/B: enter in the system field compares."), ""
    report = ABReport.of(system, ab.comparison, piece)
    table.set_rows(ab_cells(report), [str(r.id) for r in report.rows])
    return ab_summary(report, stale)


def knobs_line(settings: Any, busy: bool, queued: int) -> Text:
    """The knobs as the keys turn them, with whether a job runs and how many steps wait."""
    from spectrascope.tui.knob_keys import knob_text

    more = ("   ⏳ working…" if busy else "") + (f" (+{queued} queued)" if queued else "")
    return Text(knob_text(settings) + more, style="bold")


def generated_text(prompt: str, steps: Sequence[Any] | None, piece: Callable[[int], str]) -> Text:
    """The prompt's end, then each generated token coloured by how it was chosen (None: no stepper, the keys)."""
    text = Text()
    if steps is None:
        text.append(one_line(prompt[-300:], 300), style="dim")
        text.append("  (s sample · g greedy · enter pick · b back · n runs)", style="italic grey50")
        return text
    text.append(one_line(prompt[-200:], 200), style="dim")
    for step in steps:
        text.append(visible(piece(step.token_id), mark_spaces=False), style=HOW_STYLE[step.how])
    text.append(f"   [{len(steps)} step{'s' if len(steps) != 1 else ''}]", style="grey50")
    return text


class GenerationStrip(Static):
    """Per generated token its surprise and top feature, from `step_records` (the report `logits --features`
    prints); labels not known yet show "…" until they are computed."""

    records: list = []  # core.analysis.step_record.TokenRecord of the steps shown
    earlier = 0  # steps before the first one in `records`

    def show(self, steps: Sequence[Any], piece: Callable[[int], str], labels: Mapping[str, Any],
             width: int) -> dict[str, list[int]]:
        """Draw the newest steps that fit (its width, else `width`); returns the labels still to compute
        (role -> features)."""
        self.display = bool(steps)
        if not steps:
            self.records = []
            return {}
        from spectrascope.core.analysis.step_record import pending_labels, step_records

        self.earlier = max(0, len(steps) - STRIP_STEPS)
        self.records = [replace(r, step=r.step + self.earlier)
                        for r in step_records(steps[self.earlier:], piece, labels, top=1, compute_labels=False)]
        self.update(step_strip_text(self.records, self.size.width or width, self.earlier))
        return pending_labels(self.records)

    def on_resize(self) -> None:
        if self.records:
            self.update(step_strip_text(self.records, self.size.width, self.earlier))  # as many as now fit


class RunsBox(Vertical):
    """The seeded runs' table under a line that says what they were computed for, or that they are stale."""

    def compose(self) -> ComposeResult:
        yield Static("", id="logits-runs-note")
        yield DataTable(id="logits-runs", zebra_stripes=True, cursor_type="row")

    def on_mount(self) -> None:
        self.display = False

    def show_runs(self, runs: Sequence[Any]) -> None:
        table = self.query_one(DataTable)
        self.display = True
        table.clear(columns=True)
        table.add_columns("seed", "diverges at", "continuation")
        for run in runs:
            where = "—" if run.diverges_at is None else f"step {run.diverges_at}"
            table.add_row(str(run.seed), where, Text(one_line(run.text, 160)))

    def note(self, basis: Basis | None, current: Basis) -> None:
        """Say what the runs were computed for (`basis`; None: no runs, the box hides), or that they are stale."""
        self.display = basis is not None
        if basis is not None:
            stale = basis.stale_note(current)
            text = (f"seeded runs · {stale} · n reruns" if stale
                    else f"seeded runs of '{basis.prompt}' · {basis.knobs}")
            self.query_one(Static).update(Text(one_line(text, 300), style="bold yellow" if stale else "grey50"))
