//! sRGB (gamma-encoded, [0, 1]) -> linear RGB -> CIE XYZ (D65) -> CIE L\*a\*b\*.
//!
//! Matrix and white point follow IEC 61966-2-1 (sRGB) and CIE 15 (L\*a\*b\*), as in Bruce
//! Lindbloom's tables.

/// A CIE L\*a\*b\* colour: L\* in [0, 100], a\* and b\* roughly in [-128, 128].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lab {
    pub l: f32,
    pub a: f32,
    pub b: f32,
}

#[inline]
fn srgb_to_linear(c: f64) -> f64 {
    if c <= 0.04045 {
        c / 12.92
    } else {
        ((c + 0.055) / 1.055).powf(2.4)
    }
}

#[inline]
fn lab_f(t: f64) -> f64 {
    const EPS: f64 = 216.0 / 24389.0;
    const KAPPA: f64 = 24389.0 / 27.0;
    if t > EPS {
        t.cbrt()
    } else {
        (KAPPA * t + 16.0) / 116.0
    }
}

/// Converts one gamma-encoded sRGB pixel (channels in [0, 1]) to CIE L\*a\*b\* under D65.
pub fn srgb_to_lab(r: f32, g: f32, b: f32) -> Lab {
    let (r, g, b) = (srgb_to_linear(r as f64), srgb_to_linear(g as f64), srgb_to_linear(b as f64));
    let x = 0.4124564 * r + 0.3575761 * g + 0.1804375 * b;
    let y = 0.2126729 * r + 0.7151522 * g + 0.0721750 * b;
    let z = 0.0193339 * r + 0.1191920 * g + 0.9503041 * b;
    // D65 reference white (Y = 1).
    let (xn, yn, zn) = (0.95047, 1.0, 1.08883);
    let (fx, fy, fz) = (lab_f(x / xn), lab_f(y / yn), lab_f(z / zn));
    Lab { l: (116.0 * fy - 16.0) as f32, a: (500.0 * (fx - fy)) as f32, b: (200.0 * (fy - fz)) as f32 }
}
