"""The Find pane (ctrl+f): find a feature of either SAE by words or by example (core/views/find.py;
`spectrascope find` prints the same report).

`f` (or ctrl+f again) enters the search field; the search runs as you type (after a short pause) over both
SAEs' labels, snippets and promoted tokens, each hit with why it matched. `e` switches to by example: the
features most active on the prompt's chosen tokens (←/→ move, space picks; none picked: the one under the
cursor) relative to their usual max, from the prompt's own run (no model call); a phrase typed in the field
is run as the example instead. On a hit: enter opens its card, `s` steers it (Steering's features become
it, strength 1), `p` makes it (a fine hit: its nearest coarse feature) a Pairing anchor, `v` shows it on
the prompt in Spectrum; the app hands it over (tui/send_feature.py). The index is built once per SAE, off the UI thread, then cached.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from spectrascope.core.text import visible
from spectrascope.tui.errors import describe
from spectrascope.tui.panes.base import Pane
from spectrascope.tui.widgets.fast_table import Column, FastTable
from spectrascope.tui.widgets.text_field import TextField
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.timer import Timer
from textual.widgets import Input, Static

MODES = ("text", "example")
ROLES = ("both", "coarse", "fine")
PAUSE_S = 0.25  # typing pause before a search (a 262K SAE's decoder pass is ~150 ms on a CPU)


class FindPane(Pane):
    focus_target = "#find-table"
    status_id = "#find-status"
    export_kind = "find"
    BINDINGS = [
        Binding("f,ctrl+f", "focus_query", "Type a query"),
        Binding("e", "mode", "Text/example"),
        Binding("r", "role", "SAE"),
        Binding("s", "send('steering')", "To Steering"),
        Binding("p", "send('pairing')", "Pairing anchor"),
        Binding("v", "send('spectrum')", "In Spectrum"),
        Binding("left,h", "position(-1)", "◀ token", show=False),
        Binding("right,l", "position(1)", "token ▶", show=False),
        Binding("space", "pick", "± token (by example)", show=False),
    ]
    DEFAULT_CSS = """
    FindPane { height: 1fr; }
    #find-query { height: 3; }
    #find-status { height: 1; }
    #find-tokens { height: auto; max-height: 3; }
    #find-table { height: 1fr; min-height: 5; }
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.mode, self.role, self.top = "text", "both", 20
        self.report: Any = None  # the shown core.views.find.FindReport
        self.result: Any = None  # the app's prompt result (by example reads its codes)
        self.cursor: int | None = None  # the token under the cursor; None follows the last one
        self.picked: set[int] = set()
        self._timer: Timer | None = None

    def compose(self) -> ComposeResult:
        yield TextField("find a feature", placeholder="words (Japan, python code) · e: by example", id="find-query")
        yield Static("", id="find-status")
        yield Static("", id="find-tokens")
        yield FastTable(id="find-table")

    def on_mount(self) -> None:
        self.query_one("#find-table", FastTable).set_columns([
            Column("sae", 6), Column("id", 6, True), Column("score", 6, True), Column("freq", 7, True),
            Column("label", 28), Column("why", 60)])
        self.query_one("#find-tokens", Static).display = False
        self._say("f: type words to find a feature in both SAEs · e: by example (the prompt's tokens)")

    # ---- session file and export --------------------------------------------------------------------
    def get_state(self) -> dict:
        return {"query": self.query_one("#find-query", Input).value, "mode": self.mode, "role": self.role,
                "top": self.top}

    def set_state(self, state: dict) -> None:
        mode, role, top = state.get("mode", "text"), state.get("role", "both"), state.get("top", 20)
        if mode not in MODES or role not in ROLES or not isinstance(top, int) or not 1 <= top <= 1000:
            raise ValueError(f"find: mode {mode!r} / role {role!r} / top {top!r} is not one it takes")
        self.mode, self.role, self.top = mode, role, top
        self.query_one("#find-query", Input).value = str(state.get("query", ""))

    def export_doc(self) -> tuple[dict, list[dict], str] | None:
        """The shown report, as `spectrascope find --json` prints it; its hits as CSV rows."""
        if self.report is None:
            return None
        rows = [{k: h.to_dict()[k] for k in ("role", "feature", "score", "freq", "max_act", "label", "why")}
                for h in self.report.hits]
        return self.report.to_dict(), rows, self.report.spec.query or "example"

    # ---- inputs ------------------------------------------------------------------------------------
    def watch_session(self) -> None:
        self.report = None

    def show_result(self, result: Any) -> None:
        """The prompt's tokens and codes, for by example; a shown by-example search follows the prompt."""
        self.result = result
        n = len(result.tokens)
        self.picked = {p for p in self.picked if p < n}
        if self.cursor is not None and self.cursor >= n:
            self.cursor = None
        if self.mode == "example":
            self._draw_tokens()
            if self.is_on_screen and not self.query_one("#find-query", Input).value.strip():
                self.search()

    def shown(self) -> None:
        if self.mode == "example" and self.result is not None and self.report is None:
            self.search()

    @on(Input.Changed, "#find-query")
    def _typed(self) -> None:
        if self.mode == "example":
            self._draw_tokens()
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_timer(PAUSE_S, self.search)

    @on(Input.Submitted, "#find-query")
    def _submitted(self) -> None:
        if self._timer is not None:
            self._timer.stop()
        self.search()
        self.query_one("#find-table", FastTable).focus()

    def action_focus_query(self) -> None:
        self.query_one("#find-query", Input).focus()

    def action_mode(self) -> None:
        self.mode = "example" if self.mode == "text" else "text"
        self._draw_tokens()
        self.search()

    def action_role(self) -> None:
        self.role = ROLES[(ROLES.index(self.role) + 1) % len(ROLES)]
        self.search()

    def action_position(self, delta: int) -> None:
        if self.mode != "example" or self.result is None:
            return
        n = len(self.result.tokens)
        self.cursor = max(0, min(n - 1, self._at() + delta))
        self._draw_tokens()

    def action_pick(self) -> None:
        if self.mode != "example" or self.result is None:
            return
        self.picked ^= {self._at()}
        self._draw_tokens()
        self.search()

    def _at(self) -> int:
        return len(self.result.tokens) - 1 if self.cursor is None else self.cursor

    # ---- searching -----------------------------------------------------------------------------------
    def spec(self) -> Any:
        """The FindSpec the pane asks for now (ValueError: nothing to search for yet)."""
        from spectrascope.core.views.find import FindSpec

        typed = self.query_one("#find-query", Input).value.strip()
        if self.mode == "text":
            return FindSpec(typed, self.role, self.top)
        if typed:  # a phrase: run as the example
            return FindSpec(role=self.role, top=self.top, example=typed)
        if self.result is None:
            raise ValueError("By example reads the prompt's tokens: type a prompt first (/), or a phrase here (f).")
        return FindSpec(role=self.role, top=self.top, example=self.result.prompt,
                        positions=tuple(sorted(self.picked)) or (self._at(),))

    def search(self) -> None:
        from spectrascope.core.views import find

        if self.session is None:
            self._say("Waiting for the model to load.")
            return
        try:
            spec = self.spec()
        except ValueError as exc:
            self.cancel_jobs("find")
            self._say(str(exc) if self.mode == "example" else "f: type words to find a feature · e: by example")
            return
        if spec.mode == "example" and not self.query_one("#find-query", Input).value.strip():
            self.run_job("find", find.from_result, self.session, spec, self.result)  # the prompt's own codes
        else:
            self.run_job("find", find.build, self.session, spec)
        self._say(f"finding {spec.query or 'by example'!r}…" if spec.mode == "text" else "finding by example…")

    def job_progress(self, name: str, text: str, fraction: float | None) -> None:
        self._say(text + ("" if fraction is None else f" {fraction:.0%}") + " (once per SAE, then cached)")

    def job_failed(self, name: str, error: BaseException) -> None:
        self._say(describe(error), error=True)

    def job_done(self, name: str, report: Any) -> None:
        self.report = report
        self._draw()

    # ---- a hit: its card, or to another pane ------------------------------------------------------------
    def _hit(self) -> Any:
        table = self.query_one("#find-table", FastTable)
        return self.report.hits[table.cursor] if self.report is not None and self.report.hits else None

    @on(FastTable.Selected, "#find-table")
    def _card(self) -> None:
        from spectrascope.tui.widgets.card_screen import FeatureCardScreen
        from spectrascope.tui.widgets.feature_card import feature_card

        hit = self._hit()
        if hit is None or self.session is None:
            return
        card = feature_card(hit.role, hit.feature, self.session.labels.get(hit.role), None, self.result)
        card.append(f"\nfound by: {hit.why}", style="grey50")
        self.post_message(Pane.ShowScreen(FeatureCardScreen(card)))

    def action_send(self, to: str) -> None:
        hit = self._hit()
        if hit is None:
            self._say("No hit selected: search first (f).", error=True)
            return
        if to == "steering":  # Steering's own hand-off (Attribution's `s` uses it too): it steers this feature
            self.post_message(Pane.Shared("steer_features", ((hit.role, hit.feature, 1.0),)))
            self.post_message(Pane.Open("steering"))
        else:  # the app shows the pane and hands it over (tui/send_feature.py)
            self.post_message(Pane.Shared("sent_feature", (to, hit.role, hit.feature)))

    # ---- drawing -----------------------------------------------------------------------------------
    def _draw_tokens(self) -> None:
        """By example: the prompt's tokens, the picked ones green, the cursor reversed."""
        box = self.query_one("#find-tokens", Static)
        box.display = self.mode == "example"
        if self.query_one("#find-query", Input).value.strip():
            box.update(Text("example: the phrase typed above (empty the field for the prompt's tokens)", "grey50"))
            return
        if self.mode != "example" or self.result is None:
            return
        text = Text()
        for i, tok in enumerate(self.result.tokens):
            style = "reverse bold" if i == self._at() else ("bold on dark_green" if i in self.picked else
                                                             ("on grey23" if i % 2 else "on grey35"))
            text.append(visible(tok.text, max_len=24), style=style)
            text.append(" ")
        box.update(text.append("  ◀ ▶ move · space picks", style="grey50"))

    def _draw(self) -> None:
        report = self.report
        rows = [[(h.role, "cyan" if h.role == "coarse" else "magenta"), (str(h.feature), ""), (f"{h.score:.2f}", "bold"),
                 ("–" if h.freq is None else f"{h.freq:.2%}", "grey50"), (visible(h.label, 40, mark_spaces=False), ""),
                 (visible(h.why, 120, mark_spaces=False), "grey70")] for h in report.hits]
        table = self.query_one("#find-table", FastTable)
        table.set_rows(rows, [f"{h.role}:{h.feature}" for h in report.hits])
        table.cursor = 0
        what = (repr(report.spec.query) if report.mode == "text" else
                f"example {visible(''.join(report.tokens[p] for p in report.positions), 30)!s}")
        notes = f" · {'; '.join(report.notes)}" if report.notes else ""
        self._say(f"{len(report.hits)} hits for {what} ({report.spec.role}){notes} · enter card · s/p/v: Steering, "
                  "Pairing, Spectrum" if report.hits else f"Nothing matched {what}{notes}.")
