"""Writes crates/colorproxy-color/tests/fixtures/colorsys_hue_chroma.csv: reference hue and chroma
from Python's standard-library colorsys for 500 seeded random 8-bit sRGB pixels plus edge cases.

Command: python3 tools/make_colorsys_fixture.py
"""
import colorsys
import random

rng = random.Random(2017)
pixels = [(0, 0, 0), (255, 255, 255), (128, 128, 128), (255, 0, 0), (0, 255, 0), (0, 0, 255),
          (255, 255, 0), (0, 255, 255), (255, 0, 255), (255, 0, 1), (1, 0, 255), (254, 255, 255)]
pixels += [tuple(rng.randrange(256) for _ in range(3)) for _ in range(500)]
with open("crates/colorproxy-color/tests/fixtures/colorsys_hue_chroma.csv", "w") as f:
    f.write("r,g,b,hue,chroma\n")
    for r, g, b in pixels:
        h, s, v = colorsys.rgb_to_hsv(r / 255, g / 255, b / 255)
        f.write(f"{r},{g},{b},{h!r},{s * v!r}\n")
