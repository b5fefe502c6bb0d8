"""The confusion matrix's counts are legible: thousands separated, inside their cells, and in a
colour that contrasts with the cell behind it (WCAG's 4.5:1 for text) on light and dark cells."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgb

from nabla.report.plots import _confusion


def _luminance(color) -> float:
    """WCAG relative luminance of an sRGB colour."""
    c = np.array(to_rgb(color))
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    return float(linear @ [0.2126, 0.7152, 0.0722])


def _contrast(a, b) -> float:
    high, low = sorted([_luminance(a), _luminance(b)], reverse=True)
    return (high + 0.05) / (low + 0.05)


def _matrix(n: int, diagonal: int, seed: int = 0) -> np.ndarray:
    """Counts of an n-class test set: a strong diagonal, errors of every size off it, including
    rows that are half wrong (the mid-blue cells where neither black nor white is obvious)."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, diagonal // 20 + 2, size=(n, n))
    counts[rng.random((n, n)) < 0.4] = 0
    np.fill_diagonal(counts, diagonal + rng.integers(0, diagonal // 5 + 1, size=n))
    for k in range(0, n, 3):  # a confused class: a share of 0.3 to 0.7 in one wrong column
        counts[k, (k + 1) % n] = int(counts[k, k] * rng.uniform(0.4, 2.0))
    return counts


@pytest.mark.parametrize("n, diagonal", [(10, 36), (10, 1000), (10, 6000), (25, 900), (3, 40_000)])
def test_every_count_is_legible(n, diagonal):
    counts = _matrix(n, diagonal)
    figure = _confusion({"confusion": {"split": "test", "matrix": counts.tolist()}})
    ax = figure.axes[0]
    image = ax.images[0]
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    renderer = canvas.get_renderer()
    cell = ax.transData.transform([1, 0])[0] - ax.transData.transform([0, 0])[0]  # pixels
    texts = {(round(t.get_position()[1]), round(t.get_position()[0])): t for t in ax.texts}
    assert len(texts) == n * n
    for (i, j), text in texts.items():
        assert text.get_text() == f"{counts[i, j]:,}"  # 1,135 not 1135
        assert text.get_fontsize() >= 6
        assert text.get_window_extent(renderer).width < 0.95 * cell, text.get_text()
        background = image.cmap(image.norm(image.get_array()[i, j]))
        assert _contrast(text.get_color(), background) >= 4.5, (i, j, text.get_text())
