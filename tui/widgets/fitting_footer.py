"""Textual's footer, minus the keys that would run under its palette item.

Textual docks the `^p palette` key to the right and lets the other keys run on underneath it,
so at 80 columns the last visible key is cut mid-word ("n N▏^p palette"). Here a key that does
not fit whole left of the palette item is hidden instead, and so is every key after it: the
order the bindings are declared in is their priority. Nothing is lost: `?` and the palette list
every key.
"""

from __future__ import annotations

from textual.widgets import Footer


class FittingFooter(Footer):
    def compose(self):
        yield from super().compose()
        self.call_after_refresh(self._fit)  # the keys have sizes only once laid out

    def on_resize(self) -> None:
        for child in self.children:  # measure again from the full row
            child.display = True
        self.call_after_refresh(self._fit)

    def _fit(self) -> None:
        palette = [child for child in self.children if child.has_class("-command-palette")]
        keys = [child for child in self.children if child not in palette]
        if keys and keys[0].region.width == 0:  # not laid out yet
            self.call_after_refresh(self._fit)
            return
        right = palette[0].region.x if palette else self.region.right
        overflow = False
        for child in keys:
            # A key wider than what is left, and every key after it, is hidden (one past the
            # footer's visible width is not on screen at all: its region is empty).
            overflow = overflow or child.region.right > right or child.region.width == 0
            child.display = not overflow
