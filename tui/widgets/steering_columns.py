"""How the Steering pane draws a steering report: one column per configuration (effect and cost above
the seeds' texts, tokens marked where the concept feature fired), the sweep's effect and cost charts,
and the lines that say what a report was computed for."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import Static

from spectrascope.core.text import one_line, visible
from spectrascope.tui.plots import blank_figure
from spectrascope.tui.widgets.fast_table import Column
from spectrascope.tui.token_wrap import Unit, marker, wrapped_text

CONFIGS = ("baseline", "coarse", "fine", "coarse+fine")
CONFIG_COLORS = {"baseline": "white", "coarse": "cyan", "fine": "magenta", "coarse+fine": "yellow", "all": "green"}
# Each line's own glyph, so the legend reads without colour (a projector, a monochrome terminal).
CONFIG_MARKERS = {"baseline": "·", "coarse": "o", "fine": "x", "coarse+fine": "+", "all": "*"}

# The Steering pane's layout (tui/panes/steering.py).
PANE_CSS = """
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


FEATURE_COLUMNS = [Column("role", 7), Column("id", 7, True), Column("strength", 9, True), Column("", 40)]


def settings_line(spec: Any, busy: bool) -> Text:
    """The settings a run takes (a core.views.steering.SteeringSpec), as the keys change them."""
    sweep = ",".join(f"{s:g}" for s in spec.sweep or ())
    return Text(f"method {spec.method}   positions {spec.positions}   seeds {spec.n_seeds} from {spec.settings.seed}"
                f"   tokens {spec.tokens}   T {spec.settings.temperature:g}   sweep ×{sweep}"
                + ("   ⏳ working…" if busy else ""), style="bold")


def show_stale(line: Static, report: Any, asked: Any) -> None:
    """Show `line` when `report` (or None) was computed for another prompt or settings than `asked`; else hide it."""
    from spectrascope.tui.stale import stale_note

    note = stale_note(report.asked, asked, spec_text) if report is not None else ""
    line.display = bool(note)
    line.update(Text(one_line(f"{note} · g / w regenerates", 300), style="bold yellow"))


def spec_text(spec: Any) -> str:
    """Everything a report depends on but the prompt (a core.views.steering.SteeringSpec), as the user reads it."""
    features = " ".join(f.label() for f in spec.features)
    words = "from the concept feature" if not spec.words else ", ".join(spec.words)
    return (f"{features} · {spec.method} · positions {spec.positions} · seeds {spec.n_seeds} from "
            f"{spec.settings.seed} · {spec.tokens} tokens · T {spec.settings.temperature:g} · words {words}")


def words_note(words: list[str], source: str) -> str:
    """The status line for concept words taken from the concept feature: which, from where, what else counts."""
    from spectrascope.core.analysis.word_forms import forms

    more = [f for w in words for f in forms(w)[1:]]
    also = f" (also counted: {', '.join(more[:6])}{', …' if len(more) > 6 else ''})" if more else ""
    return (f"concept words from {source}: {', '.join(words)}{also} · edit the words field to change them; "
            "case and inflection are ignored")


def draw_columns(columns: dict[str, Any], report: Any) -> None:
    """Each configuration's RunColumn (`columns`: name -> widget) shows its part of `report`; the others hide."""
    for name, widget in columns.items():
        widget.display = report is not None and name in report.configs
        if widget.display:
            widget.show(report, name)


def draw_plots(effect: Static, cost: Static, report: Any, width: int, height: int) -> None:
    """The sweep's effect and cost charts in two Statics sized `width` x `height`; a hint before any sweep."""
    if report is None:
        effect.update(Text("No sweep yet: press w.", style="grey50"))
        cost.update(Text(""))
        return
    for widget, metric in ((effect, "concept_act"), (cost, "perplexity")):
        chart = plot_curves(report, metric, width, height)
        widget.update(Text.from_ansi(chart, no_wrap=True, overflow="crop"))


def targeting_note(report: Any) -> str:
    """The sweep's answer in one line: each configuration's strongest concept activation within 1.5x the
    baseline's perplexity."""
    best = [r for r in report.targeting(1.5) if r["strength"] is not None]
    return " · within 1.5× baseline ppl: " + (", ".join(
        f"{r['config']} act {r['concept_act']:.2f} (×{r['strength']:g})" for r in best) or "none")


def feature_cells(features: list[Any], units: dict) -> list[list[tuple[str, str]]]:
    """The feature table's rows: role, id, strength and (once a report measured it) what strength 1 is."""
    from spectrascope.core.analysis.steering import format_strength

    cells = []
    for f in features:
        u = units.get((f.role, f.id))
        note = f"1 = act {u.typical_act:.2f} ({u.basis})" if u is not None else ""
        cells.append([(f.role, CONFIG_COLORS.get(f.role, "")), (str(f.id), ""),
                      (format_strength(f.strength), "bold"), (note, "grey50")])
    return cells


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

    def show(self, report: Any, name: str) -> None:
        """Configuration `name` of `report` (a steering report): its header, effect and cost, then each seed's text."""
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
            legend = lambda narrow: mark_legend(report.concept, top, narrow)  # noqa: E731
        # numbers: (line, short line for a narrow column, style); legend(narrow): the marks' key, or None
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
