"""A machine-readable video test pattern drawn with OpenCV.

Each frame carries three rows of 16 black/white squares: a fixed sync row,
the frame counter and the send time (ms, modulo 2**16). Squares survive lossy
VP8 coding, so a receiver can tell a real picture from garbage, count lost
frames and measure glass-to-glass latency on one machine.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

WIDTH, HEIGHT = 320, 240
BITS = 16
SQUARE_W, SQUARE_H = WIDTH // BITS, 16
SYNC = 0b1010_1100_0011_0101

Image = npt.NDArray[np.uint8]


@dataclass(frozen=True, slots=True)
class PatternStamp:
    counter: int
    sent_ms: int


def draw(counter: int, sent_ms: int) -> Image:
    """A BGR frame carrying `counter` and `sent_ms`."""
    image = np.full((HEIGHT, WIDTH, 3), 40, dtype=np.uint8)
    for row, value in enumerate((SYNC, counter & 0xFFFF, sent_ms & 0xFFFF)):
        for bit in range(BITS):
            on = (value >> (BITS - 1 - bit)) & 1
            x, y = bit * SQUARE_W, row * SQUARE_H
            image[y : y + SQUARE_H, x : x + SQUARE_W] = 255 if on else 0
    cv2.putText(
        image, f"frame {counter}", (20, 140), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (0, 200, 255), 2
    )
    return image


def read(image: Image) -> PatternStamp | None:
    """The stamp of a decoded BGR frame, or None if it does not carry the pattern."""
    if image.shape[0] < 3 * SQUARE_H or image.shape[1] < WIDTH:
        return None
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    values = []
    for row in range(3):
        value = 0
        for bit in range(BITS):
            x, y = bit * SQUARE_W, row * SQUARE_H
            centre = gray[y + 4 : y + SQUARE_H - 4, x + 5 : x + SQUARE_W - 5]
            value = (value << 1) | int(float(centre.mean()) > 128)
        values.append(value)
    if values[0] != SYNC:
        return None
    return PatternStamp(values[1], values[2])
