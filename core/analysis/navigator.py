"""The "Activation Space Navigator": where system prompts move the user's last token, in 2-D.

A reference set of ordinary prompts (the first few lines of each shipped neutral set) gives
the plane: the two principal directions of their last-token residuals at the SAE layer
(centered PCA by SVD). The user's prompt without a system prompt, and with each listed one,
is projected onto that plane; each system prompt draws an arrow from the "without" point.
The plane is computed once per model and hook and reused (`reference_basis`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from spectrascope.core.assets import PROMPTS_DIR


def reference_prompts(per_file: int = 8) -> list[str]:
    """The first `per_file` prompts of each shipped neutral set (5 sets: 40 varied prompts)."""
    from spectrascope.core.analysis.contrast import load_prompts

    return [p for f in sorted(Path(PROMPTS_DIR).glob("*neutral*.txt")) for p in load_prompts(f)[:per_file]]


def pca(x: np.ndarray, k: int = 2) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Centered PCA of rows x (n, d): mean (d,), components (k, d), singular values (k,), total variance.

    Each component's sign is fixed so its largest-magnitude loading is positive (sklearn's rule),
    so the same data always draws the same picture.
    """
    x = np.asarray(x, dtype=np.float64)
    mean = x.mean(0)
    _, s, vt = np.linalg.svd(x - mean, full_matrices=False)  # vt: (min(n, d), d)
    comps = vt[:k]
    signs = np.sign(comps[np.arange(len(comps)), np.abs(comps).argmax(1)])
    total = float((s ** 2).sum() / max(len(x) - 1, 1))
    return mean, comps * signs[:, None], s[:k], total


@dataclass(frozen=True)
class Basis:
    """The plane of the picture: PCA of the reference prompts' last-token residuals."""

    model: str
    hook: str
    prompts: tuple[str, ...]
    mean: np.ndarray  # (d,)
    components: np.ndarray  # (2, d)
    singular_values: np.ndarray  # (2,)
    total_variance: float  # of the reference residuals, every direction
    coords: np.ndarray  # (n, 2) the reference prompts on the plane

    def project(self, x: np.ndarray) -> np.ndarray:
        return (np.asarray(x, dtype=np.float64) - self.mean) @ self.components.T  # (..., 2)

    @property
    def explained(self) -> tuple[float, float]:
        """Share of the reference set's variance along each direction."""
        var = self.singular_values ** 2 / max(len(self.prompts) - 1, 1)
        return tuple(float(v / self.total_variance) for v in var)


@dataclass(frozen=True)
class NavPoint:
    system: str  # "" for the prompt alone
    x: float
    y: float
    shift: float  # |x_with - x_without| in the full residual space (the arrow is its shadow)


@dataclass(frozen=True)
class NavigatorReport:
    user: str
    hook: str
    explained: tuple[float, float]
    reference: tuple[tuple[float, float], ...]  # the reference prompts, for the cloud
    points: tuple[NavPoint, ...]  # the prompt alone first, then one per system prompt

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def last_residual(session: Any, text: str, hook: str) -> np.ndarray:
    """The residual at `hook` of the last token of `text`, float64 on the CPU. # (d,)"""
    ids = session.tokenize(text)[0]
    out = session.forward(ids, capture=[hook], stop_after=hook, keep_logits=0)
    return out.resid[hook][0, -1].float().cpu().numpy().astype(np.float64)


def reference_basis(session: Any, prompts: Sequence[str] | None = None, hook: str | None = None) -> Basis:
    if hook is None:
        if not session.saes:
            raise ValueError("No SAE is attached: the navigator reads the residual at the SAE layer.")
        hook = session.sae_hook(next(iter(session.saes)))
    prompts = list(prompts if prompts is not None else reference_prompts())
    if len(prompts) < 3:
        raise ValueError("The navigator needs at least 3 reference prompts to find two directions.")
    x = np.stack([last_residual(session, p, hook) for p in prompts])  # (n, d)
    mean, comps, s, total = pca(x)
    coords = (x - mean) @ comps.T
    return Basis(session.model.spec.name, hook, tuple(prompts), mean, comps, s, total, coords)


def navigator(session: Any, user: str, systems: Sequence[str], basis: Basis) -> NavigatorReport:
    """The user's prompt alone and under each system prompt, on the reference plane."""
    from spectrascope.core.engine.generation import with_system_prompt
    from spectrascope.core.engine.session import PromptError

    systems = [s for s in systems if s.strip()]
    if not systems:
        raise PromptError("List at least one system prompt to draw its arrow.")
    alone = last_residual(session, with_system_prompt(session, "", user), basis.hook)
    points = []
    for system in ["", *systems]:
        x = alone if system == "" else last_residual(session, with_system_prompt(session, system, user), basis.hook)
        px, py = basis.project(x)
        points.append(NavPoint(system, float(px), float(py), float(np.linalg.norm(x - alone))))
    ref = tuple((float(a), float(b)) for a, b in basis.coords)
    return NavigatorReport(user, basis.hook, basis.explained, ref, tuple(points))
