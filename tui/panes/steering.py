"""Steering pane: coarse vs fine vs coarse+fine feature steering, side by side, effect vs cost.

Features come from the Pairing pane's selection (key f; the app hands it down) or are
typed as `coarse:123:4 fine:77:2` (ROLE:ID[:STRENGTH]; strength in the feature's unit, see
core/steering.py). g generates every configuration (baseline, coarse, fine, coarse+fine)
with the same seeds and shows them side by side with the effect (concept activation read back
unsteered, share of runs with a concept word) and the cost (perplexity under the unsteered
model) under each; w runs the strength sweep and plots effect and cost against strength.
All model work runs in one thread worker (group "steering"); a new run cancels the old one.
A report stays on screen when the prompt (the app's, as typed) or a setting changes, under a
"stale: computed for …" line.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import Input, Static

from spectrascope.core.stats.knobs import SamplingSettings
from spectrascope.core.text import one_line, visible
from spectrascope.tui.plots import blank_figure
from spectrascope.tui.errors import describe
from spectrascope.tui.panes.base import Pane
from spectrascope.tui.messages import RunProgress
from spectrascope.tui.stale import Basis
from spectrascope.tui.token_wrap import Unit, marker, wrapped_text
from spectrascope.tui.widgets.fast_table import Column, FastTable
from spectrascope.tui.widgets.text_field import TextField

if TYPE_CHECKING:
    from spectrascope.core.engine.interface import SessionAPI

CONFIGS = ("baseline", "coarse", "fine", "coarse+fine")
CONFIG_COLORS = {"baseline": "white", "coarse": "cyan", "fine": "magenta", "coarse+fine": "yellow", "all": "green"}
# Each line's own glyph, so the legend reads without colour (a projector, a monochrome terminal).
CONFIG_MARKERS = {"baseline": "·", "coarse": "o", "fine": "x", "coarse+fine": "+", "all": "*"}
STRENGTH_STEP = 0.5
FEATURE_ROWS_SHOWN = 8


class SteeringProgress(RunProgress):
    pass


@dataclass
class SteeringDone(Message):
    run_id: int
    kind: str  # "compare" or "sweep"
    basis: Basis  # the prompt and settings it was computed for
    report: Any = None  # core.steering.SteeringReport
    error: BaseException | None = None


def plot_curves(report: Any, metric: str, width: int, height: int) -> str:
    """plotext line chart of one metric vs sweep strength, one line per configuration (ANSI string)."""
    with blank_figure(max(20, width), max(6, height)) as plt:
        return _draw_curves(plt, report, metric)


def _draw_curves(plt: Any, report: Any, metric: str) -> str:
    for name in report.configs:
        if name == "baseline":
            continue
        cells = report.curve(name)
        ys = [getattr(c, metric) for c in cells]
        xs = [c.strength for c in cells]
        pairs = [(x, y) for x, y in zip(xs, ys) if y is not None and y == y]
        if pairs:
            plt.plot([p[0] for p in pairs], [p[1] for p in pairs], label=f"{CONFIG_MARKERS.get(name, '*')} {name}",
                     color=CONFIG_COLORS.get(name, "green"), marker=CONFIG_MARKERS.get(name, "*"))
    base = report.cell("baseline")
    b = getattr(base, metric)
    if b is not None and b == b:
        xs = sorted({c.strength for c in report.cells} | {0.0})
        plt.plot(xs, [b] * len(xs), label="· baseline", color="gray", marker="·")
    titles = {"concept_act": "effect: concept activation", "concept_share": "effect: concept-word share",
              "perplexity": "cost: perplexity"}
    title = titles.get(metric, metric)
    if metric == "perplexity":  # one wild strength (ppl 162,831) would flatten every other point
        plt.yscale("log")
        title += " (log scale)"
    plt.title(title)
    plt.xlabel("strength ×")
    return plt.build()


# Where the concept feature fired on a token (its unsteered readback), as a share of the column's
# strongest firing: up to 1/3, 2/3, above. Background and underline, so it also reads without colour.
# Colours from the xterm-256 cube, so a 256-colour terminal does not fold two levels into one.
MARK_STYLES = ("underline on #005f00", "underline on #008700", "bold underline black on #5fd75f")


def mark_style(value: float, top: float) -> str:
    """The mark of a token whose concept activation is `value` in a column whose largest is `top`."""
    if value <= 0 or top <= 0:
        return ""
    return MARK_STYLES[min(len(MARK_STYLES) - 1, int(len(MARK_STYLES) * value / top - 1e-9))]


def run_units(run: Any, top: float = 0.0) -> list[Unit]:
    """A run's generated text as display units (core token pieces), control tokens as markers;
    a stretch of one repeated control token is one marker with its count. With `top` (the column's
    largest concept activation) each text unit is marked by how strongly the concept feature fired."""
    units: list[Unit] = []
    pieces = list(run.pieces)
    trace = run.piece_trace() if top > 0 else ()
    i = 0
    while i < len(pieces):
        piece, n = pieces[i], 1
        if piece.special:
            while i + n < len(pieces) and pieces[i + n] == piece:
                n += 1
            units.append(marker(visible(piece.text), n))
        else:
            units.append(Unit(visible(piece.text, mark_spaces=False), mark_style(trace[i], top) if trace else ""))
        i += n
    return units


def mark_legend(concept: tuple[str, int], top: float, narrow: bool) -> Text:
    """The column header's key to the marks: which feature, read back unsteered, as a share of what."""
    if top <= 0:
        return Text(f"marks #{concept[1]} silent" if narrow else
                    f"marks: none, concept feature {concept[0]} #{concept[1]} silent (unsteered readback)",
                    style="grey50")
    out = Text(f"marks #{concept[1]} " if narrow else "marks ", style="grey50")
    for style, name in zip(MARK_STYLES, ("⅓", "⅔", "1")):
        out.append(f"{name}", style=style)
        out.append(" ")
    if narrow:
        return out
    # No per-column number here: the same words in every column wrap alike and keep the seeds aligned.
    return out.append(f"of the column's max: concept feature {concept[0]} #{concept[1]}, unsteered readback",
                      style="grey50")


class RunColumn(Static):
    """One configuration's column; its runs are wrapped between tokens at the column's own width."""

    def show(self, head: Text, numbers: list[tuple[str, str, str]], runs: list[list[Unit]],
             legend: Any = None) -> None:
        """`numbers`: (line, short line for a narrow column, style) each; `runs`: display units each;
        `legend(narrow)`: the marks' key as a Text, or None."""
        self._parts = (head, numbers, runs, legend)
        self._wrap_width = 0
        self._wrap()

    def on_resize(self) -> None:
        if getattr(self, "_parts", None) is not None and self.content_size.width != self._wrap_width:
            self._wrap()

    def _wrap(self) -> None:
        head, numbers, runs, legend = self._parts
        # Before its first layout the column has no size: a quarter of the row, re-wrapped on resize.
        row = self.parent.size.width if self.parent is not None else 0
        width = self._wrap_width = self.content_size.width or max(10, (row or 160) // 4 - 3)
        text = head.copy()
        narrow = max(len(line) for line, _, _ in numbers) > width  # 80x24: 3 lines, not 6 wrapped ones
        for line, short, style in numbers:
            text.append("\n" + (short if narrow else line), style=style)
        if legend is not None:
            text.append("\n")
            text.append_text(legend(narrow))
        text.append("\n" + "─" * 12, style="grey39")
        for units in runs:
            text.append("\n")
            text.append_text(wrapped_text(units, width))
        self.update(text)


class SteeringPane(Pane):
    DEFAULT_CLASSES = "pane"
    focus_target = "#steer-feature-table"
    pane_title = "Steering"
    DEFAULT_CSS = """
    SteeringPane #steer-inputs { height: 3; }
    SteeringPane #steer-features { width: 2fr; }
    SteeringPane #steer-words { width: 1fr; }
    SteeringPane #steer-settings { height: 1; color: $accent; }
    SteeringPane #steer-status { height: 1; color: $text-muted; }
    SteeringPane #steer-stale { height: 1; }
    SteeringPane #steer-feature-table { height: 5; }
    SteeringPane #steer-columns { height: 1fr; }
    /* Full height, so every rule runs to the bottom whatever each column's text length. */
    SteeringPane .steer-col { width: 1fr; height: 1fr; padding: 0 1; border-left: solid $panel-lighten-2; }
    SteeringPane #steer-plots { height: 1fr; }
    SteeringPane .steer-plot { width: 1fr; height: 1fr; }
    """
    BINDINGS = [
        Binding("g", "generate", "Generate"),
        Binding("w", "sweep", "Sweep"),
        Binding("v", "toggle_view", "Side/Sweep"),
        Binding("f", "from_pairing", "From pairing"),
        Binding("plus,equals_sign", "strength(1)", "Str+"),
        Binding("minus", "strength(-1)", "Str−"),
        Binding("m", "toggle_method", "add/clamp"),
        Binding("o", "toggle_positions", "Positions"),
        Binding("right_square_bracket", "seeds(1)", "Seeds+", show=False),
        Binding("left_square_bracket", "seeds(-1)", "Seeds−", show=False),
        Binding("r", "reseed", "New seed", show=False),
        Binding("escape", "cancel", "Cancel", show=False),
    ]

    n_seeds = 3
    tokens = 12
    sweep = (0.0, 2.0, 4.0, 8.0)
    # Handed down by the app: the session, its prompt as typed, the Pairing pane's selection.
    session: reactive[SessionAPI | None] = reactive(None, init=False, repaint=False)
    prompt: reactive[str] = reactive("", init=False, repaint=False)
    pairing_selection: reactive[tuple[tuple[str, int], ...]] = reactive((), init=False, repaint=False)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.features: list[Any] = []  # core.steering.SteerFeature
        self.method = "add"
        self.positions = "all"
        self.settings = SamplingSettings(temperature=1.0)
        self.unit = "max_act"  # what strength 1 means (core/steering.py UNITS); no key, a session file sets it
        self.words: list[str] | None = None  # None: the words the concept feature fires on most (its label)
        self.report: Any = None  # last side-by-side report
        self.report_basis: Basis | None = None
        self.sweep_report: Any = None
        self.sweep_basis: Basis | None = None
        self.view = "side"
        self.busy = False
        self._run_id = 0
        self._cancel: threading.Event | None = None

    def compose(self) -> ComposeResult:
        with Horizontal(id="steer-inputs"):
            yield TextField("features to steer", placeholder="coarse:123:4 fine:77:2   (f: the Pairing pane's)",
                            id="steer-features")
            yield TextField("concept words", placeholder="comma-separated; empty: the words the concept feature fires on most",
                            id="steer-words")
        yield Static("", id="steer-settings")
        yield FastTable(id="steer-feature-table")
        yield Static("", id="steer-status")
        yield Static("", id="steer-stale")
        with Horizontal(id="steer-columns"):
            for name in CONFIGS:
                yield RunColumn("", id=f"steer-col-{name.replace('+', '-')}", classes="steer-col")
        with Horizontal(id="steer-plots"):
            yield Static("", id="steer-plot-effect", classes="steer-plot")
            yield Static("", id="steer-plot-cost", classes="steer-plot")

    def on_mount(self) -> None:
        self.query_one("#steer-feature-table", FastTable).set_columns(
            [Column("role", 7), Column("id", 7, True), Column("strength", 9, True), Column("", 40)])
        self.query_one("#steer-plots").display = False
        self._draw_settings()
        self._draw_features()
        self._say("Type features and press enter (or f for the Pairing pane's), then g to generate, w to sweep.")

    def on_unmount(self) -> None:
        if self._cancel is not None:
            self._cancel.set()  # a running experiment stops at its next token; its hooks come off

    def watch_prompt(self) -> None:
        if self.is_mounted:  # the app's prompt moved on: the shown report may be stale now
            self._draw_stale()

    # ---- helpers --------------------------------------------------------------------------------
    def _basis(self) -> Basis:
        """Everything a report depends on, as set now."""
        features = " ".join(f.label() for f in self.features)
        words = "from the concept feature's label" if not self.words else ", ".join(self.words)
        return Basis(self.prompt, f"{features} · {self.method} · positions {self.positions} · seeds {self.n_seeds} "
                                  f"from {self.settings.seed} · {self.tokens} tokens · T {self.settings.temperature:g}"
                                  f" · words {words}")

    def _say(self, text: str, error: bool = False) -> None:
        self.query_one("#steer-status", Static).update(Text(one_line(text, 300), style="bold red" if error else ""))

    def _draw_settings(self) -> None:
        busy = "   ⏳ working…" if self.busy else ""
        sweep = ",".join(f"{s:g}" for s in self.sweep)
        self.query_one("#steer-settings", Static).update(Text(
            f"method {self.method}   positions {self.positions}   seeds {self.n_seeds} from {self.settings.seed}"
            f"   tokens {self.tokens}   T {self.settings.temperature:g}   sweep ×{sweep}{busy}", style="bold"))
        self._draw_stale()

    def _draw_stale(self) -> None:
        """Say so when the shown report was computed for another prompt or other settings."""
        basis = self.report_basis if self.view == "side" else self.sweep_basis
        note = basis.stale_note(self._basis()) if basis is not None else ""
        line = self.query_one("#steer-stale", Static)
        line.display = bool(note)
        line.update(Text(one_line(f"{note} · g / w regenerates", 300), style="bold yellow"))

    def _draw_features(self) -> None:
        from spectrascope.core.analysis.steering import format_strength

        table = self.query_one("#steer-feature-table", FastTable)
        units = getattr(self.report, "units", {}) or {}
        cells, keys = [], []
        for f in self.features:
            u = units.get((f.role, f.id))
            note = f"1 = act {u.typical_act:.2f} ({u.basis})" if u is not None else ""
            cells.append([(f.role, CONFIG_COLORS.get(f.role, "")), (str(f.id), ""),
                          (format_strength(f.strength), "bold"), (note, "grey50")])
            keys.append(f"{f.role}:{f.id}")
        table.set_rows(cells, keys)
        # Every row shown (header + rows, up to 8; more scroll), so "N features" matches what is seen.
        table.styles.height = 1 + max(1, min(len(cells), FEATURE_ROWS_SHOWN))
        self._draw_stale()

    # ---- export (ctrl+e) ----------------------------------------------------------------------------
    def export(self, folder) -> list:
        """The shown report (side by side, or the sweep): configurations, strengths, every generated
        text and its metrics as JSON (SteeringReport.to_dict, as `spectrascope steer --json`), the texts as CSV."""
        report = self.report if self.view == "side" else self.sweep_report
        if report is None:
            return []
        from spectrascope.tui.export import export_files, new_stem, steering_rows

        doc = report.to_dict()
        return export_files(new_stem(folder, f"steering-{self.view}", report.prompt), doc, steering_rows(doc))

    # ---- session file (app conventions) ------------------------------------------------------------
    def get_state(self) -> dict:
        return {"features": [asdict(f) for f in self.features], "method": self.method, "positions": self.positions,
                "unit": self.unit, "n_seeds": self.n_seeds, "tokens": self.tokens, "sweep": list(self.sweep),
                "words": self.words, "settings": self.settings.to_dict()}

    def set_state(self, state: dict) -> None:
        """Restore what get_state saved; a missing key keeps the default, a bad one raises before anything changes."""
        from spectrascope.core.analysis.steering import METHODS, POSITIONS, UNITS, SteerFeature, SteeringError, check_strength

        features = [SteerFeature(str(f["role"]), int(f["id"]), float(f.get("strength", 1.0)))
                    for f in state.get("features", [])]
        sweep = tuple(float(s) for s in state.get("sweep", self.sweep))
        words = state.get("words")
        n_seeds, tokens = int(state.get("n_seeds", self.n_seeds)), int(state.get("tokens", self.tokens))
        chosen = {"method": (state.get("method", self.method), METHODS),
                  "positions": (state.get("positions", self.positions), POSITIONS),
                  "unit": (state.get("unit", self.unit), UNITS)}
        for name, (value, allowed) in chosen.items():
            if value not in allowed:
                raise SteeringError(f"{name} {value!r} is not one of {', '.join(allowed)}")
        for f in features:
            check_strength(f.strength, f"Strength of {f.role}:{f.id}:")
        for x in sweep:
            check_strength(x, "Sweep multiplier")
        if not 1 <= n_seeds <= 20 or tokens < 1:
            raise SteeringError("n_seeds must be 1..20 and tokens at least 1")
        self.settings = SamplingSettings.from_dict(state.get("settings", self.settings.to_dict()))
        self.method, self.positions, self.unit = (value for value, _ in chosen.values())
        self.n_seeds, self.tokens, self.sweep = n_seeds, tokens, sweep
        self.words = None if words is None else [str(w) for w in words]  # None: from the concept feature's label
        self.query_one("#steer-words", Input).value = ", ".join(self.words or [])
        self.query_one("#steer-features", Input).value = " ".join(f.label() for f in features)
        self.set_features(features)
        self._draw_settings()

    # ---- choosing features ----------------------------------------------------------------------
    @on(Input.Submitted, "#steer-features")
    def _features_submitted(self, event: Input.Submitted) -> None:
        from spectrascope.core.analysis.steering import SteeringError, parse_features, validate_features

        try:
            features = parse_features(event.value)
            if self.session is not None:
                validate_features(self.session, features)
        except SteeringError as exc:
            self._say(str(exc), error=True)
            return
        self.set_features(features)
        self.query_one("#steer-feature-table", FastTable).focus()

    @on(Input.Submitted, "#steer-words")
    def _words_submitted(self, event: Input.Submitted) -> None:
        self.words = [w.strip() for w in event.value.split(",") if w.strip()]
        self._say(f"{len(self.words)} concept words: a run counts when its text contains any of them "
                  "(case-insensitive, whole words).")
        self._draw_stale()
        self.query_one("#steer-feature-table", FastTable).focus()

    def set_features(self, features: list[Any]) -> None:
        self.features = list(dict.fromkeys(features))  # a feature typed twice is one row
        self.report = self.sweep_report = self.report_basis = self.sweep_basis = None
        self._draw_features()
        more = f" ({FEATURE_ROWS_SHOWN} shown: ↑/↓ scrolls)" if len(self.features) > FEATURE_ROWS_SHOWN else ""
        self._say(f"{len(self.features)} features{more} · g generate · w sweep · +/- strength of the selected row")

    def action_from_pairing(self) -> None:
        from spectrascope.core.analysis.steering import SteerFeature

        if not self.pairing_selection:
            self._say("The Pairing pane has no features selected: run it (F4, r) or type features.", error=True)
            return
        picked = [SteerFeature(role, feature) for role, feature in self.pairing_selection]
        self.query_one("#steer-features", Input).value = " ".join(f.label() for f in picked)
        self.set_features(picked)

    def action_strength(self, direction: int) -> None:
        table = self.query_one("#steer-feature-table", FastTable)
        if not self.features:
            return
        from spectrascope.core.analysis.steering import STRENGTH_MAX

        i = min(table.cursor, len(self.features) - 1)
        f = self.features[i]
        strength = round(f.strength + direction * STRENGTH_STEP, 3)
        if abs(strength) > STRENGTH_MAX:  # the documented range (core/steering.py)
            self._say(f"Strength stays within ±{STRENGTH_MAX:g}.", error=True)
            return
        self.features[i] = replace(f, strength=strength)
        self.query_one("#steer-features", Input).value = " ".join(x.label() for x in self.features)
        self._draw_features()

    def action_toggle_method(self) -> None:
        self.method = "clamp" if self.method == "add" else "add"
        self._draw_settings()

    def action_toggle_positions(self) -> None:
        self.positions = "generated" if self.positions == "all" else "all"
        self._draw_settings()

    def action_seeds(self, delta: int) -> None:
        self.n_seeds = max(1, min(20, self.n_seeds + delta))
        self._draw_settings()

    def action_reseed(self) -> None:
        self.settings = replace(self.settings, seed=self.settings.seed + self.n_seeds)
        self._draw_settings()

    def action_toggle_view(self) -> None:
        self.view = "sweep" if self.view == "side" else "side"
        self.query_one("#steer-columns").display = self.view == "side"
        self.query_one("#steer-plots").display = self.view == "sweep"
        self._draw_plots()
        self._draw_stale()

    # ---- model work -------------------------------------------------------------------------------
    def _start(self, kind: str) -> None:
        if self.session is None:
            self._say("Waiting for the model to load.")
            return
        if not self.features:
            self._say("No features yet: type e.g. coarse:123:4 fine:77:2 and press enter, or press f.", error=True)
            return
        if not self.prompt:
            self._say("Type a prompt first.", error=True)
            return
        if self._cancel is not None:
            self._cancel.set()
        self._run_id += 1
        self._cancel = threading.Event()
        self.busy = True
        self._draw_settings()
        seeds = [self.settings.seed + i for i in range(self.n_seeds)]
        strengths = list(self.sweep) if kind == "sweep" else None
        self._say(f"{'sweeping' if kind == 'sweep' else 'generating'} {len(seeds)} seeds × {self.tokens} tokens…")
        options = dict(settings=self.settings, unit=self.unit, seeds=seeds, tokens=self.tokens, strengths=strengths,
                       method=self.method, positions=self.positions, words=self.words or None)
        self._experiment(self._run_id, kind, self.session, self._basis(), list(self.features), options,
                         self._cancel)

    def action_generate(self) -> None:
        self._start("compare")

    def action_sweep(self) -> None:
        self._start("sweep")

    def action_cancel(self) -> None:
        if self._cancel is not None and self.busy:
            self._cancel.set()
            self._say("Cancelling…")

    @work(thread=True, exclusive=True, exit_on_error=False, group="steering")
    def _experiment(self, run_id: int, kind: str, session: SessionAPI, basis: Basis, features, options,
                    cancel: threading.Event) -> None:
        from spectrascope.core.analysis.steering import run_experiment

        def progress(text: str, fraction: float | None) -> None:
            self.post_message(SteeringProgress(run_id, text, fraction))

        try:
            report = run_experiment(session, basis.prompt, features, cancel=cancel, progress=progress, **options)
        except Exception as exc:  # noqa: BLE001 - Cancelled included: shown inline
            self.post_message(SteeringDone(run_id, kind, basis, error=exc))
            return
        self.post_message(SteeringDone(run_id, kind, basis, report=report))

    def on_steering_progress(self, message: SteeringProgress) -> None:
        if message.run_id == self._run_id and self.busy:
            pct = "" if message.fraction is None else f" ({message.fraction:.0%})"
            self._say(f"working: {message.text}{pct} · esc cancels")

    def on_steering_done(self, message: SteeringDone) -> None:
        if message.run_id != self._run_id:
            return  # a newer run replaced this one
        self.busy = False
        self._draw_settings()
        if message.error is not None:
            from spectrascope.core.engine.session import Cancelled

            if isinstance(message.error, Cancelled):
                self._say("Cancelled; the model is unsteered again.")
            else:
                self._say(describe(message.error), error=True)
            return
        report = message.report
        note = ""
        if message.kind == "sweep":
            best = [r for r in report.targeting(1.5) if r["strength"] is not None]
            note = " · within 1.5× baseline ppl: " + (", ".join(
                f"{r['config']} act {r['concept_act']:.2f} (×{r['strength']:g})" for r in best) or "none")
            self.sweep_report, self.sweep_basis = report, message.basis
            if self.view != "sweep":
                self.action_toggle_view()
            else:
                self._draw_plots()
        else:
            self.report, self.report_basis = report, message.basis
            if self.view != "side":
                self.action_toggle_view()
            self._draw_columns()
        self._draw_features()
        self._say(f"done in {report.seconds:.1f} s · concept feature "
                  f"{report.concept[0]}:{report.concept[1]} (marks: where it fired, unsteered readback) · same seeds "
                  f"{list(report.seeds)} everywhere{note}")

    # ---- rendering ------------------------------------------------------------------------------
    def _draw_columns(self) -> None:
        report = self.report
        for name in CONFIGS:
            widget = self.query_one(f"#steer-col-{name.replace('+', '-')}", RunColumn)
            if report is None or name not in report.configs:
                widget.display = False
                continue
            widget.display = True
            cell = report.cell(name)
            head = Text()
            head.append(name, style=f"bold {CONFIG_COLORS.get(name, '')}")
            specials = sum(run.special_count for run in cell.runs)
            if specials:  # the model sampled control tokens (e.g. <start_of_image>): say so up front
                head.append(f" · {specials} special token{'s' * (specials != 1)}", style="reverse dim")
            labels = " ".join(f.label() for f in cell.features) if cell.features else "no steering"
            head.append("\n" + labels, style="grey50")  # one line in every column keeps the seeds aligned
            top = max((v for run in cell.runs for v in run.concept_trace), default=0.0)
            runs = []
            for run in cell.runs:
                units = [Unit(f"seed {run.seed}: ", "grey50", True), *run_units(run, top)]
                if run.concept_words:
                    units.append(Unit(" [" + ", ".join(run.concept_words) + "]", "green", True))
                runs.append(units)
            # Effect and cost above the texts: a short terminal crops the texts, never the numbers.
            act = "–" if cell.concept_act is None else f"{cell.concept_act:.3f}"
            share, ppl = f"{cell.concept_share:.0%}", f"{cell.perplexity:.1f}"
            numbers = [(f"effect: concept act {act}", f"effect act {act}", "bold green"),
                       (f"        concept words {share} of runs", f"words {share} of runs", "bold green"),
                       (f"cost:   perplexity {ppl}", f"cost ppl {ppl}", "bold red")]
            legend = None
            if report.concept is not None:  # every column has the line, so the seeds stay aligned
                legend = lambda narrow, top=top: mark_legend(report.concept, top, narrow)  # noqa: E731
            widget.show(head, numbers, runs, legend)

    def _draw_plots(self) -> None:
        effect = self.query_one("#steer-plot-effect", Static)
        cost = self.query_one("#steer-plot-cost", Static)
        if self.sweep_report is None:
            effect.update(Text("No sweep yet: press w.", style="grey50"))
            cost.update(Text(""))
            return
        width = max(30, (self.size.width or 100) // 2 - 6)
        height = max(8, (self.size.height or 30) - 12)
        for widget, metric in ((effect, "concept_act"), (cost, "perplexity")):
            chart = plot_curves(self.sweep_report, metric, width, height)
            widget.update(Text.from_ansi(chart, no_wrap=True, overflow="crop"))
