"""A small horizontal bar chart written as a PNG with the standard library.

The cold-start benchmark draws its comparison without plotting packages:
pixels in a bytearray, text in a 5x7 bitmap font (upper case, digits and a
few signs), and a PNG file made with ``zlib`` and ``struct``.

    groups = [("IMPORT (MS)", [("OURS", 21.0, "21 MS"), ("BOTO3", 240.0, "240 MS")])]
    write_bar_chart("chart.png", "COLD START", groups)

Each group is scaled to its own largest value, so groups in different
units can share one chart; the text at the end of each bar gives the value.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence

RGB = tuple[int, int, int]

# 5x7 glyphs, one string of 7 rows per character; "#" is ink.
_GLYPHS = {
    "A": ".###.#...##...#######...##...##...#",
    "B": "####.#...##...#####.#...##...#####.",
    "C": ".###.#...##....#....#....#...#.###.",
    "D": "####.#...##...##...##...##...#####.",
    "E": "######....#....####.#....#....#####",
    "F": "######....#....####.#....#....#....",
    "G": ".###.#...##....#.####...##...#.####",
    "H": "#...##...##...#######...##...##...#",
    "I": ".###...#....#....#....#....#...###.",
    "J": "..###...#....#....#....#.#..#..##..",
    "K": "#...##..#.#.#..##...#.#..#..#.#...#",
    "L": "#....#....#....#....#....#....#####",
    "M": "#...###.###.#.##...##...##...##...#",
    "N": "#...###..##.#.##..###...##...##...#",
    "O": ".###.#...##...##...##...##...#.###.",
    "P": "####.#...##...#####.#....#....#....",
    "Q": ".###.#...##...##...##.#.##..#..##.#",
    "R": "####.#...##...#####.#.#..#..#.#...#",
    "S": ".####.....#.....###.....#....#####.",
    "T": "#####..#....#....#....#....#....#..",
    "U": "#...##...##...##...##...##...#.###.",
    "V": "#...##...##...##...##...#.#.#...#..",
    "W": "#...##...##...##.#.##.#.##.#..#.#..",
    "X": "#...##...#.#.#...#...#.#.#...##...#",
    "Y": "#...##...#.#.#...#....#....#....#..",
    "Z": "#####....#...#...#...#...#....#####",
    "0": ".###.#...##..###.#.###..##...#.###.",
    "1": "..#...##....#....#....#....#...###.",
    "2": ".###.#...#....#...#...#...#...#####",
    "3": "#####...#...#.....#.....##...#.###.",
    "4": "...#...##..#.#.#..#.#####...#....#.",
    "5": "######....####.....#....##...#.###.",
    "6": "..##..#...#....####.#...##...#.###.",
    "7": "#####....#...#...#...#....#....#...",
    "8": ".###.#...##...#.###.#...##...#.###.",
    "9": ".###.#...##...#.####....#...#..##..",
    " ": "...................................",
    ".": "..............................##...",
    ",": ".....................##....#...#...",
    ":": "......##...##........##...##.......",
    ";": "......##...##........##....#...#...",
    "-": "...............#####...............",
    "+": ".......#....#..#####..#....#.......",
    "/": ".........#...#...#...#...#.........",
    "(": "...#...#...#....#....#.....#.....#.",
    ")": ".#.....#.....#....#....#...#...#...",
    "%": "##...##..#...#...#...#...#..##...##",
    "=": "..........#####.....#####..........",
    "<": "....#...#...#...#.....#.....#.....#",
    ">": "#.....#.....#.....#...#...#...#....",
}

_GLYPH_W, _GLYPH_H, _SCALE = 5, 7, 2
_CHAR_W = (_GLYPH_W + 1) * _SCALE
_LINE_H = (_GLYPH_H + 3) * _SCALE

WHITE: RGB = (255, 255, 255)
INK: RGB = (40, 40, 40)
GRID: RGB = (225, 225, 225)
#: Bar colours, one per series, in order.
SERIES: Sequence[RGB] = ((31, 119, 180), (214, 110, 40), (120, 120, 120))


class Canvas:
    """An RGB image in memory."""

    def __init__(self, width: int, height: int, background: RGB = WHITE) -> None:
        self.width = width
        self.height = height
        self.pixels = bytearray(bytes(background) * (width * height))

    def fill(self, x: int, y: int, w: int, h: int, color: RGB) -> None:
        x0, y0 = max(x, 0), max(y, 0)
        x1, y1 = min(x + w, self.width), min(y + h, self.height)
        if x1 <= x0:
            return
        row = bytes(color) * (x1 - x0)
        for line in range(y0, y1):
            start = (line * self.width + x0) * 3
            self.pixels[start : start + len(row)] = row

    def text(self, x: int, y: int, text: str, color: RGB = INK) -> int:
        """Draw ``text`` (upper-cased) with its top left at x, y; return its width."""
        for index, char in enumerate(text.upper()):
            glyph = _GLYPHS.get(char, _GLYPHS[" "]).ljust(_GLYPH_W * _GLYPH_H, ".")
            left = x + index * _CHAR_W
            for row in range(_GLYPH_H):
                for col in range(_GLYPH_W):
                    if glyph[row * _GLYPH_W + col] == "#":
                        self.fill(
                            left + col * _SCALE,
                            y + row * _SCALE,
                            _SCALE,
                            _SCALE,
                            color,
                        )
        return len(text) * _CHAR_W

    def png(self) -> bytes:
        """The image as PNG bytes (8-bit RGB, no filtering, zlib level 9)."""
        stride = self.width * 3
        raw = b"".join(
            b"\x00" + bytes(self.pixels[y * stride : (y + 1) * stride])
            for y in range(self.height)
        )

        def chunk(kind: bytes, data: bytes) -> bytes:
            body = kind + data
            return (
                struct.pack(">I", len(data))
                + body
                + struct.pack(">I", zlib.crc32(body))
            )

        header = struct.pack(">IIBBBBB", self.width, self.height, 8, 2, 0, 0, 0)
        return (
            b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(raw, 9))
            + chunk(b"IEND", b"")
        )


#: One bar: its series name, its value, and the text written after it.
Bar = tuple[str, float, str]


def render_bar_chart(
    title: str, groups: Sequence[tuple[str, Sequence[Bar]]], note: str = ""
) -> Canvas:
    """Draw the chart: a title, then per group its label and one bar per series."""
    label_w = max(len(label) for label, _ in groups) * _CHAR_W + 24
    bar_area = 420
    value_w = max(len(text) for _, bars in groups for _, _, text in bars) * _CHAR_W
    width = max(
        label_w + bar_area + value_w + 40, (max(len(title), len(note)) + 3) * _CHAR_W
    )
    bar_h = _LINE_H + 4
    series = list(dict.fromkeys(name for _, bars in groups for name, _, _ in bars))
    height = (
        _LINE_H * 3
        + sum(len(bars) * bar_h + 14 for _, bars in groups)
        + _LINE_H * (2 if note else 1)
    )
    canvas = Canvas(width, height)
    canvas.text(16, 12, title)

    # The legend, under the title.
    x = 16
    for index, name in enumerate(series):
        canvas.fill(x, 12 + _LINE_H + 2, 14, 14, SERIES[index % len(SERIES)])
        x += 20 + canvas.text(x + 20, 12 + _LINE_H + 2, name) + 24

    y = _LINE_H * 3
    for label, bars in groups:
        top = max((value for _, value, _ in bars), default=0.0) or 1.0
        canvas.fill(label_w, y - 4, 1, len(bars) * bar_h + 4, GRID)
        canvas.text(16, y + (len(bars) * bar_h - _LINE_H) // 2, label)
        for name, value, text in bars:
            color = SERIES[series.index(name) % len(SERIES)]
            length = max(int(bar_area * value / top), 1)
            canvas.fill(label_w, y, length, bar_h - 6, color)
            canvas.text(label_w + length + 8, y + 2, text)
            y += bar_h
        y += 14
    if note:
        canvas.text(16, y + 4, note, (110, 110, 110))
    return canvas


def write_bar_chart(
    path: str, title: str, groups: Sequence[tuple[str, Sequence[Bar]]], note: str = ""
) -> None:
    """Render the chart and write it to ``path`` as a PNG."""
    with open(path, "wb") as file:
        file.write(render_bar_chart(title, groups, note).png())
