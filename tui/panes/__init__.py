"""One module per pane; each takes a Result through `show_result` (attributes down)."""
