//! The pretraining pipeline: bad inputs of every kind (generated here), determinism across thread
//! counts, augmentation equivalence, point sampling bounds and the shared real photos.
use std::path::{Path, PathBuf};
use std::sync::Arc;

use colorproxy_color::TargetConfig;
use colorproxy_data::decode::decode_bytes;
use colorproxy_data::{
    check_images, decode_file, AugmentConfig, BatchLoader, DataPosition, DecodeLimits, ImageSource,
    PipelineConfig, PretrainData, SkipReason,
};
use image::{ImageBuffer, Rgb, Rgba};

fn write_png_rgb(path: &Path, w: u32, h: u32, f: impl Fn(u32, u32) -> [u8; 3]) {
    ImageBuffer::from_fn(w, h, |x, y| Rgb(f(x, y))).save(path).unwrap();
}

fn jpeg_bytes(w: u32, h: u32, f: impl Fn(u32, u32) -> [u8; 3]) -> Vec<u8> {
    let img: ImageBuffer<Rgb<u8>, Vec<u8>> = ImageBuffer::from_fn(w, h, |x, y| Rgb(f(x, y)));
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 95).encode_image(&img).unwrap();
    out
}

/// A colourful test pattern.
fn pattern(x: u32, y: u32) -> [u8; 3] {
    [(x * 7 % 256) as u8, (y * 5 % 256) as u8, ((x + y) * 3 % 256) as u8]
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut c = 0xffff_ffffu32;
    for &b in bytes {
        c ^= b as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 { 0xedb8_8320 ^ (c >> 1) } else { c >> 1 };
        }
    }
    !c
}

/// A PNG whose header claims `w x h` but carries (almost) no data: a decompression bomb stand-in.
fn bomb_png(w: u32, h: u32) -> Vec<u8> {
    let mut v = vec![0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a];
    let mut chunk = |ty: &[u8], data: &[u8]| {
        v.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut body = ty.to_vec();
        body.extend_from_slice(data);
        v.extend_from_slice(&body);
        v.extend_from_slice(&crc32(&body).to_be_bytes());
    };
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    chunk(b"IHDR", &ihdr);
    // An empty zlib stream: real decoders read the header up to the first IDAT.
    chunk(b"IDAT", &[0x78, 0x01, 0x01, 0x00, 0x00, 0xff, 0xff, 0x00, 0x00, 0x00, 0x01]);
    chunk(b"IEND", &[]);
    v
}

/// Inserts an EXIF APP1 segment with the given orientation right after the JPEG's SOI marker.
fn with_exif_orientation(jpeg: &[u8], orientation: u16) -> Vec<u8> {
    let mut tiff = b"II\x2a\x00\x08\x00\x00\x00\x01\x00\x12\x01\x03\x00\x01\x00\x00\x00".to_vec();
    tiff.extend_from_slice(&orientation.to_le_bytes());
    tiff.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend_from_slice(&tiff);
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xff, 0xe1]);
    out.extend_from_slice(&((app1.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(&app1);
    out.extend_from_slice(&jpeg[2..]);
    out
}

#[test]
fn every_bad_input_kind_is_handled_or_skipped_with_a_reason() {
    let lim = DecodeLimits::default();
    // Empty, non-image, corrupt, truncated.
    assert_eq!(decode_bytes(&[], &lim), Err(SkipReason::Empty));
    assert_eq!(decode_bytes(b"hello, this is not an image at all", &lim), Err(SkipReason::NotAnImage));
    let png = {
        let mut v = Vec::new();
        let img: ImageBuffer<Rgb<u8>, Vec<u8>> = ImageBuffer::from_fn(64, 64, |x, y| Rgb(pattern(x, y)));
        img.write_to(&mut std::io::Cursor::new(&mut v), image::ImageFormat::Png).unwrap();
        v
    };
    let truncated = decode_bytes(&png[..png.len() / 2], &lim);
    assert_eq!(truncated.as_ref().map_err(|e| e.kind()).unwrap_err(), "corrupt", "{truncated:?}");
    let mut garbled = png.clone();
    for b in garbled[60..200].iter_mut() {
        *b ^= 0x5a;
    }
    assert!(decode_bytes(&garbled, &lim).is_err());
    // A truncated JPEG must not panic (decoders may fill in the missing part or refuse it).
    let jpg = jpeg_bytes(64, 64, pattern);
    let _ = decode_bytes(&jpg[..jpg.len() / 2], &lim);

    // Decompression bombs: header dimensions beyond the side limit or the allocation limit.
    let big = decode_bytes(&bomb_png(60_000, 60_000), &lim);
    assert_eq!(big.as_ref().unwrap_err().kind(), "too-large", "{big:?}");
    let big = decode_bytes(&bomb_png(15_000, 15_000), &lim);
    assert_eq!(big.as_ref().unwrap_err().kind(), "too-large", "{big:?}");

    // Too small.
    let tiny = jpeg_bytes(40, 20, pattern);
    assert_eq!(decode_bytes(&tiny, &lim), Err(SkipReason::TooSmall { width: 40, height: 20, min_side: 32 }));

    // 16-bit RGB: scaled to 8 bits (65535 -> 255, 32896 -> 128).
    let img16: ImageBuffer<Rgb<u16>, Vec<u16>> = ImageBuffer::from_fn(40, 40, |_, _| Rgb([65535, 32896, 0]));
    let mut b16 = Vec::new();
    img16.write_to(&mut std::io::Cursor::new(&mut b16), image::ImageFormat::Png).unwrap();
    let d = decode_bytes(&b16, &lim).unwrap();
    assert_eq!(&d.data[..3], &[255, 128, 0]);

    // Alpha: composited on white. (255,0,0) at alpha 128 -> (255, 127, 127) (rounded).
    let rgba: ImageBuffer<Rgba<u8>, Vec<u8>> = ImageBuffer::from_fn(40, 40, |_, _| Rgba([255, 0, 0, 128]));
    let mut ba = Vec::new();
    rgba.write_to(&mut std::io::Cursor::new(&mut ba), image::ImageFormat::Png).unwrap();
    let d = decode_bytes(&ba, &lim).unwrap();
    assert_eq!(&d.data[..3], &[255, 127, 127]);

    // Grayscale photos are kept, replicated to RGB.
    let gray: ImageBuffer<image::Luma<u8>, Vec<u8>> =
        ImageBuffer::from_fn(40, 40, |x, _| image::Luma([x as u8 * 6]));
    let mut bg = Vec::new();
    gray.write_to(&mut std::io::Cursor::new(&mut bg), image::ImageFormat::Png).unwrap();
    let d = decode_bytes(&bg, &lim).unwrap();
    assert_eq!(&d.data[3..6], &[6, 6, 6]);
    assert!(d.mean_chroma() < 1e-6);

    // CMYK JPEG: decoded to 3-channel RGB of the right size; pure-cyan ink is not red-dominant.
    let mut cmyk = Vec::new();
    let px: Vec<u8> = (0..48 * 40).flat_map(|_| [255u8, 0, 0, 0]).collect();
    jpeg_encoder::Encoder::new(&mut cmyk, 95).encode(&px, 48, 40, jpeg_encoder::ColorType::Cmyk).unwrap();
    let d = decode_bytes(&cmyk, &lim).unwrap();
    assert_eq!((d.width, d.height, d.data.len()), (48, 40, 48 * 40 * 3));
    let c = &d.data[(20 * 48 + 24) * 3..][..3];
    assert!(
        c[0] < 64 && c[1] > 180 && c[2] > 180 || c[0] > 180 && c[1] < 64 && c[2] < 64,
        "cyan ink gave {c:?}"
    );

    // EXIF orientation 6 (rotate 90 degrees clockwise): 64x32, left half red / right half blue
    // becomes 32x64 with red on top.
    let lr = jpeg_bytes(64, 32, |x, _| if x < 32 { [255, 0, 0] } else { [0, 0, 255] });
    let d = decode_bytes(&with_exif_orientation(&lr, 6), &lim).unwrap();
    assert_eq!((d.width, d.height), (32, 64));
    let top = &d.data[(8 * 32 + 16) * 3..][..3];
    let bottom = &d.data[(56 * 32 + 16) * 3..][..3];
    assert!(top[0] > 200 && top[2] < 60, "top {top:?}");
    assert!(bottom[2] > 200 && bottom[0] < 60, "bottom {bottom:?}");
}

fn make_folder(dir: &Path, n: usize) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir.join("sub/deeper")).unwrap();
    let mut files = Vec::new();
    for i in 0..n {
        let p = match i % 3 {
            0 => dir.join(format!("img{i}.png")),
            1 => dir.join(format!("sub/img{i}.PNG")),
            _ => dir.join(format!("sub/deeper/img{i}.jpg")),
        };
        let (w, h) = (48 + (i as u32 * 13) % 40, 40 + (i as u32 * 7) % 50);
        if p.extension().unwrap() == "jpg" {
            std::fs::write(&p, jpeg_bytes(w, h, |x, y| pattern(x + i as u32, y))).unwrap();
        } else {
            write_png_rgb(&p, w, h, |x, y| pattern(x * (i as u32 + 1), y));
        }
        files.push(p);
    }
    files
}

fn small_pipeline(workers: usize) -> PipelineConfig {
    PipelineConfig {
        batch_size: 4,
        points: 16,
        border: 8,
        augment: AugmentConfig { crop: 40, short_side_min: 40, short_side_max: 56, mirror: true },
        workers,
        prefetch: 2,
        ..PipelineConfig::default()
    }
}

#[test]
fn folders_are_listed_recursively_and_check_reports_reasons() {
    let tmp = tempfile::tempdir().unwrap();
    let files = make_folder(tmp.path(), 6);
    std::fs::write(tmp.path().join("notes.txt"), "not listed").unwrap();
    std::fs::write(tmp.path().join("broken.jpg"), b"\xff\xd8\xff\xe0garbage").unwrap();
    std::fs::write(tmp.path().join("empty.png"), b"").unwrap();
    let src = ImageSource::open(tmp.path()).unwrap();
    assert_eq!(src.len(), 8);
    let rep = check_images(&src, &DecodeLimits::default(), 0.02, &|| {});
    assert_eq!((rep.files, rep.decoded, rep.skipped), (8, 6, 2));
    assert_eq!(rep.skipped_by_reason["empty"][0].file, tmp.path().join("empty.png"));
    assert!(
        rep.skipped_by_reason.contains_key("corrupt") || rep.skipped_by_reason.contains_key("unsupported")
    );
    assert_eq!(rep.short_side.min, 40);

    // A file list: relative paths, comments; a missing file names the line.
    let list = tmp.path().join("list.txt");
    std::fs::write(&list, format!("# train\n{}\n\nsub/img1.PNG\n", files[0].display())).unwrap();
    assert_eq!(ImageSource::open(&list).unwrap().len(), 2);
    std::fs::write(&list, "img0.png\nmissing.jpg\n").unwrap();
    let err = ImageSource::open(&list).unwrap_err().to_string();
    assert!(err.contains("list.txt:2") && err.contains("missing.jpg"), "{err}");
}

fn collect(data: &Arc<PretrainData>, start: DataPosition, n: usize) -> Vec<colorproxy_data::ColorBatch> {
    BatchLoader::new(data.clone(), start).unwrap().take(n).map(|(_, b)| b.unwrap()).collect()
}

#[test]
fn batches_are_deterministic_across_thread_counts_and_resume_positions() {
    let tmp = tempfile::tempdir().unwrap();
    make_folder(tmp.path(), 10);
    std::fs::write(tmp.path().join("zz-corrupt.png"), b"\x89PNG\r\n\x1a\nbroken").unwrap();
    let src = ImageSource::open(tmp.path()).unwrap();
    let mk = |workers| {
        Arc::new(PretrainData::new(src.clone(), small_pipeline(workers), TargetConfig::default(), 7).unwrap())
    };
    let one = collect(&mk(1), DataPosition::default(), 6);
    let two = collect(&mk(2), DataPosition::default(), 6);
    let four = collect(&mk(4), DataPosition::default(), 6);
    assert_eq!(one, two);
    assert_eq!(one, four);
    // 11 files / batch 4 = 2 batches per epoch; starting at (epoch 1, batch 1) gives batch #3 on.
    let resumed = collect(&mk(2), DataPosition { epoch: 1, batch: 1 }, 3);
    assert_eq!(&one[3..6], &resumed[..]);
    // A different seed gives different batches.
    let other =
        Arc::new(PretrainData::new(src.clone(), small_pipeline(2), TargetConfig::default(), 8).unwrap());
    assert_ne!(collect(&other, DataPosition::default(), 1)[0], one[0]);
    // The corrupt file is skipped and counted, never used.
    let skipped: usize = one.iter().map(|b| b.skipped.len()).sum();
    assert!(one.iter().all(|b| b.files.iter().all(|f| !f.ends_with("zz-corrupt.png"))));
    assert!(skipped >= 1, "the corrupt file appears in 6 batches of 4 drawn from 11 files");
    // Shapes and ranges.
    let b = &one[0];
    assert_eq!(b.input.len(), 4 * 40 * 40);
    assert_eq!(b.hue_hist.len(), 4 * 16 * 32);
    assert!(b.points.iter().all(|&v| (8..32).contains(&v)));
    assert!(b.input.iter().all(|&v| (-0.4489..=0.5513).contains(&v)));
    for h in b.hue_hist.chunks(32) {
        assert!((h.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    }
}

#[test]
fn crop_region_resize_equals_full_resize_then_crop() {
    use colorproxy_data::augment::augment;
    use colorproxy_data::Rng;
    use fast_image_resize::images::{Image, ImageRef};
    use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
    let (w, h) = (90u32, 70u32);
    let data: Vec<u8> = (0..h).flat_map(|y| (0..w).flat_map(move |x| pattern(x, y))).collect();
    let img = colorproxy_data::RgbImage8 { width: w as usize, height: h as usize, data };
    let cfg = AugmentConfig { crop: 40, short_side_min: 50, short_side_max: 50, mirror: false };
    let mut resizer = Resizer::new();
    let out = augment(&img, &cfg, &mut Rng::new(3), &mut resizer);
    // Reference: resize the whole image so the short side is 50 (64x50), then crop at the same
    // offsets the augmentation drew (replayed from the same RNG).
    let mut rng = Rng::new(3);
    let _s = rng.range_inclusive(50, 50);
    let (rw, rh) = (64u32, 50u32);
    let cx = rng.below((rw - 40) as u64 + 1) as usize;
    let cy = rng.below((rh - 40) as u64 + 1) as usize;
    let src = ImageRef::new(w, h, &img.data, PixelType::U8x3).unwrap();
    let mut full = Image::new(rw, rh, PixelType::U8x3);
    let opts = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear));
    resizer.resize(&src, &mut full, &opts).unwrap();
    let full = full.into_vec();
    let mut max_diff = 0i32;
    for y in 0..40 {
        for x in 0..40 {
            for c in 0..3 {
                let a = out.rgb[(y * 40 + x) * 3 + c] as i32;
                let b = full[((y + cy) * rw as usize + x + cx) * 3 + c] as i32;
                max_diff = max_diff.max((a - b).abs());
            }
        }
    }
    assert!(max_diff <= 1, "max difference {max_diff}");
}

/// The real photos of ../shared/data (path from COLORPROXY_SHARED_DATA, set by .ci/run).
#[test]
fn shared_photos_decode_and_batch() {
    let Some(root) = std::env::var_os("COLORPROXY_SHARED_DATA") else {
        eprintln!("COLORPROXY_SHARED_DATA not set: skipping the shared-photo test");
        return;
    };
    let dir = Path::new(&root).join("photos/val");
    let src = ImageSource::open(&dir).unwrap();
    assert_eq!(src.len(), 45);
    let rep = check_images(&src, &DecodeLimits::default(), 0.02, &|| {});
    assert_eq!(rep.decoded, 45, "{:?}", rep.skipped_by_reason);
    assert!(rep.long_side.max <= 640 && rep.short_side.min >= 100);
    let pipe = PipelineConfig {
        augment: AugmentConfig { crop: 64, short_side_min: 72, short_side_max: 96, mirror: true },
        border: 8,
        points: 32,
        batch_size: 8,
        workers: 2,
        ..PipelineConfig::default()
    };
    let data = Arc::new(PretrainData::new(src, pipe, TargetConfig::default(), 1).unwrap());
    let b = collect(&data, DataPosition::default(), 2);
    assert!(b.iter().all(|b| b.skipped.is_empty()));
    // Real photos are colourful: some hue weight is non-zero.
    assert!(b[0].hue_weight.iter().any(|&w| w > 0.5));
    let _ = decode_file(&data.source.files[0], &DecodeLimits::default()).unwrap();
}

/// Round trip on real photos: one-hot histograms at each pixel's true hue and chroma bins
/// reconstruct the pixel to within the bins' quantisation (see the colour crate's bound).
#[test]
fn shared_photos_round_trip_through_one_hot_histograms() {
    use colorproxy_color::reconstruct::{pixel_from_hists, ReconstructOptions};
    use colorproxy_color::{bin_index, hue_chroma};
    let Some(root) = std::env::var_os("COLORPROXY_SHARED_DATA") else {
        return;
    };
    let src = ImageSource::open(&Path::new(&root).join("photos/val")).unwrap();
    let opts = ReconstructOptions { chromatic_fading: false, ..ReconstructOptions::default() };
    let mut checked = 0usize;
    for f in src.files.iter().take(4) {
        let img = decode_file(f, &DecodeLimits::default()).unwrap();
        for p in img.data.chunks(3).step_by(7) {
            let rgb = [p[0] as f32 / 255.0, p[1] as f32 / 255.0, p[2] as f32 / 255.0];
            let (h, c) = hue_chroma(rgb[0], rgb[1], rgb[2]);
            let (mut hp, mut cp) = (vec![0f32; 32], vec![0f32; 32]);
            hp[bin_index(h, 32)] = 1.0;
            cp[bin_index(c, 32)] = 1.0;
            let l = (rgb[0] + rgb[1] + rgb[2]) / 3.0;
            let out = pixel_from_hists(&hp, &cp, l, &opts);
            let err = out.iter().zip(rgb).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
            assert!(err <= 2.0 / 64.0 + 6.0 / 64.0 * c + 1e-4, "{f:?} {rgb:?}: {err}");
            checked += 1;
        }
    }
    assert!(checked > 10_000);
}

#[test]
fn rank_shards_of_a_global_batch_are_its_slots_whatever_the_world_size() {
    let tmp = tempfile::tempdir().unwrap();
    make_folder(tmp.path(), 10);
    let src = ImageSource::open(tmp.path()).unwrap();
    let full =
        Arc::new(PretrainData::new(src.clone(), small_pipeline(2), TargetConfig::default(), 3).unwrap());
    let whole = collect(&full, DataPosition { epoch: 1, batch: 1 }, 2);
    // Batch 4 over 2 ranks (slots 0-1, 2-3) and over 4 ranks (one slot each).
    for world in [2usize, 4] {
        let per = 4 / world;
        let shards: Vec<Vec<colorproxy_data::ColorBatch>> = (0..world)
            .map(|r| {
                let mut d =
                    PretrainData::new(src.clone(), small_pipeline(2), TargetConfig::default(), 3).unwrap();
                d.shard = Some(r * per..(r + 1) * per);
                collect(&Arc::new(d), DataPosition { epoch: 1, batch: 1 }, 2)
            })
            .collect();
        for (k, w) in whole.iter().enumerate() {
            let cat = |f: fn(&colorproxy_data::ColorBatch) -> Vec<f32>| -> Vec<f32> {
                shards.iter().flat_map(|s| f(&s[k])).collect()
            };
            assert_eq!(cat(|b| b.input.clone()), w.input, "world {world}, batch {k}: inputs");
            assert_eq!(cat(|b| b.hue_hist.clone()), w.hue_hist, "world {world}, batch {k}: targets");
            let files: Vec<_> = shards.iter().flat_map(|s| s[k].files.clone()).collect();
            assert_eq!(files, w.files);
            assert!(shards.iter().all(|s| s[k].batch == per));
        }
    }
}
