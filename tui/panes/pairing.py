"""Pairing pane: concept vs neutral prompt sets -> selective coarse anchors -> their fine sub-features.

`r` runs both prompt sets through the model and both SAEs in a thread worker
(progress bar, `x` cancels between batches; a finished run is cached on disk).
Everything after that is cheap and re-renders from the cached `PairingResult`:
thresholds (`c`/`C` cosine, `o`/`O` correlation) only reclassify; choosing an
anchor (`enter` on a candidate) redraws; toggling a candidate in or out of the
anchor set (`space`) or changing their number (`+`/`-`) re-pairs in a worker
(`core.pairing.repair`: no model forward). Rows newly listed after a threshold
change show "…" until a worker has labelled them (one batch per SAE). A session file keeps
the shown result's anchors; restoring it runs again with them (from the contrast cache) as
soon as the model is there, so the result is back without `r`.

The shown anchor and its sub-features go up to the app as `SelectionChanged`
(the Steering pane gets them from there): (("coarse", anchor), ("fine", id), ...).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.text import Text
from rich.tree import Tree
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import ProgressBar, Static

from spectrascope.core.text import one_line
from spectrascope.tui.plots import blank_figure
from spectrascope.tui.errors import describe
from spectrascope.tui.panes.base import Pane
from spectrascope.tui.messages import RunProgress
from spectrascope.tui.widgets.fast_table import Column, FastTable

if TYPE_CHECKING:
    from spectrascope.core.engine.interface import SessionAPI

CLASS_STYLE = {"sub-feature": "bold green", "partial overlap": "yellow", "co-occurring": "cyan", "unrelated": "grey50"}
CLASS_COLOR = {"sub-feature": "green", "partial overlap": "yellow", "co-occurring": "cyan", "unrelated": "gray"}
N_CANDIDATES = 20


class PairingProgress(RunProgress):
    pass


@dataclass
class PairingLabels(Message):
    """Labels of rows that had none (role -> feature -> label), or why they could not be made."""

    labels: dict[str, dict[int, str]]
    error: BaseException | None = None


@dataclass
class PairingTokens(Message):
    """One feature's activation on every token of the prompts where it fires most and least."""

    role: str
    feature: int
    view: Any = None  # list[core.token_view.PromptTokens]
    error: BaseException | None = None


@dataclass
class PairingDone(Message):
    run_id: int
    result: Any = None  # core.pairing.PairingResult
    error: BaseException | None = None
    cancelled: bool = False


def decomposition_tree(anchor: int, label: str, pairing, fine_label, limit: int = 12) -> Tree:
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


def heat_strip(matrix, row_ids, col_ids) -> Text:
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


class PairingPane(Pane):
    DEFAULT_CLASSES = "pane"
    focus_target = "#pairing-anchors"
    pane_title = "Pairing"
    BINDINGS = [
        Binding("r", "run", "Run"),
        Binding("s", "next_set", "Prompt set"),
        Binding("v", "token_view", "Tokens"),
        Binding("x", "cancel", "Cancel"),
        Binding("space", "toggle_anchor", "± anchor"),
        Binding("plus,equals_sign", "anchors(1)", "Anchors+"),
        Binding("minus", "anchors(-1)", "Anchors−"),
        Binding("c", "cos(-0.05)", "cos−"),
        Binding("C", "cos(0.05)", "cos+"),
        Binding("o", "corr(-0.05)", "corr−"),
        Binding("O", "corr(0.05)", "corr+"),
    ]
    session: reactive[SessionAPI | None] = reactive(None, init=False, repaint=False)  # from the app

    class SelectionChanged(Pane.Shared):
        """The shown anchor and its sub-features: (("coarse", a), ("fine", f), ...); () before a run."""

        def __init__(self, features: tuple[tuple[str, int], ...]):
            super().__init__("pairing_selection", features)

        @property
        def features(self) -> tuple[tuple[str, int], ...]:
            return self.value

    class ShowScreen(Pane.ShowScreen):
        """A screen for the app to push (panes never reach into the app)."""

    def __init__(self, concept: str | Path | None = None, neutral: str | Path | None = None, **kwargs):
        super().__init__(**kwargs)
        from spectrascope.core.analysis.contrast import ContrastSettings, default_sets
        from spectrascope.core.analysis.pairing import PairingSettings

        default_c, default_n = default_sets()
        self.concept_path = Path(concept) if concept else default_c
        self.neutral_path = Path(neutral) if neutral else default_n
        self.settings = PairingSettings()
        self.contrast_settings = ContrastSettings()
        self.result: Any = None  # core.pairing.PairingResult
        self.anchor: int | None = None  # the anchor whose pairing is shown
        self.busy = False
        self.use_cache = True
        self._run_id = 0
        self._cancel: threading.Event | None = None
        self._announced: tuple[tuple[str, int], ...] = ()  # the selection the app last heard of
        self.labelling = False  # a label worker is running
        self._label_failed = False  # no retry until the next result
        self._restore_anchors: list[int] | None = None  # a restored session's anchors, run once the model is there

    def compose(self) -> ComposeResult:
        yield Static("", id="pairing-header")
        with Horizontal(id="pairing-progress-row"):
            yield ProgressBar(total=1.0, show_eta=False, id="pairing-progress")
            yield Static("", id="pairing-status")
        yield Static("", id="pairing-verdict")
        with Horizontal(id="pairing-body"):
            with Vertical(id="pairing-left"):
                yield Static(Text("coarse candidates (★ anchor) · fires c/n: % of prompts with act > 0 · enter show"
                                  " · space ± anchor", style="bold"),
                             classes="pairing-title")
                yield FastTable(id="pairing-anchors")
                yield Static("", id="pairing-pairs-title", classes="pairing-title")
                yield FastTable(id="pairing-pairs")
            with Vertical(id="pairing-right"):
                yield Static("", id="pairing-tree")
                yield Static("", id="pairing-scatter")
                yield Static("", id="pairing-heat")

    DEFAULT_CSS = """
    PairingPane { height: 1fr; }
    #pairing-progress-row { height: 1; }
    #pairing-progress { width: 30; }
    #pairing-status { width: 1fr; }
    #pairing-verdict { height: auto; }
    #pairing-body { height: 1fr; }
    #pairing-left { width: 1fr; min-width: 60; }
    #pairing-right { width: 1fr; }
    #pairing-anchors { height: 12; }
    #pairing-pairs { height: 1fr; }
    .pairing-title { height: 1; }
    #pairing-tree { height: 1fr; }
    #pairing-scatter { height: 1fr; }
    #pairing-heat { height: auto; max-height: 8; }
    """

    def on_mount(self) -> None:
        self.query_one("#pairing-progress", ProgressBar).display = False
        self.query_one("#pairing-anchors", FastTable).set_columns([
            Column("", 1), Column("feature", 7, True), Column("μ concept", 9, True), Column("μ neutral", 9, True),
            Column("fires c/n", 9, True), Column("select.", 7, True), Column("sub", 4, True), Column("label", 40),
        ])
        self.query_one("#pairing-pairs", FastTable).set_columns([
            Column("fine", 7, True), Column("cosine", 7, True), Column("corr", 7, True), Column("class", 15),
            Column("select.", 7, True), Column("label", 40),
        ])
        self._draw_header()
        self._say("Press r to run the concept and neutral sets through the model and both SAEs.")

    # ---- public --------------------------------------------------------------------------------
    def selected_features(self) -> list[tuple[str, int]]:
        """The shown anchor and its sub-features: [("coarse", a), ("fine", f), ...] (empty before a run)."""
        if self.result is None:
            return []
        return self.result.selected_features(self.anchor)

    # ---- session file and export (app conventions) ------------------------------------------------
    def get_state(self) -> dict:
        return {"concept": str(self.concept_path), "neutral": str(self.neutral_path),
                "settings": self.settings.to_dict(), "contrast": self.contrast_settings.to_dict(),
                "anchor": self.anchor, "anchors": list(self.result.anchors) if self.result is not None else None}

    def set_state(self, state: dict) -> None:
        from spectrascope.core.analysis.contrast import ContrastSettings
        from spectrascope.core.analysis.pairing import PairingSettings

        self.concept_path = Path(state.get("concept", self.concept_path))
        self.neutral_path = Path(state.get("neutral", self.neutral_path))
        self.settings = PairingSettings.from_dict(state.get("settings", {}))
        self.contrast_settings = ContrastSettings.from_dict(state.get("contrast", {}))
        anchor = state.get("anchor")
        self.anchor = int(anchor) if anchor is not None else None
        anchors = state.get("anchors")  # None: no result was shown (or an older file)
        self._restore_anchors = [int(a) for a in anchors] if anchors else None
        self._draw_header()
        self.watch_session()

    def watch_session(self) -> None:
        """Show a restored session's result again: the same run, from the contrast cache when it has it."""
        if self.session is not None and self._restore_anchors is not None and not self.busy:
            anchors, self._restore_anchors = self._restore_anchors, None
            self._start_run(anchors)

    def export(self, folder) -> list:
        """The full report (anchors, pairings, heatmap, verdict) as JSON and Markdown, its pairs as CSV (ctrl+e)."""
        if self.result is None:
            return []
        from spectrascope.core.analysis.pairing import to_dict, to_markdown
        from spectrascope.tui.export import export_files, new_stem, pairing_rows, write_new

        doc = to_dict(self.result)
        stem = new_stem(folder, "pairing", self.result.contrast.key or "run")
        return export_files(stem, doc, pairing_rows(doc)) + [write_new(stem.with_suffix(".md"), to_markdown(self.result))]

    # ---- status ------------------------------------------------------------------------------
    def _say(self, text: str, error: bool = False) -> None:
        self.query_one("#pairing-status", Static).update(Text(one_line(text, 300), style="bold red" if error else ""))

    def _draw_header(self) -> None:
        s, cs = self.settings, self.contrast_settings
        busy = "   ⏳ running…" if self.busy else ""
        self.query_one("#pairing-header", Static).update(Text(
            f"concept {one_line(self.concept_path.name, 40)} · neutral {one_line(self.neutral_path.name, 40)} · "
            f"anchors {s.n_anchors} · cos ≥ {s.cos_threshold:.2f} · corr ≥ {s.corr_threshold:.2f} · "
            f"per-prompt {cs.aggregate} · GO needs {s.min_subfeatures} sub-features{busy}", style="bold"))

    def action_token_view(self) -> None:
        """Which tokens the highlighted feature (a candidate, or a fine row when that table has focus)
        fires on, in the prompts where it fires most and least (a worker; then a screen)."""
        if self.result is None or self.session is None:
            self._say("Run the pairing first (r).")
            return
        table = self.query_one("#pairing-pairs", FastTable)
        role, feature = "coarse", self._candidate_under_cursor()
        if table.has_focus and table.row_count:
            role, feature = "fine", int(table.keys[table.cursor])
        if feature is None:
            return
        self._say(f"Reading {role} #{feature} token by token…")
        self._token_worker(self.session, self.result.contrast, (self.concept_path, self.neutral_path), role, feature)

    @work(thread=True, exclusive=True, exit_on_error=False, group="pairing-tokens")
    def _token_worker(self, session: SessionAPI, contrast, paths: tuple[Path, Path], role: str, feature: int) -> None:
        from spectrascope.core.analysis.contrast import load_prompts
        from spectrascope.core.analysis.token_view import token_view

        try:
            concept, neutral = (load_prompts(p) for p in paths)
            view = token_view(session, concept, neutral, contrast.per_prompt(role), contrast.is_concept, role, feature)
        except Exception as exc:  # noqa: BLE001 - said in the status line; the pane keeps running
            self.post_message(PairingTokens(role, feature, error=exc))
            return
        self.post_message(PairingTokens(role, feature, view))

    def on_pairing_tokens(self, message: PairingTokens) -> None:
        from spectrascope.tui.token_view import TokenViewScreen

        if message.error is not None:
            self._say(f"Token view failed: {describe(message.error)}", error=True)
            return
        self._say(f"{message.role} #{message.feature}: token view open (esc closes).")
        label = self._label(message.role, message.feature)
        self.post_message(self.ShowScreen(TokenViewScreen(message.role, message.feature, label, message.view)))

    def action_next_set(self) -> None:
        """The next shipped concept set with its matched neutral set (core/concept_sets.py); r runs it.
        Other sets: `--concept/--neutral` on the command line or in a saved session."""
        from spectrascope.core.analysis.concept_sets import CONCEPT_SETS

        sets = list(CONCEPT_SETS.values())
        now = next((i for i, c in enumerate(sets) if c.concept == self.concept_path), -1)
        chosen = sets[(now + 1) % len(sets)]
        self.concept_path, self.neutral_path = chosen.concept, chosen.neutral
        self._draw_header()
        self._say(f"Prompt set: {chosen.name} against its matched neutral set; r runs it (s: next set).")

    # ---- running -------------------------------------------------------------------------------
    def action_run(self) -> None:
        self._start_run(None)

    def _start_run(self, anchors: list[int] | None) -> None:
        """Run both prompt sets, then pair `anchors` (None: the top `settings.n_anchors` by selectivity)."""
        if self.session is None:
            self._say("Waiting for the model to load.")
            return
        if self.busy:
            self._say("Already running: x cancels.")
            return
        self._run_id += 1
        self._cancel = threading.Event()
        self.busy = True
        bar = self.query_one("#pairing-progress", ProgressBar)
        bar.display = True
        bar.update(total=None, progress=0)  # it pulses until the first batch reports a count
        self._draw_header()
        self._say("first batch of prompts running… x cancels")  # short: the whole line fits at 80 columns
        self._run_worker(self.session, self._run_id, self._cancel, (self.concept_path, self.neutral_path),
                         self.settings, self.contrast_settings, self.use_cache, anchors)

    @work(thread=True, exclusive=True, exit_on_error=False, group="pairing-run")
    def _run_worker(self, session: SessionAPI, run_id: int, cancel: threading.Event, paths: tuple[Path, Path],
                    settings: Any, contrast_settings: Any, use_cache: bool, anchors: list[int] | None) -> None:
        from spectrascope.core.analysis.contrast import load_prompts
        from spectrascope.core.analysis.pairing import analyse
        from spectrascope.core.engine.session import Cancelled

        def progress(text: str, fraction: float | None) -> None:
            self.post_message(PairingProgress(run_id, text, fraction))

        try:
            concept, neutral = (load_prompts(path) for path in paths)
            result = analyse(session, concept, neutral, contrast_settings, settings, cancel, progress,
                             use_cache=use_cache, anchors=anchors)
        except Cancelled:
            self.post_message(PairingDone(run_id, cancelled=True))
            return
        except Exception as exc:  # noqa: BLE001 - shown inline, the app keeps running
            self.post_message(PairingDone(run_id, error=exc))
            return
        self.post_message(PairingDone(run_id, result=result))

    def action_cancel(self) -> None:
        if self._cancel is not None and self.busy:
            self._cancel.set()
            self._say("cancelling after the current batch…")

    def on_pairing_progress(self, message: PairingProgress) -> None:
        if message.run_id != self._run_id:
            return
        if message.fraction is not None:
            self.query_one("#pairing-progress", ProgressBar).update(total=1.0, progress=message.fraction)
        self._say(message.text)

    def on_pairing_done(self, message: PairingDone) -> None:
        if message.run_id != self._run_id:
            return  # a newer run or re-pairing is on its way
        self.busy = False
        self.query_one("#pairing-progress", ProgressBar).display = False
        self._draw_header()
        if message.cancelled:
            self._say("Cancelled; the previous result (if any) is still shown.")
            return
        if message.error is not None:
            self._say(describe(message.error), error=True)
            return
        self.result = message.result
        self._label_failed = False
        if self.result.settings != self.settings:  # thresholds moved while it ran: classes only
            from spectrascope.core.analysis.pairing import reclassify

            self.result = reclassify(self.result, self.settings)
        if self.anchor not in self.result.anchors:
            self.anchor = self.result.verdict.anchor if self.result.verdict.go else (
                self.result.anchors[0] if self.result.anchors else None)
        c = self.result.contrast
        how = "from cache" if c.cached else f"in {c.info.get('seconds', 0):.1f} s"
        size = f" · {c.cache_text()}" if c.cache_bytes is not None else ""
        self._say(f"{c.n_concept} concept / {c.n_neutral} neutral prompts {how}{size}")
        self._draw()

    # ---- re-pairing (no model forward) ---------------------------------------------------------------
    def _repair(self, anchors: list[int] | None, settings: Any, show: int | None = None) -> None:
        """Pair the current run again with `anchors` (None: the top `settings.n_anchors`), then show `show`."""
        if self.result is None:
            return
        if self.busy:
            self._say("Busy: try again when the current run ends (x cancels).")
            return
        self.settings = settings
        if show is not None:
            self.anchor = show
        self._run_id += 1
        self.busy = True
        self._draw_header()
        self._pair_worker(self.session, self._run_id, self.result, anchors, settings)

    @work(thread=True, exclusive=True, exit_on_error=False, group="pairing-pair")
    def _pair_worker(self, session: SessionAPI, run_id: int, previous: Any, anchors: list[int] | None,
                     settings: Any) -> None:
        from spectrascope.core.analysis.pairing import repair

        try:
            result = repair(session, previous, settings, anchors)
        except Exception as exc:  # noqa: BLE001 - shown inline
            self.post_message(PairingDone(run_id, error=exc))
            return
        self.post_message(PairingDone(run_id, result=result))

    def _candidate_under_cursor(self) -> int | None:
        table = self.query_one("#pairing-anchors", FastTable)
        if table.row_count == 0:
            return None
        key = table.keys[table.cursor]
        return int(key) if key is not None else None

    @on(FastTable.Selected, "#pairing-anchors")
    def _anchor_chosen(self, message: FastTable.Selected) -> None:
        if message.key is None or self.result is None:
            return
        feature = int(message.key)
        if feature in self.result.anchors:
            self.anchor = feature
            self._draw()
        else:  # not yet an anchor: pair it, then show it
            self._repair(self.result.anchors + [feature], self.settings, show=feature)

    def action_toggle_anchor(self) -> None:
        feature = self._candidate_under_cursor()
        if feature is None or self.result is None:
            return
        anchors = list(self.result.anchors)
        if feature in anchors:
            if len(anchors) == 1:
                self._say("At least one anchor is needed.")
                return
            anchors.remove(feature)
            show = anchors[0] if self.anchor == feature else None
        else:
            anchors.append(feature)
            show = feature
        self._repair(anchors, self.settings, show)

    def action_anchors(self, delta: int) -> None:
        settings = replace(self.settings, n_anchors=max(1, min(N_CANDIDATES, self.settings.n_anchors + delta)))
        if self.result is None:
            self.settings = settings
            self._draw_header()
        else:
            self._repair(None, settings)  # the top n by selectivity

    def _set_thresholds(self, **changes) -> None:
        try:
            self.settings = replace(self.settings, **changes)
        except ValueError as exc:
            self._say(str(exc), error=True)
            return
        self._draw_header()
        if self.result is not None:
            from spectrascope.core.analysis.pairing import reclassify

            self.result = reclassify(self.result, self.settings)  # classes only: no model, no matmul
            self._draw()

    def action_cos(self, delta: float) -> None:
        self._set_thresholds(cos_threshold=round(max(-1.0, min(1.0, self.settings.cos_threshold + delta)), 2))

    def action_corr(self, delta: float) -> None:
        self._set_thresholds(corr_threshold=round(max(-1.0, min(1.0, self.settings.corr_threshold + delta)), 2))

    # ---- drawing ----------------------------------------------------------------------------------------
    def _draw(self) -> None:
        res = self.result
        if res is None:
            return
        v = res.verdict
        verdict = Text(one_line(v.headline, 300), style="bold black on green" if v.go else "bold white on red")
        if v.null is not None:  # a GO most coarse features would also get says little
            verdict.append("\n" + one_line(v.null.text, 300), style="yellow" if v.null.base_rate > 0.05 else "grey50")
        for line in res.confounds:  # the sets differ in form, not only in topic: selectivity may be about that
            verdict.append("\n⚠ " + one_line(line, 300), style="yellow")
        self.query_one("#pairing-verdict", Static).update(verdict)
        self._draw_anchors()
        self._draw_pairs()
        self._draw_plots()
        selection = tuple(self.selected_features())
        if selection != self._announced:  # other panes hear of it through the app
            self._announced = selection
            self.post_message(self.SelectionChanged(selection))
        self._label_missing()

    def _label(self, role: str, feature: int) -> str:
        from spectrascope.core.engine.labels import PENDING

        return one_line(self.result.labels.get(role, {}).get(feature, PENDING), 60)

    # ---- labels of newly listed rows, off the UI thread ----------------------------------------------
    def _label_missing(self) -> None:
        from spectrascope.core.analysis.pairing import unlabelled

        if self.result is None or self.session is None or self.labelling or self._label_failed:
            return
        wanted = unlabelled(self.result, N_CANDIDATES)
        if wanted:
            self.labelling = True
            self._label_worker(self.session, wanted)

    @work(thread=True, exit_on_error=False, group="pairing-labels")
    def _label_worker(self, session: SessionAPI, wanted: dict[str, list[int]]) -> None:
        from spectrascope.core.analysis.pairing import labels_for

        try:
            labels = labels_for(session, wanted)
        except Exception as exc:  # noqa: BLE001 - shown inline, the rows keep "…"
            self.post_message(PairingLabels({}, exc))
            return
        self.post_message(PairingLabels(labels))

    def on_pairing_labels(self, message: PairingLabels) -> None:
        self.labelling = False
        if message.error is not None:
            self._label_failed = True
            self._say(f"labels: {describe(message.error)}", error=True)
        if self.result is None:
            return
        for role, known in message.labels.items():  # labels are per feature: they fit any result of this session
            self.result.labels.setdefault(role, {}).update(known)
        self._draw()  # and label whatever thresholds listed meanwhile

    def _draw_anchors(self) -> None:
        res = self.result
        stats = res.contrast.stats["coarse"]
        ids = stats.ranked(N_CANDIDATES)
        ids += [a for a in res.anchors if a not in ids]
        cells = []
        for f in ids:
            is_anchor = f in res.anchors
            shown = f == self.anchor
            style = "bold" if shown else ("" if is_anchor else "grey62")
            sub = str(len(res.pairings[f].sub_features())) if is_anchor else ""
            text = stats.cells(f)  # the CLI's and the report's text for the same numbers
            cells.append([
                ("▶" if shown else ("★" if is_anchor else " "), "yellow"), (str(f), style),
                (text["mean_concept"], style), (text["mean_neutral"], style), (text["rates"], style),
                (text["selectivity"], style), (sub, "bold green" if sub and int(sub) else style),
                (self._label("coarse", f), style),
            ])
        self.query_one("#pairing-anchors", FastTable).set_rows(cells, [str(f) for f in ids])

    def _draw_pairs(self) -> None:
        res = self.result
        title = self.query_one("#pairing-pairs-title", Static)
        table = self.query_one("#pairing-pairs", FastTable)
        if self.anchor not in res.pairings:
            title.update("")
            table.set_rows([], [])
            return
        p = res.pairings[self.anchor]
        counts = " · ".join(f"{k} {n}" for k, n in p.counts().items())
        title.update(Text(f"coarse #{self.anchor} × fine: {counts}", style="bold"))
        rows = p.pairs(res.settings.max_rows)
        fine_sel = res.contrast.stats["fine"].selectivity
        cells = [[(str(q.fine), "bold"), (f"{q.cosine:.3f}", ""), (f"{q.correlation:.3f}", ""),
                  (q.cls, CLASS_STYLE[q.cls]), (f"{fine_sel[q.fine]:.3f}", "grey62"),
                  (self._label("fine", q.fine), "")] for q in rows]
        table.set_rows(cells, [str(q.fine) for q in rows])

    def _plot_size(self, widget_id: str, default: tuple[int, int]) -> tuple[int, int]:
        w = self.query_one(widget_id, Static).size
        return (w.width if w.width >= 20 else default[0]), (w.height if w.height >= 6 else default[1])

    def _draw_plots(self) -> None:
        import numpy as np

        res = self.result
        p = res.pairings.get(self.anchor)
        tree, scatter, heat = (self.query_one(i, Static) for i in ("#pairing-tree", "#pairing-scatter", "#pairing-heat"))
        if p is None:
            for w in (tree, scatter, heat):
                w.update("")
            return
        from spectrascope.core.analysis.pairing import CLASS_NAMES

        tree.update(decomposition_tree(self.anchor, self._label("coarse", self.anchor), p,
                                       lambda f: self._label("fine", f), res.settings.max_rows))

        with blank_figure(*self._plot_size("#pairing-scatter", (60, 12))) as plt:
            rng = np.random.default_rng(0)
            for code, name in CLASS_NAMES.items():
                ids = np.flatnonzero(p.classes == code)
                if len(ids) == 0:
                    continue
                if len(ids) > 2000:  # a 262K-wide fine SAE: a sample of the unrelated cloud is enough
                    ids = rng.choice(ids, 2000, replace=False)
                plt.scatter(p.cosine[ids].tolist(), p.correlation[ids].tolist(), color=CLASS_COLOR[name],
                            label=name, marker="dot")
            plt.vline(res.settings.cos_threshold, "red")
            plt.hline(res.settings.corr_threshold, "red")
            plt.xlabel("cosine")
            plt.ylabel("correlation")
            scatter.update(Text.from_ansi(plt.build()))

        fine = res.matched_fine(limit=12)
        if fine:
            title = Text("cosine: anchors × matched fine features\n", style="bold")
            heat.update(title + heat_strip(res.heatmap(fine), res.anchors, fine))
        else:
            heat.update(Text("no sub-features at these thresholds: nothing to map", style="grey50"))

    def on_unmount(self) -> None:
        if self._cancel is not None:
            self._cancel.set()  # a run still in its worker stops at the next batch

    def on_resize(self) -> None:
        if self.result is not None:
            self.call_after_refresh(self._draw_plots)
