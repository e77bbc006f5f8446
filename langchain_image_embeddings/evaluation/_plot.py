"""A scatter plot of quality against speed, drawn with Pillow (no plotting library needed)."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

from PIL import Image, ImageDraw, ImageFont

__all__ = ["draw_plot"]

_WIDTH, _PLOT_HEIGHT = 960, 560
_LEFT, _RIGHT, _TOP, _BOTTOM = 80, 30, 50, 60
_COLOURS = (
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
)


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):  # Pillow without FreeType: the bitmap font
        return ImageFont.load_default()


def _ticks(high: float, count: int = 5) -> list[float]:
    """Round tick values from 0 to at least ``high``."""
    raw = high / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    return [step * i for i in range(math.ceil(high / step - 1e-9) + 1)]


def draw_plot(
    points: Sequence[tuple[str, float | None, float]],
    *,
    title: str,
    x_label: str,
    y_label: str,
) -> bytes:
    """PNG bytes: each ``(label, x, y)`` a numbered dot (``x`` ``None``: listed, not drawn);
    the legend under the plot names each number. ``y`` is a metric in ``[0, 1]``."""
    font, small = _font(15), _font(13)
    legend_height = 22 * len(points) + 10
    image = Image.new("RGB", (_WIDTH, _PLOT_HEIGHT + legend_height), "white")
    draw = ImageDraw.Draw(image)
    x0, y0 = _LEFT, _PLOT_HEIGHT - _BOTTOM  # the origin, in pixels
    x1, y1 = _WIDTH - _RIGHT, _TOP
    xs = [x for _, x, _ in points if x is not None and math.isfinite(x)]
    x_ticks = _ticks(max(xs) * 1.1 if xs and max(xs) > 0 else 1.0)
    y_ticks = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]

    def px(x: float, y: float) -> tuple[float, float]:
        return x0 + (x1 - x0) * x / x_ticks[-1], y0 - (y0 - y1) * y / y_ticks[-1]

    draw.text((_WIDTH / 2, 18), title, fill="black", font=font, anchor="mm")
    for tick in x_ticks:
        tx, _ = px(tick, 0)
        draw.line([(tx, y0), (tx, y1)], fill=(232, 232, 232))
        draw.text((tx, y0 + 8), f"{tick:g}", fill="black", font=small, anchor="mt")
    for tick in y_ticks:
        _, ty = px(0, tick)
        draw.line([(x0, ty), (x1, ty)], fill=(232, 232, 232))
        draw.text((x0 - 8, ty), f"{tick:.1f}", fill="black", font=small, anchor="rm")
    draw.line([(x0, y1), (x0, y0), (x1, y0)], fill="black", width=2)
    draw.text(((x0 + x1) / 2, y0 + 34), x_label, fill="black", font=font, anchor="mt")
    draw.text((x0 - 8, y1 - 10), y_label, fill="black", font=font, anchor="ls")
    for number, (label, x, y) in enumerate(points, start=1):
        colour = _COLOURS[(number - 1) % len(_COLOURS)]
        if x is not None and math.isfinite(x):
            cx, cy = px(x, y)
            draw.ellipse([(cx - 7, cy - 7), (cx + 7, cy + 7)], fill=colour, outline="black")
            # Numbers alternate sides so that points at one spot stay readable.
            dx = 12 if number % 2 else -12
            draw.text(
                (cx + dx, cy),
                str(number),
                fill="black",
                font=small,
                anchor="lm" if dx > 0 else "rm",
            )
        where = "" if x is not None and math.isfinite(x) else " (no speed measured)"
        ly = _PLOT_HEIGHT + 22 * (number - 1) + 6
        draw.ellipse([(x0, ly + 3), (x0 + 12, ly + 15)], fill=colour, outline="black")
        text = f"{number}. {label}: {y_label} {y:.3f}" + (
            f", {x:.1f}" if x is not None and math.isfinite(x) else where
        )
        draw.text((x0 + 20, ly), text, fill="black", font=small)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()
