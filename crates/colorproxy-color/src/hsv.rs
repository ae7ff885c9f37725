//! Bicone hue and chroma, the two quantities the paper's histograms bin.

/// HSV hue in [0, 1) (0 where max == min) and chroma `max - min` in [0, 1] of an sRGB pixel in
/// [0, 1]. Hue follows Python's `colorsys.rgb_to_hsv` exactly.
#[inline]
pub fn hue_chroma(r: f32, g: f32, b: f32) -> (f32, f32) {
    let max = r.max(g).max(b);
    let min = r.min(g).min(b);
    let c = max - min;
    if c <= 0.0 {
        return (0.0, 0.0);
    }
    let rc = (max - r) / c;
    let gc = (max - g) / c;
    let bc = (max - b) / c;
    let h = if r == max {
        bc - gc
    } else if g == max {
        2.0 + rc - bc
    } else {
        4.0 + gc - rc
    };
    let h = (h / 6.0).rem_euclid(1.0);
    // rem_euclid can round up to exactly 1.0 for tiny negative inputs.
    (if h >= 1.0 { 0.0 } else { h }, c)
}

/// The bin of a value `v` in [0, 1]: `min(floor(v * bins), bins - 1)` (negative values go to 0).
#[inline]
pub fn bin_index(v: f32, bins: usize) -> usize {
    let k = (v * bins as f32).floor();
    if k <= 0.0 {
        0
    } else {
        (k as usize).min(bins - 1)
    }
}

/// The centre of bin `k` of `bins` over [0, 1]: `(k + 0.5) / bins`.
#[inline]
pub fn bin_center(k: usize, bins: usize) -> f32 {
    (k as f32 + 0.5) / bins as f32
}
