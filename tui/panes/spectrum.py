"""Spectrum pane: which SAE features fire on each token, coarse above fine, live as you type.

Everything here renders the Spectrum view's report (core/views/spectrum.py, what
`spectrascope spectrum` prints) from `Result.spectra` (computed in the same forward
as the logits); selecting a position, a feature or the all-tokens view needs no
model call. Labels not yet known show "…" and are computed by one worker at a
time, one batched call per SAE (seconds at Gemma Scope 262K on a CPU), then the
pane redraws: the screen never waits for a label.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Static

from spectrascope.core.text import one_line, visible
from spectrascope.tui.panes.base import Pane
from spectrascope.tui.label_worker import LabelsComputed, LabelWorker
from spectrascope.tui.widgets.analyzer import SCALES, Analyzer
from spectrascope.tui.widgets.fast_table import Column, FastTable
from spectrascope.tui.widgets.feature_card import feature_card
from spectrascope.tui.widgets.token_strip import token_strip_text

ROLES = ("coarse", "fine")


class SpectrumPane(LabelWorker, Pane):
    focus_target = "#spectrum-table"
    BINDINGS = [
        Binding("left,h", "position(-1)", "◀ token"),
        Binding("right,l", "position(1)", "token ▶"),
        Binding("a", "all_tokens", "All tokens"),
        Binding("m", "reduce", "max/mean", show=False),
        Binding("d", "dense", "Dense on/off"),
        Binding("z", "zoom_in", "Analyzer: zoom in around the selected feature", show=False),
        Binding("Z", "zoom_out", "Analyzer: zoom out", show=False),
        Binding("s", "scale", "Analyzer: log / density scale", show=False),
    ]
    top_n = 30

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.result: Any = None
        self.position: int | None = None  # None = all tokens
        self.reduce = "max"
        self.feature: tuple[str, int] | None = None  # (role, id) shown in the card
        self.follow_end = True  # while typing, keep the newest token selected
        self.hide_dense = True
        self.zoom = 1  # the analyzers show width / zoom features around the selected (else strongest) one
        self.scale = "log"  # or "density": see widgets/analyzer.py
        self.labelling = False  # a label worker is running
        self.label_error: str | None = None  # why labels could not be computed (no retry until the next result)
        self.generated = 0  # how many of the shown tokens the Logits pane generated (0: the prompt alone)
        self._saved: tuple | None = None  # a session file's (tokens, position, follow_end): once those tokens show

    def compose(self) -> ComposeResult:
        yield Static("", id="spectrum-tokens")
        for role in ROLES:
            with Horizontal(classes="spectrum-row"):
                yield Static("", id=f"spectrum-{role}-info", classes="spectrum-info")
                yield Analyzer(id=f"spectrum-{role}")
        with Horizontal(id="spectrum-bottom"):
            yield FastTable(id="spectrum-table")
            with VerticalScroll(id="spectrum-card-box"):
                yield Static("", id="spectrum-card")

    def on_mount(self) -> None:
        self.query_one("#spectrum-table", FastTable).set_columns([
            Column("sae", 6), Column("feature", 7, True), Column("act", 7, True),
            Column("max", 6, True), Column("label (top contexts k/n · density, else promoted)", 48),
        ])
        self._say_card(Text("Select a feature (enter) to see its card.", style="grey50"))

    # ---- session file and export -----------------------------------------------------------------
    def get_state(self) -> dict:
        return {"position": self.position, "follow_end": self.follow_end, "reduce": self.reduce,
                "feature": list(self.feature) if self.feature else None, "zoom": self.zoom, "scale": self.scale}

    def set_state(self, state: dict) -> None:
        zoom, scale = state.get("zoom", 1), state.get("scale", "log")  # files before zoom/scale: the defaults
        if not isinstance(zoom, int) or zoom < 1 or zoom & (zoom - 1):
            raise ValueError(f"analyzer zoom {zoom!r} is not a power of two")  # z/Z double and halve it
        if scale not in SCALES:
            raise ValueError(f"unknown analyzer scale {scale!r} (one of {', '.join(SCALES)})")
        self.zoom, self.scale = zoom, scale
        pos = state.get("position")
        self.position = None if pos is None else int(pos)
        self.follow_end = bool(state.get("follow_end", True))
        self.reduce = "mean" if state.get("reduce") == "mean" else "max"
        feature = state.get("feature")
        if feature:
            role, fid = feature
            if role not in ROLES:
                raise ValueError(f"unknown SAE role {role!r}")
            self.feature = (role, int(fid))

    def get_results(self) -> dict:
        """The tokens shown, so a restored position points at the same token once they show again (the Logits
        pane's steps come back after the prompt's own result)."""
        return {"tokens": [t.text for t in self.result.tokens]} if self.result is not None else {}

    def set_results(self, results: dict) -> str:
        tokens = results.get("tokens", [])
        if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
            raise ValueError("tokens: expected a list of texts")
        self._saved = (tokens, self.position, self.follow_end)
        return ""

    def export_doc(self) -> tuple[dict, None, str] | None:
        """The spectra of the current prompt at the selected position."""
        if self.result is None or not self.result.spectra:
            return None
        doc = {**self.view().to_dict(), "fidelity": {r: s.fidelity.tolist() for r, s in self.result.spectra.items()}}
        return doc, None, self.result.prompt

    # ---- inputs -------------------------------------------------------------------------------
    def show_result(self, result, generated: int = 0) -> None:
        """`result`'s spectra; `generated`: how many of its last tokens the Logits pane generated."""
        self.result = result
        self.generated = generated
        self.label_error = None
        if not result.spectra:
            errors = self.session.sae_errors if self.session is not None else {}
            why = "; ".join(f"{r}: {e}" for r, e in errors.items()) or "no SAEs are loaded"
            self.query_one("#spectrum-tokens", Static).update(
                Text(one_line(f"No spectrum: {why}", 600), style="yellow"))
            return
        n = len(result.tokens)
        if self._saved is not None and self._saved[0] == [t.text for t in result.tokens]:
            _, self.position, self.follow_end = self._saved  # the saved token, now that its tokens show again
            self._saved = None
        elif self.follow_end:
            self.position = n - 1  # the newest token is what a typist looks at
        elif self.position is not None:
            self.position = min(self.position, n - 1)
        self.draw()

    def show_generation(self, prompt_result, stepper) -> None:
        """Follow the Logits pane's generation: the prompt + generated tokens' codes, recorded by the
        stepper's own forwards (no model call here), the newest token selected (or all tokens, when the
        user chose `a`: that view stays); no steps: the prompt."""
        if not stepper.steps:
            self.show_result(prompt_result)
            return
        from dataclasses import replace

        from spectrascope.core.engine.session import Token

        spectra = stepper.spectra()
        n = min((s.n_tokens for s in spectra.values()), default=len(stepper.ids))  # a step without codes ends it
        tokens = tuple(Token(i, self.session.piece(i)) for i in stepper.ids[:n])
        self.follow_end = self.position is not None  # "all tokens" stays all tokens
        self.show_result(replace(prompt_result, tokens=tokens, spectra=spectra), n - len(stepper.prompt_ids))

    def on_resize(self) -> None:
        # The analyzers' bands follow their width: a draw while the tab was hidden used a guess.
        if self.result is not None and self.result.spectra:
            self.draw()

    def action_position(self, delta: int) -> None:
        if self.result is None or not self.result.spectra:
            return
        n, self._saved = len(self.result.tokens), None  # the user chose: a saved position waits no more
        start = n - 1 if self.position is None else self.position
        self.position = max(0, min(n - 1, start + delta))
        self.follow_end = self.position == n - 1
        self.draw()

    def action_all_tokens(self) -> None:
        if self.result is None:
            return
        self.position = None if self.position is not None else len(self.result.tokens) - 1
        self.follow_end, self._saved = self.position is not None, None
        self.draw()

    def action_dense(self) -> None:
        self.hide_dense = not self.hide_dense
        self.draw()

    def action_zoom_in(self) -> None:
        if self.result is None or not self.result.spectra:
            return
        cols = max(1, self.query_one(f"#spectrum-{ROLES[0]}", Analyzer).size.width or 80)
        if any(spec.width // self.zoom > cols for spec in self.result.spectra.values()):
            self.zoom *= 2  # until every analyzer shows one feature a column
            self.draw()

    def action_zoom_out(self) -> None:
        if self.zoom > 1:
            self.zoom //= 2
            self.draw()

    def action_scale(self) -> None:
        self.scale = SCALES[(SCALES.index(self.scale) + 1) % len(SCALES)]
        self.draw()

    def action_reduce(self) -> None:
        self.reduce = "mean" if self.reduce == "max" else "max"
        self.draw()

    # ---- drawing --------------------------------------------------------------------------------
    def draw(self) -> None:
        result = self.result
        if result is None or not result.spectra:
            return
        pieces = [t.text for t in result.tokens]
        strip = token_strip_text(pieces, self.position)
        where = "all tokens (" + self.reduce + ")" if self.position is None else f"token {self.position}"
        if self.generated:
            where += f" · the last {self.generated} generated (Logits)"
        strip.append(f"  ◀ ▶ select · a all tokens · {where}", style="grey50")
        self.query_one("#spectrum-tokens", Static).update(strip)
        view = self.view()
        rows = view.rows()
        for role in ROLES:
            info = self.query_one(f"#spectrum-{role}-info", Static)
            analyzer = self.query_one(f"#spectrum-{role}", Analyzer)
            sae = view.saes.get(role)
            if sae is None:
                info.update(Text(f"{role}: not loaded", style="grey50"))
                analyzer.show([], 1.0)
                continue
            lines = Text(f"{role} · {sae.width:,} features\n", style="bold")
            lines.append(f"L0 {sae.l0} · {sae.silent:,} silent\n")
            if view.position is not None:
                poor = sae.poor_fit
                fid = "–" if sae.fidelity is None else f"{sae.fidelity:.2f}"
                lines.append(f"fidelity {fid}" + (" ⚠ poor" if poor else ""), style="red" if poor else "")
                lines.append(f"\n(w/o massive; with {sae.fidelity_with_massive:.2f})", style="grey50")
                if sae.massive_share is not None:
                    lines.append(f"\nmassive dims {sae.massive_share:.0%} of |x|²", style="grey50")
            else:
                poor_at = sae.poor_positions
                lines.append(f"poor fit at {list(poor_at[:4])}" if poor_at else "all tokens fit", style="grey50")
            if sae.dense_hidden:
                lines.append(f"\n{sae.dense_hidden} always-on hidden (d)", style="grey50")
            info.update(lines)
            top = next((r.feature for r in rows if r.role == role), None)  # the table's strongest
            selected = self.feature[1] if self.feature is not None and self.feature[0] == role else None
            analyzer.show_spectrum(result.spectra[role], view.position, self.reduce, view.first, self.zoom, self.scale,
                                   selected, top)
        self.query_one("#spectrum-table", FastTable).set_rows(
            [[(r.role, "cyan" if r.role == "coarse" else "magenta"), (str(r.feature), ""),
              (f"{r.activation:.2f}", "bold"), (f"{r.max_act:.1f}" if r.max_act else "–", "grey50"),
              (visible(r.label, max_len=60, mark_spaces=False), "")] for r in rows],
            [f"{r.role}:{r.feature}" for r in rows])
        if self.feature is not None:
            self._draw_card()
        self._request_labels(view.pending())

    def view(self):
        """The core report this pane renders (the same one `spectrascope spectrum` prints)."""
        from spectrascope.core.views.spectrum import from_result

        session = self.session
        labels = session.labels if session is not None else {}
        hooks = {role: session.sae_hook(role) for role in self.result.spectra} if session is not None else {}
        return from_result(self.result, labels, hooks, self.position, self.reduce, self.top_n, self.hide_dense,
                           compute_labels=False, stats=getattr(session, "resid_stats", None))

    # ---- labels, off the UI thread --------------------------------------------------------------
    def _request_labels(self, wanted: dict[str, list[int]]) -> None:
        """Compute the labels `wanted` (role -> features) plus the card's, unless a worker already runs:
        its redraw asks again for whatever is still missing."""
        if self._card_pending():
            role, fid = self.feature
            wanted = {**wanted, role: [*wanted.get(role, []), fid]}
        self.fetch_labels(wanted)

    def on_labels_computed(self, message: LabelsComputed) -> None:
        self.labels_done(message)
        if self.result is not None and self.result.spectra:
            self.draw()
        elif self.feature is not None:
            self._draw_card()
            self._request_labels({})

    def _card_pending(self) -> bool:
        """Whether the card shows a feature whose label is still to be computed."""
        if self.feature is None or self.session is None:
            return False
        role, fid = self.feature
        labels = self.session.labels.get(role)
        try:
            return labels is not None and labels.known(fid) is None
        except IndexError:  # the card says so
            return False

    @on(FastTable.Selected, "#spectrum-table")
    def _feature_chosen(self, message: FastTable.Selected) -> None:
        if message.key:
            role, fid = message.key.split(":")
            self.select_feature(role, int(fid))

    def select_feature(self, role: str, feature: int) -> None:
        """Show the card of `feature` of the `role` SAE (also used by other panes)."""
        self.feature = (role, feature)
        if self.result is not None:
            self.draw()
        else:
            self._draw_card()
            self._request_labels({})

    def _say_card(self, text: Text) -> None:
        self.query_one("#spectrum-card", Static).update(text)

    def _draw_card(self) -> None:
        role, fid = self.feature
        labels = self.session.labels.get(role) if self.session is not None else None
        self._say_card(feature_card(role, fid, labels, self.label_error, self.result))
