"""Logits pane: the next-token distribution after the prompt."""

from __future__ import annotations

import torch
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import DataTable, Static

from spectrascope.core.text import visible
from spectrascope.tui.widgets.bars import bar


class LogitsPane(Vertical):
    top_n = 20

    def compose(self) -> ComposeResult:
        yield Static("", id="logits-summary")
        table = DataTable(id="logits-table", zebra_stripes=True, cursor_type="row")
        table.add_columns("#", "id", "token", "logit", "p", "")
        yield table

    def show_result(self, result, piece) -> None:
        """Render the top-N next tokens of `result` (`piece(id)` decodes a token)."""
        table = self.query_one("#logits-table", DataTable)
        table.clear()
        if result.logits is None:
            return
        probs = torch.softmax(result.logits.float(), dim=-1)  # (V,)
        top_p, top_i = probs.topk(self.top_n)
        for rank, (p, i) in enumerate(zip(top_p.tolist(), top_i.tolist()), start=1):
            table.add_row(
                str(rank), str(i), Text(visible(piece(i))), f"{float(result.logits[i]):.2f}",
                f"{p:.4f}", Text(bar(p / float(top_p[0]), 20), style="green"),
            )
        entropy = float(-(probs * probs.clamp_min(1e-30).log()).sum())
        self.query_one("#logits-summary", Static).update(
            Text(f"next token after {len(result.tokens)} tokens · entropy {entropy:.2f} nats")
        )
