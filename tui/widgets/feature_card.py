"""The Spectrum pane's feature card as text: what a feature promotes, its firing statistics and density,
its snippets, and how strongly it fires on each token of the shown prompt."""

from __future__ import annotations

from typing import Any

from rich.text import Text

from spectrascope.core.text import one_line, visible


def feature_card(role: str, feature: int, labels: Any, label_error: str | None, result: Any) -> Text:
    """The card of `feature` of the `role` SAE (`labels`: its session labels, None when no SAE has the
    role); `label_error` replaces the pending mark when labels could not be computed; `result` (or None)
    gives the prompt's tokens and codes."""
    card = Text(f"{role} feature {feature}\n", style="bold")
    if labels is None:
        return card + Text("no SAE loaded for this role", style="grey50")
    try:
        label = labels.known(feature)
    except IndexError as exc:
        return card + Text(str(exc), style="red")
    card.append("promotes: ", style="grey50")
    if label is None:
        from spectrascope.core.engine.labels import PENDING

        card.append(f"{label_error or PENDING}\n", style="red" if label_error else "grey50")
    else:
        _append_label(card, label)
    if result is not None and role in result.spectra:
        acts = result.spectra[role].codes[:, feature]
        peak = float(acts.max()) or 1.0
        card.append("on this prompt: ", style="grey50")
        for tok, act in zip(result.tokens, acts.tolist()):
            level = act / peak
            style = f"on rgb({int(40 + 180 * level)},{int(30 + 60 * level)},30)" if act > 0 else "grey50"
            card.append(visible(tok.text, 16), style=style)
            card.append(" ")
    return card


def _append_label(card: Text, label: Any) -> None:
    card.append(" ".join(visible(p) for p in label.promoted) + "\n")
    if label.snippets:  # labels v2: the top contexts' firing token, how many share its lemma, density
        card.append(one_line(label.text(5), 120) + "\n", style="bold")
    if label.max_act is not None:
        card.append(f"max act {label.max_act:.2f} · fires on {100 * (label.freq or 0):.3f}% of tokens\n",
                    style="grey50")
    if label.url:
        card.append(label.url + "\n", style="underline cyan")
    if label.density and any(label.density):
        card.append("activation density (log10 act, 3 bins a decade from 0.1): ", style="grey50")
        card.append(sparkline(label.density) + "\n")
    for title, snippets in (("top snippets", label.snippets), ("lower activations", label.range_snippets),
                            ("random firings", label.random_snippets)):
        if snippets:
            card.append(f"{title}:\n", style="grey50")
        for act, snippet in snippets:
            card.append(f" {act:6.2f}  ")
            for i, part in enumerate(snippet.replace("]]", "[[").split("[[")):
                card.append(one_line(part, 120), style="bold reverse" if i % 2 else "")
            card.append("\n")


def sparkline(counts) -> str:
    """One block character per bin, height by count (0 shows as a space)."""
    blocks = " ▁▂▃▄▅▆▇█"
    top = max(counts) or 1
    return "".join(blocks[0 if c == 0 else max(1, round(8 * c / top))] for c in counts)
