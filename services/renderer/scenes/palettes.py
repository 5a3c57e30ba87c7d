"""Named palettes: a `silk` gradient (dark to bright, for the flowing background) and `ink` colours for the shapes.

The names must match the `palette` enum of mintpipe.core.scenes.
"""

from __future__ import annotations

import numpy as np

RGB = tuple[int, int, int]

PALETTES: dict[str, dict[str, list[RGB]]] = {
    "aurora": {"silk": [(4, 8, 24), (8, 30, 52), (14, 70, 84), (40, 120, 120), (120, 90, 190)],
               "ink": [(64, 255, 190), (90, 160, 255), (190, 110, 255), (255, 120, 200)]},
    "ember": {"silk": [(14, 4, 6), (44, 10, 12), (96, 26, 16), (160, 64, 24), (210, 130, 50)],
              "ink": [(255, 170, 60), (255, 90, 50), (255, 220, 120), (200, 40, 80)]},
    "lagoon": {"silk": [(2, 14, 22), (4, 40, 56), (8, 84, 96), (30, 140, 140), (170, 200, 170)],
               "ink": [(60, 230, 220), (40, 150, 255), (170, 255, 210), (255, 240, 180)]},
    "orchid": {"silk": [(14, 4, 20), (40, 12, 52), (84, 26, 92), (140, 52, 130), (210, 130, 180)],
               "ink": [(240, 120, 255), (255, 170, 210), (150, 120, 255), (255, 230, 250)]},
    "mono": {"silk": [(6, 6, 8), (24, 24, 28), (52, 52, 58), (96, 96, 104), (170, 170, 176)],
             "ink": [(240, 240, 240), (180, 185, 195), (120, 125, 140), (255, 255, 255)]},
    "citrus": {"silk": [(6, 16, 8), (20, 44, 14), (52, 84, 20), (120, 130, 30), (210, 190, 70)],
               "ink": [(250, 240, 80), (160, 255, 80), (255, 170, 40), (255, 255, 200)]},
}


def gradient_table(stops: list[RGB], entries: int) -> np.ndarray:
    """entries×3 float32 (0-1): the stops evenly spaced, blended with smoothstep so bands have no hard seams.

    Pure Python arithmetic (then one conversion), so the table is the same on every machine.
    """
    rows = []
    spans = len(stops) - 1
    for i in range(entries):
        pos = i / (entries - 1) * spans
        j = min(int(pos), spans - 1)
        f = pos - j
        f = f * f * (3.0 - 2.0 * f)
        a, b = stops[j], stops[j + 1]
        rows.append([(a[c] + (b[c] - a[c]) * f) / 255.0 for c in range(3)])
    return np.array(rows, dtype=np.float32)
