"""Spectrum pane: which SAE features fire on each token, coarse above fine, live as you type.

Everything here renders from `Result.spectra` (computed in the same forward as
the logits); selecting a position, a feature or the all-tokens view needs no
model call.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Static

from spectrascope.core.text import one_line, visible
from spectrascope.tui.widgets.analyzer import Analyzer
from spectrascope.tui.widgets.fast_table import Column, FastTable
from spectrascope.tui.widgets.token_strip import token_strip_text

ROLES = ("coarse", "fine")


class SpectrumPane(Vertical):
    DEFAULT_CLASSES = "pane"
    focus_target = "#spectrum-table"
    pane_title = "Spectrum"
    BINDINGS = [
        Binding("left,h", "position(-1)", "◀ token"),
        Binding("right,l", "position(1)", "token ▶"),
        Binding("a", "all_tokens", "All tokens"),
        Binding("m", "reduce", "max/mean", show=False),
        Binding("d", "dense", "Dense on/off"),
    ]
    # Features that fire on more than this share of held-out tokens (e.g. a latent on
    # 99.7% of tokens) top every prompt by raw activation and say nothing about it.
    dense_freq = 0.2

    top_n = 30

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.result: Any = None
        self.position: int | None = None  # None = all tokens
        self.reduce = "max"
        self.feature: tuple[str, int] | None = None  # (role, id) shown in the card
        self.follow_end = True  # while typing, keep the newest token selected
        self.hide_dense = True

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
            Column("max", 6, True), Column("label (top-snippet tokens, else promoted tokens)", 48),
        ])
        self._say_card(Text("Select a feature (enter) to see its card.", style="grey50"))

    @property
    def session(self) -> Any:
        return getattr(self.app, "session", None)

    # ---- session file and export -----------------------------------------------------------------
    def get_state(self) -> dict:
        return {"position": self.position, "follow_end": self.follow_end, "reduce": self.reduce,
                "feature": list(self.feature) if self.feature else None}

    def set_state(self, state: dict) -> None:
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

    def export(self, folder) -> list:
        """The spectra of the current prompt at the selected position, as JSON."""
        import json
        import time
        from pathlib import Path

        from spectrascope.tui.session_file import atomic_write_text

        if self.result is None or not self.result.spectra:
            return []
        doc = {"prompt": self.result.prompt, "position": self.position, "reduce": self.reduce,
               "tokens": [{"id": t.id, "text": t.text} for t in self.result.tokens], "saes": {}}
        for role, spec in self.result.spectra.items():
            row = spec.row(self.position, self.reduce)
            doc["saes"][role] = {"width": spec.width, "l0": int((row > 0).sum()),
                                 "fidelity": spec.fidelity.tolist(),
                                 "top": [{"feature": f, "activation": a} for f, a in spec.top(self.position, 100, self.reduce)]}
        path = Path(folder) / f"spectrascope-spectrum-{time.strftime('%Y%m%d-%H%M%S')}.json"
        return [atomic_write_text(path, json.dumps(doc, indent=1, ensure_ascii=False))]

    # ---- inputs -------------------------------------------------------------------------------
    def show_result(self, result, piece=None) -> None:
        self.result = result
        if not result.spectra:
            errors = getattr(self.session, "sae_errors", {}) if self.session is not None else {}
            why = "; ".join(f"{r}: {e}" for r, e in errors.items()) or "no SAEs are loaded"
            self.query_one("#spectrum-tokens", Static).update(
                Text(one_line(f"No spectrum: {why}", 600), style="yellow"))
            return
        n = len(result.tokens)
        if self.follow_end:
            self.position = n - 1  # the newest token is what a typist looks at
        elif self.position is not None:
            self.position = min(self.position, n - 1)
        self.draw()

    def action_position(self, delta: int) -> None:
        if self.result is None or not self.result.spectra:
            return
        n = len(self.result.tokens)
        start = n - 1 if self.position is None else self.position
        self.position = max(0, min(n - 1, start + delta))
        self.follow_end = self.position == n - 1
        self.draw()

    def action_all_tokens(self) -> None:
        if self.result is None:
            return
        self.position = None if self.position is not None else len(self.result.tokens) - 1
        self.follow_end = self.position is not None
        self.draw()

    def action_dense(self) -> None:
        self.hide_dense = not self.hide_dense
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
        strip.append(f"  ◀ ▶ select · a all tokens · {where}", style="grey50")
        self.query_one("#spectrum-tokens", Static).update(strip)
        rows, keys = [], []
        for role in ROLES:
            spec = result.spectra.get(role)
            info = self.query_one(f"#spectrum-{role}-info", Static)
            analyzer = self.query_one(f"#spectrum-{role}", Analyzer)
            if spec is None:
                info.update(Text(f"{role}: not loaded", style="grey50"))
                analyzer.show([], 1.0)
                continue
            row = spec.row(self.position, self.reduce)
            active = int((row > 0).sum())
            lines = Text(f"{role} · {spec.width:,} features\n", style="bold")
            lines.append(f"L0 {active} · {spec.width - active:,} silent\n")
            if self.position is not None:
                fid = float(spec.fidelity[self.position])
                style = "red" if fid < 0.5 else ""
                lines.append(f"fidelity {fid:.2f}", style=style)
                if fid < 0.5:
                    lines.append(" ⚠ poor", style="red")
            else:
                poor = spec.poor_positions()
                lines.append(f"poor fit at {poor[:4]}" if poor else "all tokens fit", style="grey50")
            info.update(lines)
            n_bands = min(max(1, analyzer.size.width or 80), spec.width)
            marker = None
            if self.feature is not None and self.feature[0] == role:
                marker = self.feature[1] * n_bands // spec.width
            scale = float(spec.codes.max()) or 1.0
            analyzer.show(spec.bands(self.position, n_bands, self.reduce), scale, marker)
            labels = getattr(self.session, "labels", {}).get(role) if self.session else None
            hidden = 0
            for fid_, act in spec.top(self.position, self.top_n, self.reduce):
                label = labels.get(fid_) if labels is not None else None
                if self.hide_dense and label is not None and (label.freq or 0) > self.dense_freq:
                    hidden += 1
                    continue
                rows.append([
                    (role, "cyan" if role == "coarse" else "magenta"), (str(fid_), ""), (f"{act:.2f}", "bold"),
                    (f"{label.max_act:.1f}" if label is not None and label.max_act else "–", "grey50"),
                    (visible(label.short(5), max_len=60, mark_spaces=False) if label else "", ""),
                ])
                keys.append(f"{role}:{fid_}")
            if hidden:
                info.update(lines + Text(f"\n{hidden} dense hidden (d)", style="grey50"))
        rows_keys = sorted(zip(rows, keys), key=lambda rk: -float(rk[0][2][0]))
        self.query_one("#spectrum-table", FastTable).set_rows([r for r, _ in rows_keys], [k for _, k in rows_keys])
        if self.feature is not None:
            self._draw_card()

    @on(FastTable.Selected, "#spectrum-table")
    def _feature_chosen(self, message: FastTable.Selected) -> None:
        if message.key:
            role, fid = message.key.split(":")
            self.select_feature(role, int(fid))

    def select_feature(self, role: str, feature: int) -> None:
        """Show the card of `feature` of the `role` SAE (also used by other panes)."""
        self.feature = (role, feature)
        self.draw() if self.result is not None else self._draw_card()

    def _say_card(self, text: Text) -> None:
        self.query_one("#spectrum-card", Static).update(text)

    def _draw_card(self) -> None:
        role, fid = self.feature
        session = self.session
        labels = session.labels.get(role) if session is not None else None
        card = Text(f"{role} feature {fid}\n", style="bold")
        if labels is None:
            self._say_card(card + Text("no SAE loaded for this role", style="grey50"))
            return
        try:
            label = labels.get(fid)
        except IndexError as exc:
            self._say_card(card + Text(str(exc), style="red"))
            return
        card.append("promotes: ", style="grey50")
        card.append(" ".join(visible(p) for p in label.promoted) + "\n")
        if label.max_act is not None:
            card.append(f"max act {label.max_act:.2f} · fires on {100 * (label.freq or 0):.3f}% of tokens\n",
                        style="grey50")
        if label.url:
            card.append(label.url + "\n", style="underline cyan")
        if label.snippets:
            card.append("top snippets:\n", style="grey50")
            for act, snippet in label.snippets:
                card.append(f" {act:6.2f}  ")
                for i, part in enumerate(snippet.replace("]]", "[[").split("[[")):
                    card.append(one_line(part, 120), style="bold reverse" if i % 2 else "")
                card.append("\n")
        if self.result is not None and role in self.result.spectra:
            spec = self.result.spectra[role]
            acts = spec.codes[:, fid]
            peak = float(acts.max()) or 1.0
            card.append("on this prompt: ", style="grey50")
            for tok, act in zip(self.result.tokens, acts.tolist()):
                level = act / peak
                style = f"on rgb({int(40 + 180 * level)},{int(30 + 60 * level)},30)" if act > 0 else "grey50"
                card.append(visible(tok.text, 16), style=style)
                card.append(" ")
        self._say_card(card)
