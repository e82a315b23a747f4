"""Turn any exception from the engine into one line a user can act on."""

from __future__ import annotations


def describe(error: BaseException) -> str:
    name = type(error).__name__
    text = str(error).strip() or name
    if name == "OutOfMemoryError" or "out of memory" in text.lower():
        return (
            "Out of memory: shorten the prompt, lower the batch size or use a smaller "
            "model/SAE (--dtype bfloat16, --device cpu). The app is still running."
        )
    if name in {"ModelUnavailable", "SAEUnavailable", "PromptError", "ValueError"}:
        return text
    return f"{name}: {text}"
