//! The PASCAL VOC colour map: the colours that devkit masks and viewers use for class indices.

/// The VOC palette colour of class index `i` (the devkit's bit-interleaved colour map).
pub fn voc_colour(i: u8) -> [u8; 3] {
    let (mut r, mut g, mut b) = (0u8, 0u8, 0u8);
    let mut c = i;
    for j in 0..8 {
        r |= (c & 1) << (7 - j);
        g |= ((c >> 1) & 1) << (7 - j);
        b |= ((c >> 2) & 1) << (7 - j);
        c >>= 3;
    }
    [r, g, b]
}
