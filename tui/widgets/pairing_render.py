"""The Pairing view drawn as text: the class colours, the header and the verdict, the candidates' and
the pairs' table rows, the decomposition tree, the cosine-by-correlation scatter, the
anchors-by-fine-features heat strip and the verdict's threshold grid."""

from __future__ import annotations

from typing import Any, Callable, Sequence

from rich.text import Text
from rich.tree import Tree

from spectrascope.core.text import one_line
from spectrascope.tui.widgets.fast_table import Column

Label = Callable[[str, int], str]  # (role, feature) -> the label shown
Cells = list[list[tuple[str, str]]]  # FastTable rows: (text, style) per cell

CANDIDATES_TITLE = Text("coarse candidates (★ anchor) · fires c/n: % of prompts with act > 0 · enter show"
                        " · space ± anchor", style="bold")
CANDIDATE_COLUMNS = [
    Column("", 1), Column("feature", 7, True), Column("μ concept", 9, True), Column("μ neutral", 9, True),
    Column("fires c/n", 9, True), Column("select.", 7, True), Column("sub", 4, True), Column("label", 40),
]
PAIR_COLUMNS = [
    Column("fine", 7, True), Column("cosine", 7, True), Column("corr", 7, True), Column("class", 15),
    Column("select.", 7, True), Column("label", 40),
]

# The colour of each class a table lists (plotext and rich read these names alike).
CLASS_COLOR = {"sub-feature": "green", "partial overlap": "yellow", "co-occurring": "cyan",
               "near-duplicate": "magenta", "not nested": "blue"}
CLASS_STYLE = {**CLASS_COLOR, "sub-feature": "bold green"}  # the pane's rows: sub-features stand out
UNRELATED_COLOR = "gray"  # the scatter's cloud of unrelated fine features (a plotext name)


def header_text(concept: str, neutral: str, settings: Any, contrast_settings: Any, busy: bool) -> Text:
    """The prompt sets and the settings the next run or re-pairing uses."""
    s = settings
    return Text(f"concept {one_line(concept, 40)} · neutral {one_line(neutral, 40)} · "
                f"anchors {s.n_anchors} · cos ≥ {s.cos_threshold:.2f} · corr ≥ {s.corr_threshold:.2f} · "
                f"per-prompt {contrast_settings.aggregate} · GO needs {s.min_subfeatures} sub-features"
                f"{'   ⏳ running…' if busy else ''}", style="bold")


def run_summary(contrast: Any) -> str:
    """How many prompts ran, and whether they came from the cache (its file size where known)."""
    how = "from cache" if contrast.cached else f"in {contrast.info.get('seconds', 0):.1f} s"
    size = f" · {contrast.cache_text()}" if contrast.cache_bytes is not None else ""
    return f"{contrast.n_concept} concept / {contrast.n_neutral} neutral prompts {how}{size}"


def verdict_text(result: Any) -> Text:
    """GO/NO-GO (or NO VERDICT, and why), then its null model, its anchor's concept check and the sets' confounds."""
    v = result.verdict
    style = "bold black on yellow" if v.withheld else "bold black on green" if v.go else "bold white on red"
    text = Text(one_line(v.headline, 400), style=style)
    weigh = " · ".join(t for t in (v.permutation.short if v.permutation else v.permutation_note,
                                   v.grid.short if v.grid else "") if t)
    if weigh:  # how often shuffled labels say GO, and whether the thresholds decide it
        p = v.permutation.p_value if v.permutation else 1.0
        text.append("\n" + one_line(weigh, 300), style="bold" if p <= 0.05 else "yellow")
    if v.null is not None:  # a GO most coarse features would also get says little
        text.append("\n" + one_line(v.null.text, 300), style="yellow" if v.null.base_rate > 0.05 else "grey50")
    check = result.checks.anchors.get(v.anchor) if result.checks is not None else None
    if check is not None and not check.failed:  # is the anchor the concept? (a failure is in the headline)
        text.append("\n" + one_line(check.text, 300), style="grey50")
    for line in result.confounds:  # the sets differ in form, not only in topic: selectivity may be about that
        text.append("\n⚠ " + one_line(line, 300), style="yellow")
    return text


def candidate_rows(result: Any, shown: int | None, label: Label, n: int) -> tuple[Cells, list[str]]:
    """The `n` most selective coarse features and every anchor (★; ▶ the shown one) as table rows."""
    stats = result.contrast.stats["coarse"]
    ids = stats.ranked(n, "out")  # always-on latents left out, as the report does
    ids += [a for a in result.anchors if a not in ids]
    cells = []
    for f in ids:
        is_anchor = f in result.anchors
        style = "bold" if f == shown else ("" if is_anchor else "grey62")
        sub = str(len(result.pairings[f].sub_features())) if is_anchor else ""
        text = stats.cells(f)  # the CLI's and the report's text for the same numbers
        cells.append([
            ("▶" if f == shown else ("★" if is_anchor else " "), "yellow"), (str(f), style),
            (text["mean_concept"], style), (text["mean_neutral"], style), (text["rates"], style),
            (text["selectivity"], style), (sub, "bold green" if sub and int(sub) else style),
            (("⚑ always on · " if stats.always_on[f] else "") + label("coarse", f), style),  # a hand-picked one
        ])
    return cells, [str(f) for f in ids]


def pair_rows(result: Any, anchor: int | None, label: Label) -> tuple[Text | str, Cells, list[str]]:
    """The title (its class counts) and table rows of the anchor's fine features that pass a threshold,
    sub-features first; none for no anchor."""
    if anchor not in result.pairings:
        return "", [], []
    pairing = result.pairings[anchor]
    counts = " · ".join(f"{k} {n}" for k, n in pairing.counts().items())
    rows = pairing.pairs(result.settings.max_rows)
    fine_sel = result.contrast.stats["fine"].selectivity
    cells = [[(str(q.fine), "bold"), (f"{q.cosine:.3f}", ""), (f"{q.correlation:.3f}", ""),
              (q.cls, CLASS_STYLE[q.cls]), (f"{fine_sel[q.fine]:.3f}", "grey62"),
              (label("fine", q.fine), "")] for q in rows]
    ci, check = result.checks.cells(anchor) if result.checks is not None else ("", "")
    extra = f" · selectivity {ci} · on concept words {check}" if result.checks is not None else ""
    return Text(f"coarse #{anchor} × fine: {counts}{extra}", style="bold"), cells, [str(q.fine) for q in rows]


def anchor_plots(result: Any, anchor: int | None, label: Label, width: int, height: int) -> tuple[Any, Any, Any]:
    """The anchor's decomposition tree, its scatter (`width` x `height` cells where that is room
    enough) and the heat strip of all anchors; blanks for no anchor."""
    pairing = result.pairings.get(anchor)
    if pairing is None:
        return "", "", ""
    tree = decomposition_tree(anchor, label("coarse", anchor), pairing, lambda f: label("fine", f),
                              result.settings.max_rows)
    plot = scatter(pairing, result.settings, width if width >= 20 else 60, height if height >= 6 else 12)
    heat = matched_heat(result)
    if result.verdict.grid is not None:
        heat = heat + Text("\n") + grid_heat(result.verdict.grid, result.settings)
    return tree, plot, heat


def decomposition_tree(anchor: int, label: str, pairing: Any, fine_label: Callable[[int], str],
                       limit: int = 12) -> Tree:
    """The anchor and its fine sub-features (then partial overlaps) as a tree: the bar is the
    activation correlation (the link's strength), its colour the decoder cosine."""
    tree = Tree(Text(f"coarse #{anchor} · {label}", style="bold"))
    rows = [q for q in pairing.pairs(limit) if q.cls in ("sub-feature", "partial overlap")]
    if not rows:
        tree.add(Text("no sub-feature or partial overlap at these thresholds", style="grey50"))
    for q in rows:
        shade = max(0.0, min(1.0, q.cosine))
        bar = "━" * max(1, round(10 * max(0.0, q.correlation)))
        node = Text(f"{bar:<10} ", style=f"rgb({int(80 + 175 * (1 - shade))},{int(120 + 135 * shade)},80)")
        node.append(f"#{q.fine} corr {q.correlation:.2f} cos {q.cosine:.2f} ", style=CLASS_STYLE[q.cls])
        node.append(one_line(fine_label(q.fine), 40), style="grey70")
        tree.add(node)
    return tree


def scatter(pairing: Any, settings: Any, width: int, height: int) -> Text:
    """Every fine feature at (decoder cosine, activation correlation) with the anchor, by class, and
    the two thresholds as lines."""
    import numpy as np

    from spectrascope.core.analysis.pairing import CLASS_NAMES
    from spectrascope.tui.plots import blank_figure

    with blank_figure(width, height) as plt:
        rng = np.random.default_rng(0)
        for code, name in CLASS_NAMES.items():
            ids = np.flatnonzero(pairing.classes == code)
            if len(ids) == 0:
                continue
            if len(ids) > 2000:  # a 262K-wide fine SAE: a sample of the unrelated cloud is enough
                ids = rng.choice(ids, 2000, replace=False)
            plt.scatter(pairing.cosine[ids].tolist(), pairing.correlation[ids].tolist(),
                        color=CLASS_COLOR.get(name, UNRELATED_COLOR), label=name, marker="dot")
        plt.vline(settings.cos_threshold, "red")
        plt.hline(settings.corr_threshold, "red")
        plt.xlabel("cosine")
        plt.ylabel("correlation")
        return Text.from_ansi(plt.build())


def heat_strip(matrix: Any, row_ids: Sequence[int], col_ids: Sequence[int]) -> Text:
    """A coarse-by-fine cosine heatmap as text: one colored cell per pair, value printed inside.

    Cells are as wide as the longest feature id plus a space (6 at least, so "-0.04" never
    touches its neighbour), and ids are never cut: Gemma Scope's 262K SAE has 6-digit ids."""
    width = max([6] + [len(str(f)) + 1 for f in col_ids])
    label = max([7] + [len(str(a)) + 2 for a in row_ids])
    text = Text()
    text.append(" " * label)
    for f in col_ids:
        text.append(f"{f:>{width}}", style="bold")
    text.append("\n")
    for r, a in enumerate(row_ids):
        text.append(f"#{a}".ljust(label), style="bold")
        for c in range(len(col_ids)):
            v = float(matrix[r][c])
            level = max(0.0, min(1.0, abs(v)))
            shade = int(40 + 215 * level)
            bg = f"rgb({shade},40,40)" if v >= 0 else f"rgb(40,40,{shade})"
            text.append(f"{v:>{width}.2f}", style=f"white on {bg}")
        text.append("\n")
    return text


def matched_heat(result: Any) -> Text:
    """The heat strip of the anchors and the fine features matched to them, or why there is none."""
    fine = result.matched_fine(limit=12)
    if not fine:
        return Text("no sub-features at these thresholds: nothing to map", style="grey50")
    return Text("cosine: anchors × matched fine features\n", style="bold") + heat_strip(result.heatmap(fine),
                                                                                         result.anchors, fine)


def grid_heat(grid: Any, settings: Any) -> Text:
    """The verdict's threshold grid: the best anchor's sub-feature count at each cosine (rows) x
    correlation (columns) threshold, coloured by how many of the N values say GO there; the current
    setting in brackets."""
    shades = ["white on rgb(110,30,30)", "black on rgb(200,170,60)", "black on rgb(120,190,90)",
              "black on rgb(60,200,60)"]
    text = Text(f"GO over thresholds: {grid.go_share:.0%} of {grid.go().size} (cell: sub-features; "
                f"GO for N <= it, N {grid.needed[0]}-{grid.needed[-1]})\n", style="bold")
    text.append("cos\\corr" + "".join(f"{r:>6.2f}" for r in grid.corr) + "\n", style="bold")
    for i, c in enumerate(grid.cos):
        text.append(f"{c:<9.2f}", style="bold")
        for j, r in enumerate(grid.corr):
            n = grid.best[i][j]
            here = abs(c - settings.cos_threshold) < 1e-9 and abs(r - settings.corr_threshold) < 1e-9
            cell = f"[{n}]" if here else str(n)
            text.append(f"{cell:>5} ", style=shades[sum(n >= k for k in grid.needed) * 3 // len(grid.needed)])
        text.append("\n")
    return text
