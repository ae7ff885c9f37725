//! Strict JPEG decoding: damaged files are errors (skipped and counted by the pipeline), intact
//! files decode to exactly what the `image` crate decodes.
use colorproxy_data::decode::decode_bytes;
use colorproxy_data::DecodeLimits;
use image::{ImageBuffer, Rgb};

fn jpeg(w: u32, h: u32) -> Vec<u8> {
    let img: ImageBuffer<Rgb<u8>, Vec<u8>> = ImageBuffer::from_fn(w, h, |x, y| {
        Rgb([(x * 7 % 256) as u8, (y * 5 % 256) as u8, ((x * y) % 251) as u8])
    });
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90).encode_image(&img).unwrap();
    out
}

/// Where the entropy-coded data starts: after the SOS segment.
fn scan_start(j: &[u8]) -> usize {
    let sos = j.windows(2).position(|w| w == [0xFF, 0xDA]).unwrap();
    sos + 2 + u16::from_be_bytes([j[sos + 2], j[sos + 3]]) as usize
}

fn kind(r: Result<colorproxy_data::RgbImage8, colorproxy_data::SkipReason>) -> &'static str {
    match r {
        Ok(_) => "ok",
        Err(e) => e.kind(),
    }
}

#[test]
fn truncated_and_garbled_jpegs_are_corrupt_not_padded() {
    let lim = DecodeLimits { min_side: 1, ..Default::default() };
    let j = jpeg(160, 120);
    assert_eq!(kind(decode_bytes(&j, &lim)), "ok");
    for frac in [0.6, 0.8, 0.95] {
        let cut = (j.len() as f64 * frac) as usize;
        assert_eq!(kind(decode_bytes(&j[..cut], &lim)), "corrupt", "truncated to {frac}");
    }
    // Garbage in the middle of the entropy-coded data: 200 random bytes, 50 seeds. JPEG has no
    // checksum, so garbage that happens to decode as valid Huffman data cannot be told apart from
    // an image; garbage that breaks the stream (a marker, running past the end) must be an error,
    // where the lenient decoder returns an image with the rest filled gray.
    let s = scan_start(&j);
    let mid = s + (j.len() - s) / 3;
    let (mut ours, mut lenient) = (0, 0);
    for seed in 0..50u64 {
        let mut g = j.clone();
        let mut x = seed.wrapping_mul(0x9E3779B97F4A7C15) | 1;
        for b in g[mid..mid + 200].iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        ours += usize::from(kind(decode_bytes(&g, &lim)) == "corrupt");
        lenient += usize::from(image::load_from_memory(&g).is_err());
    }
    eprintln!("random garbage detected: strict {ours}/50, image crate {lenient}/50");
    assert!(ours >= 25 && lenient <= 5, "strict {ours}/50, image crate {lenient}/50");
}

#[test]
fn intact_jpegs_decode_exactly_as_the_image_crate() {
    let lim = DecodeLimits { min_side: 1, ..Default::default() };
    let mut files: Vec<Vec<u8>> = vec![jpeg(97, 61), jpeg(160, 120)];
    // Gray and CMYK JPEGs.
    let mut gray = Vec::new();
    let g: Vec<u8> = (0..64 * 48).map(|i| (i % 251) as u8).collect();
    jpeg_encoder::Encoder::new(&mut gray, 90).encode(&g, 64, 48, jpeg_encoder::ColorType::Luma).unwrap();
    files.push(gray);
    let mut cmyk = Vec::new();
    let c: Vec<u8> = (0..48 * 40 * 4).map(|i| (i * 13 % 256) as u8).collect();
    jpeg_encoder::Encoder::new(&mut cmyk, 90).encode(&c, 48, 40, jpeg_encoder::ColorType::Cmyk).unwrap();
    files.push(cmyk);
    if let Some(root) = std::env::var_os("COLORPROXY_SHARED_DATA") {
        let dir = std::path::Path::new(&root).join("photos/val");
        let mut names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
        names.sort();
        files.extend(names.iter().map(|p| std::fs::read(p).unwrap()));
    }
    for (i, f) in files.iter().enumerate() {
        let ours = decode_bytes(f, &lim).unwrap();
        let theirs = image::load_from_memory(f).unwrap().to_rgb8();
        assert_eq!((ours.width as u32, ours.height as u32), theirs.dimensions(), "file {i}");
        assert!(ours.data == theirs.into_raw(), "file {i}: pixels differ from the image crate's");
    }
}
