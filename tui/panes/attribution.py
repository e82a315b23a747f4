"""The Attribution pane (F10, or `w` on a Logits row): why the model predicts a token.

It shows core/views/attribution.py's report, as `spectrascope attribute` prints it: the features ranked
by activation × gradient with their measured ablation effect, a strip over the prompt showing where the
evidence sits, and each SAE's sum rule (features + error + constant + BOS). `enter` ablates the selected
feature live and shows the target's probability before and after; `s` sends it to Steering with the
sign that raises the target. Like the Layers pane it runs only while on screen (a forward, a backward
and one batched forward of the checked features).
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.reactive import reactive
from textual.widgets import Input, Static

from spectrascope.core.text import one_line, visible
from spectrascope.tui.errors import describe
from spectrascope.tui.panes.base import Pane
from spectrascope.tui.widgets.fast_table import Column, FastTable
from spectrascope.tui.widgets.text_field import TextField

STRIP_TOKENS = 40  # the strip shows this many prompt tokens before the explained position


def evidence_strip(tokens: tuple[str, ...], strip: tuple[float, ...], first: int = 1) -> Text:
    """The prompt's tokens, green where the features there raise the scalar and red where they lower it,
    bolder with the share of the largest |sum|; BOS (`first` = 1) left out."""
    text = Text()
    shown = range(max(first, len(tokens) - STRIP_TOKENS), len(tokens))
    peak = max((abs(strip[i]) for i in shown), default=0.0) or 1.0
    if shown.start > first:
        text.append("… ", style="grey50")
    for i in shown:
        share = abs(strip[i]) / peak
        colour = "green" if strip[i] > 0 else "red"
        style = f"bold {colour} reverse" if share > 0.5 else (colour if share > 0.1 else "grey50")
        text.append(visible(tokens[i], 20, mark_spaces=False), style=style)
        text.append(" ")
    return text


class AttributionPane(Pane):
    focus_target = "#attr-table"
    status_id = "#attr-status"
    status_style = "grey50"
    export_kind = "attribution"
    BINDINGS = [
        Binding("s", "steer", "To Steering"),
        Binding("e", "edit_target", "Target"),
        Binding("r", "rerun", "Rerun"),
        Binding("x", "cancel", "Cancel"),
    ]
    attribution_ask: reactive[tuple[str, str] | None] = reactive(None, init=False, repaint=False,
                                                                always_update=True)  # from Logits `w`

    DEFAULT_CSS = """
    AttributionPane { height: 1fr; }
    AttributionPane #attr-inputs { height: 3; }
    AttributionPane #attr-target { width: 1fr; }
    AttributionPane #attr-vs { width: 1fr; }
    AttributionPane #attr-header { height: auto; }
    AttributionPane #attr-strip { height: auto; max-height: 4; }
    AttributionPane #attr-terms { height: auto; }
    AttributionPane #attr-table { height: 1fr; min-height: 5; }
    AttributionPane #attr-status { height: auto; }
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.result: Any = None
        self.prompt = ""  # what the report explains: the app's prompt, or the Logits pane's text with its steps
        self.report: Any = None  # core.views.attribution.AttributionReport
        self._wanted: Any = None  # the AttributionSpec of the newest run asked for

    def compose(self) -> ComposeResult:
        with Horizontal(id="attr-inputs"):
            yield TextField("target token", placeholder="' Paris' or #id (empty: the top token)", id="attr-target")
            yield TextField("vs (optional)", placeholder="a contrast token: logit difference", id="attr-vs")
        yield Static("", id="attr-header")
        yield Static("", id="attr-strip")
        yield Static("", id="attr-terms")
        yield FastTable(id="attr-table")
        yield Static("", id="attr-status")

    def on_mount(self) -> None:
        self.query_one("#attr-table", FastTable).set_columns([
            Column("SAE", 6), Column("feature", 7, True), Column("pos", 4, True), Column("token", 10),
            Column("act", 7, True), Column("estimate", 8, True), Column("measured", 9, True), Column("label", 90)])
        self._header("Why this token: type a prompt, then a target here (or press w on a Logits row).", "grey50")

    def _header(self, text: str, style: str) -> None:
        self.query_one("#attr-header", Static).update(Text(one_line(text, 300), style=style))

    def _field(self, name: str) -> str:
        return self.query_one(f"#attr-{name}", Input).value

    # ---- session file and export ------------------------------------------------------------------
    def get_state(self) -> dict:
        return {"target": self._field("target"), "vs": self._field("vs")}

    def set_state(self, state: dict) -> None:
        self.query_one("#attr-target", Input).value = str(state.get("target", ""))
        self.query_one("#attr-vs", Input).value = str(state.get("vs", ""))

    def get_results(self) -> dict:
        """The shown report and what it was asked (a forward, a backward and the ablations: kept, not redone)."""
        if self.report is None or self._wanted is None:
            return {}
        return {"spec": self._wanted.to_dict(), "report": self.report.to_dict()}

    def set_results(self, results: dict) -> str:
        from spectrascope.core.views.attribution import AttributionReport, AttributionSpec

        if results.get("report") is None:
            return ""
        report = AttributionReport.from_dict(results["report"])
        spec = AttributionSpec.from_dict(results.get("spec") or {"prompt": report.prompt})
        if not report.saes or not report.tokens:
            raise ValueError("AttributionReport: no SAE terms or no tokens")
        self.prompt, self._wanted = spec.prompt, spec  # the same ask when shown again: no rerun
        self.job_done("attribute", report)
        return f"why {visible(report.target)} as saved"

    def export_doc(self) -> tuple[dict, list[dict], str] | None:
        """The shown report, as `spectrascope attribute --json` prints it, and its feature rows as CSV."""
        if self.report is None:
            return None
        rows = [f.to_dict() for f in self.report.features]
        return self.report.to_dict(), rows, f"{self.report.target} {self.report.prompt}"

    # ---- inputs ---------------------------------------------------------------------------------
    def show_result(self, result: Any) -> None:
        self.result, self.prompt = result, result.prompt
        if self.is_on_screen:
            self.refresh_attribution()

    def shown(self) -> None:
        self.refresh_attribution()

    def watch_attribution_ask(self, ask: tuple[str, str] | None) -> None:
        """`w` on a Logits row: explain that token after the Logits pane's text (its steps included)."""
        if ask is None:
            return
        self.prompt = ask[0]
        self.query_one("#attr-target", Input).value = ask[1]
        self.post_message(Pane.Open("attribution"))
        self.refresh_attribution(force=True)

    @on(Input.Submitted)
    def _submitted(self) -> None:
        self.refresh_attribution(force=True)
        self.query_one("#attr-table", FastTable).focus()

    def action_edit_target(self) -> None:
        self.query_one("#attr-target", Input).focus()

    def action_rerun(self) -> None:
        self.refresh_attribution(force=True)

    def spec(self) -> Any:
        from spectrascope.core.views.attribution import AttributionSpec

        return AttributionSpec(self.prompt, self._field("target") or None, self._field("vs") or None)

    def refresh_attribution(self, force: bool = False) -> None:
        from spectrascope.core.views import attribution

        if not self.prompt or self.session is None:
            return
        spec = self.spec()
        if spec == self._wanted and not force:
            return
        self._wanted = spec
        self._header("one forward and one backward to the SAE layer, then the top features ablated…", "grey50")
        self.run_job("attribute", attribution.build, self.session, spec)

    # ---- keys on a row ------------------------------------------------------------------------------
    def _selected(self) -> Any:
        table = self.query_one("#attr-table", FastTable)
        if self.report is None or table.row_count == 0:
            return None
        return self.report.features[min(table.cursor, len(self.report.features) - 1)]

    @on(FastTable.Selected, "#attr-table")
    def _row_chosen(self) -> None:
        self.action_ablate()  # enter on a row

    def action_ablate(self) -> None:
        from spectrascope.core.views import attribution

        row = self._selected()
        if row is None or self.session is None:
            return
        self._say(f"ablating {row.role} {row.feature} at {visible(row.token)}…")
        self.run_job("ablate", attribution.ablate, self.session, self.report, row)

    def action_steer(self) -> None:
        """Send the selected feature to Steering, signed to raise the target (a lowering feature negated)."""
        row = self._selected()
        if row is None:
            return
        sign = 1.0 if row.estimate >= 0 else -1.0
        self.post_message(Pane.Shared("steer_features", ((row.role, row.feature, sign),)))
        self._say(f"Sent {row.role}:{row.feature}:{sign:+g} to Steering (F5): "
                  f"{'adding' if sign > 0 else 'subtracting'} it should raise {visible(self.report.target)}.")

    # ---- jobs' outcomes -------------------------------------------------------------------------------
    def job_progress(self, name: str, text: str, fraction: float | None) -> None:
        if name == "attribute":
            self._header(text + "…", "grey50")

    def job_failed(self, name: str, error: BaseException) -> None:
        if name == "attribute":
            self.report = None
            self._header(describe(error), "bold red")
            self.query_one("#attr-table", FastTable).set_rows([], [])
        else:
            self._say(describe(error), error=True)

    def job_done(self, name: str, value: Any) -> None:
        if name == "ablate":
            self._say(f"{value.role} {value.feature} ablated at position {value.position}: "
                      f"p({visible(self.report.target)}) {value.prob_before:.3f} → {value.prob_after:.3f} · "
                      f"{self.report.scalar} {value.value_before:+.3f} → {value.value_after:+.3f}")
            return
        self.report = rep = value
        rho = "–" if rep.spearman is None else f"{rep.spearman:.2f}"
        self._header(f"Why {visible(rep.target)} after {visible(rep.tokens[-1])}: {rep.scalar} = {rep.value:+.2f} · "
                     f"p {rep.prob:.3f} · estimate vs ablation over {rep.verified}: Spearman {rho}"
                     + ("".join(f" · {n}" for n in rep.notes)), "bold")
        terms = Text()
        for s in rep.saes:
            rec = "" if s.recovered is None else f" · top {s.top_n} carry {s.recovered:.0%} of all features' " \
                                                 f"{s.all_measured:+.2f}"
            terms.append(f"{s.role}: features {s.features:+.2f} + error {s.error:+.2f} ({s.error_share:.0%}) + "
                         f"const {s.constant:+.2f} + BOS {s.bos:+.2f} = {s.total:+.2f}{rec}\n", style="grey62")
        self.query_one("#attr-terms", Static).update(terms)
        first = 1 if len(rep.tokens) > 1 else 0
        self.query_one("#attr-strip", Static).update(evidence_strip(rep.tokens, rep.saes[0].strip, first))
        cells, keys = [], []
        for f in rep.features:
            sign = "green" if f.estimate > 0 else "red"
            meas = "–" if f.measured is None else f"{f.measured:+.3f}" + (" ⚠" if f.off else "")
            label = f.label + (" (dense)" if f.dense else "")
            cells.append([(f.role, ""), (str(f.feature), ""), (str(f.position), ""), (visible(f.token, 10), ""),
                          (f"{f.activation:.1f}", ""), (f"{f.estimate:+.3f}", sign),
                          (meas, "yellow" if f.off else ""), (label, "grey62")])
            keys.append(f"{f.role}:{f.feature}:{f.position}")
        self.query_one("#attr-table", FastTable).set_rows(cells, keys)
        self._say("enter: ablate live · s: to Steering · e: target · ⚠: the estimate misses its ablation by > half · "
                  "strip: the " + rep.saes[0].role + " features' evidence per token")
