"""The `?` screen: every key, grouped by pane, read from the widgets' own BINDINGS."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static


# Textual's key names as a person reads them on the keyboard.
KEY_GLYPHS = {"question_mark": "?", "slash": "/", "plus": "+", "equals_sign": "=", "minus": "-",
              "right_square_bracket": "]", "left_square_bracket": "[", "space": "space", "escape": "esc"}


def key_name(key: str) -> str:
    """"ctrl+l,plus,equals_sign" -> "^l, +, =": never a raw Textual key name on screen."""
    return ", ".join(KEY_GLYPHS.get(k, k).replace("ctrl+", "^") for k in key.split(","))


def notes_table(title: str, notes: list[tuple[str, str]]) -> Table:
    table = Table(title=title, title_justify="left", show_header=False, box=None, padding=(0, 2))
    table.add_column(style="bold cyan", no_wrap=True)
    table.add_column()
    for term, meaning in notes:
        table.add_row(Text(term), Text(meaning))
    return table


def bindings_table(title: str, bindings) -> Table:
    described = [b if isinstance(b, Binding) else Binding(*b) for b in bindings]
    return notes_table(title, [(key_name(b.key), b.description) for b in described if b.description])


# What enter does where it acts: a pane (or the app) that handles a submitted field or a chosen table
# row reacts to enter, though no BINDINGS entry says so; `with_enter` adds this row to its help.
ENTER_HELP = {
    "Everywhere": "in the prompt: run it now",
    "Logits": "on a row: append that token · in the system field: run the A/B",
    "Spectrum": "on a row: show that feature's card",
    "Pairing": "on an anchor row: make it the anchor (its sub-features, drift)",
    "Steering": "in the features / words field: apply it and return to the table",
    "Anchor": "in a system-prompt field: apply it and rerun",
    "Find": "on a hit: open its feature card · in the search field: search now and return to the hits",
}


def reacts_to_enter(node) -> bool:
    """Whether `node`'s class handles what enter produces: a submitted Input or a chosen FastTable row."""
    from textual.widgets import Input

    from spectrascope.tui.widgets.fast_table import FastTable

    handlers = getattr(type(node), "_decorated_handlers", {})
    return any(m in handlers or callable(getattr(node, m.handler_name, None))
               for m in (Input.Submitted, FastTable.Selected))


def with_enter(title: str, node, bindings) -> list:
    """`bindings` plus an enter row when `node` reacts to enter (ENTER_HELP says what it does)."""
    if not reacts_to_enter(node):
        return list(bindings)
    return [*bindings, Binding("enter", "", ENTER_HELP.get(title, "apply the field / choose the row"))]


# Where keys go: one rule for every pane and field (the README says the same).
FOCUS_MODEL = [
    ("keys", "act on the pane that has focus (its table); the app starts there, so ? opens this help."),
    ("/ or ^l", "enter the prompt; Tab / shift+Tab step through the fields and the pane's table; a click works too."),
    ("esc", "leaves any text field: the keyboard is back on the pane, and letters act on it again."),
    ("enter", "in the prompt runs it now; in a pane's field applies it and returns to the pane."),
    ("fields", "each is labelled on its border; entering one keeps its text as it is (nothing selected)."),
    ("paste", "lands in the focused text field as plain text, escape sequences and control characters "
              "dropped; with a pane focused it is ignored, never read as keys."),
]

# What each number on screen means, in a sentence (the report and README say the same).
GLOSSARY = [
    ("selectivity", "2 x AUROC - 1 of a feature's per-prompt max activation, concept vs neutral prompts "
                    "(0 = chance, 1 = every concept prompt outranks every neutral one); both firing rates "
                    "are shown beside it."),
    ("sub-feature", "a fine feature whose decoder cosine with the coarse anchor and whose per-prompt "
                    "activation correlation with it both pass the thresholds (c/C, o/O), and that is nested "
                    "in it token by token: fires inside it on >= 80% of its own tokens and covers < 50% of "
                    "the anchor's (else near-duplicate or not nested)."),
    ("GO / NO-GO", "GO when the best anchor has at least 3 sub-features. Under it: the permutation p (the "
                   "whole decision rerun on 200 shuffles of the concept/neutral labels; a GO that shuffled "
                   "labels also give says little), how many of 60 threshold settings say GO (the grid under "
                   "the heat strip), and the null model: how many of all live coarse features reach the same "
                   "count (a high base rate means GO says little)."),
    ("fidelity", "1 - |x - x̂|² / E|x - μ|² of one token over the dims that are not massive: its reconstruction "
                 "error against the typical centered spread of the SAE's reference residuals (predicting the mean "
                 "scores 0). With the 3 massive dims in (second figure) it reads ~0.95 on any text. Below the 5th "
                 "percentile of the SAE's reference tokens is flagged ⚠ poor (BOS always is)."),
    ("effect / cost", "steering: mean concept-feature activation and share of runs with concept words (by "
                      "default the words the feature fires on most), against perplexity of the generated text "
                      "under the unsteered model; [a, b] is a 95% bootstrap interval over seeds."),
    ("confounds", "⚠ lines under the verdict: the two prompt sets differ in form (endings, final token, quotes, "
                  "digits, length, capitalised words, vocabulary overlap) or a top feature fires only on punctuation, "
                  "so selectivity may measure form (the verdict then says CONFOUNDED)."),
    ("NO VERDICT", "withheld: fewer than 30 prompts in a set, the same prompts in both, or an anchor that is not the "
                   "concept (it fires mostly on function words and punctuation, or on under half of the concept-word "
                   "tokens); the rule's own answer follows. Palette: 'Pairing: match the neutral set' builds one."),
    ("generation strip", "under the Logits text, per generated token: its probability at T=1 and rank (green "
                         "expected, yellow, orange, red a long shot) and its strongest coarse feature (c ID label, "
                         "… while the label is computed); the Spectrum shows the generated tokens too, b drops the last."),
    ("logit lens", "Layers: each layer's residual through the model's own final norm and unembedding (Gemma 2: "
                   "and its final softcap), as if the model stopped there; rank and p are the final top-1 token's, "
                   "entropy in nats; top-1 from layer N: the first layer from which the final answer stays top-1; "
                   "settled: █ where a token's final top-1 is already top-1 at that layer, compared with all "
                   "tokens of the vocabulary. u: the tuned lens, per-layer ridge maps to the last layer fitted on "
                   "the shipped prompt sets (bench/tuned_lens_trial.py scores both on held-out text)."),
    ("embedded SAEs", "4,096 and 32,768 latents trained here on 6M tokens of the corpus' natural mix, no "
                      "concept oversampled; ctrl+o shows their held-out quality (assets/saes/*/CARD.md)."),
]


class HelpScreen(ModalScreen):
    BINDINGS = [Binding("escape,q,question_mark,f1", "dismiss", "Close")]
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll { width: 90; max-width: 100%; height: 80%; border: thick $primary; background: $surface; padding: 1 2; }
    """

    def __init__(self, sections: list[tuple[str, list]]):
        super().__init__()
        self.sections = sections

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(Text("spectrascope keys  (esc closes)", style="bold"))
            yield Static(notes_table("Focus and typing", FOCUS_MODEL))
            yield Static("")
            for title, bindings in self.sections:
                yield Static(bindings_table(title, bindings))
                yield Static("")
            yield Static(notes_table("What the numbers mean", GLOSSARY))
