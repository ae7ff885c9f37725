//! A procedural scene generator for the built-in demo (deterministic from a seed, no files
//! shipped): textured backgrounds with objects of several classes, where colour is informative
//! about objects but not a copy of the label. Each class has several colour modes and classes
//! share colours; lighting, texture, size and position vary; objects overlap and hide each other.
//!
//! It writes an unlabelled image folder for pretraining and a VOC-devkit-style labelled set
//! (segmentation masks, per-class image lists) so the demo uses the same loaders as real data.
use std::path::Path;

use crate::decode::RgbImage8;
use crate::rng::Rng;
use crate::voc::VOC_CLASSES;
use crate::DataError;

/// The object classes, as VOC class indices (1-based segmentation indices): aeroplane, bicycle,
/// bird, boat, bottle.
pub const SYNTH_CLASSES: [usize; 5] = [1, 2, 3, 4, 5];

/// Colour modes (hue in [0, 1), saturation) of each class: shared hues make colour informative
/// but not a label.
const CLASS_COLOURS: [&[(f32, f32)]; 5] = [
    &[(0.00, 0.85), (0.60, 0.70)],              // disc: red or blue
    &[(0.00, 0.85), (0.33, 0.75), (0.13, 0.9)], // square: red, green or yellow
    &[(0.60, 0.70), (0.08, 0.85)],              // triangle: blue or orange
    &[(0.33, 0.75), (0.83, 0.6)],               // ring: green or magenta
    &[(0.13, 0.9), (0.50, 0.7)],                // cross: yellow or cyan
];

fn hsv(h: f32, s: f32, v: f32) -> [f32; 3] {
    let h6 = h.rem_euclid(1.0) * 6.0;
    let f = h6 - h6.floor();
    let (p, q, t) = (v * (1.0 - s), v * (1.0 - s * f), v * (1.0 - s * (1.0 - f)));
    match h6 as u32 % 6 {
        0 => [v, t, p],
        1 => [q, v, p],
        2 => [p, v, t],
        3 => [p, q, v],
        4 => [t, p, v],
        _ => [v, p, q],
    }
}

/// Whether `(x, y)` (relative to the object's centre, in units of its radius) is inside shape `k`.
fn inside(k: usize, x: f32, y: f32, angle: f32) -> bool {
    let (c, s) = (angle.cos(), angle.sin());
    let (u, v) = (c * x + s * y, -s * x + c * y);
    match k {
        0 => u * u + v * v <= 1.0,
        1 => u.abs() <= 0.8 && v.abs() <= 0.8,
        2 => v <= 0.7 && v >= -0.9 + 1.6 * u.abs() * 1.1,
        3 => {
            let r = u * u + v * v;
            (0.35..=1.0).contains(&r)
        }
        _ => (u.abs() <= 0.3 && v.abs() <= 1.0) || (v.abs() <= 0.3 && u.abs() <= 1.0),
    }
}

/// The textured two-region background of a scene, `[size * size * 3]` in [0, 1], and its light.
fn background(rng: &mut Rng, size: usize) -> (Vec<f32>, f32) {
    let n = size as f32;
    // Two regions (e.g. sky/ground) with their own colour modes and texture.
    let horizon = n * (0.3 + 0.4 * rng.uniform() as f32);
    let top = [(0.58, 0.45), (0.55, 0.15), (0.08, 0.3)][rng.below(3) as usize];
    let bottom = [(0.28, 0.55), (0.11, 0.45), (0.0, 0.0), (0.06, 0.35)][rng.below(4) as usize];
    let light = 0.75 + 0.25 * rng.uniform() as f32;
    let (lx, ly) = (rng.uniform() as f32 - 0.5, rng.uniform() as f32 - 0.5);
    let freq = 0.2 + 0.6 * rng.uniform() as f32;
    let mut rgb = vec![0f32; size * size * 3];
    for y in 0..size {
        for x in 0..size {
            let (h, s) = if (y as f32) < horizon { top } else { bottom };
            let tex = 0.08 * ((x as f32 * freq).sin() * (y as f32 * freq * 0.7).cos());
            let shade = light * (0.85 + 0.3 * (lx * x as f32 + ly * y as f32) / n) + tex;
            let v = if (y as f32) < horizon { 0.85 } else { 0.55 };
            let c = hsv(h, s, (v * shade).clamp(0.05, 1.0));
            rgb[(y * size + x) * 3..][..3].copy_from_slice(&c);
        }
    }
    (rgb, light)
}

/// The colour (hue, saturation) of an object of class `k`: one of the class's modes, jittered.
fn object_colour(rng: &mut Rng, k: usize) -> (f32, f32) {
    let modes = CLASS_COLOURS[k];
    let (h, s) = modes[rng.below(modes.len() as u64) as usize];
    ((h + 0.03 * (rng.uniform() as f32 - 0.5)).rem_euclid(1.0), s)
}

/// An object to paint: class `k` (index into [`SYNTH_CLASSES`]), colour, radius and centre in
/// pixels.
struct Object {
    k: usize,
    colour: (f32, f32),
    r: f32,
    centre: (f32, f32),
    /// A fixed style (striped, flattening factor) instead of random stripes at full height.
    style: Option<(bool, f32)>,
}

/// Paints `o` into `rgb` and `mask` (orientation, texture and brightness drawn from `rng`).
fn paint_object(rng: &mut Rng, rgb: &mut [f32], mask: &mut [u8], size: usize, light: f32, o: Object) {
    let Object { k, colour: (h, s), r, centre: (cx, cy), style } = o;
    let angle = std::f32::consts::TAU * rng.uniform() as f32;
    let coin = rng.coin();
    let (stripes, flat) = style.unwrap_or((coin, 1.0));
    let v0 = 0.55 + 0.4 * rng.uniform() as f32;
    for y in (cy - r - 1.0).max(0.0) as usize..((cy + r + 2.0) as usize).min(size) {
        for x in (cx - r - 1.0).max(0.0) as usize..((cx + r + 2.0) as usize).min(size) {
            let (u, v) = ((x as f32 + 0.5 - cx) / r, (y as f32 + 0.5 - cy) / r);
            if !inside(k, u, v * flat, angle) {
                continue;
            }
            // Texture and a highlight: the same class looks different from scene to scene.
            let t = if stripes { 0.12 * ((u * 9.0).sin()) } else { 0.1 * (1.0 - (u * u + v * v)) };
            let c = hsv(h, s, (v0 * light + t - 0.15 * v).clamp(0.08, 1.0));
            rgb[(y * size + x) * 3..][..3].copy_from_slice(&c);
            mask[y * size + x] = SYNTH_CLASSES[k] as u8;
        }
    }
}

fn to_image(rgb: &[f32], size: usize) -> RgbImage8 {
    let data = rgb.iter().map(|v| (v * 255.0).round().clamp(0.0, 255.0) as u8).collect();
    RgbImage8 { width: size, height: size, data }
}

/// One scene: `[size, size, 3]` image and its class-index mask (0 background).
pub fn scene(seed: u64, index: u64, size: usize) -> (RgbImage8, Vec<u8>) {
    let mut rng = Rng::derive(seed, &[0x5CE, index]);
    let n = size as f32;
    let (mut rgb, light) = background(&mut rng, size);
    let mut mask = vec![0u8; size * size];
    // Objects, painted back to front: later ones hide earlier ones.
    let count = 1 + rng.below(4) as usize;
    for _ in 0..count {
        let k = rng.below(SYNTH_CLASSES.len() as u64) as usize;
        let colour = object_colour(&mut rng, k);
        let r = n * (0.1 + 0.15 * rng.uniform() as f32);
        let centre = (n * rng.uniform() as f32, n * (0.2 + 0.7 * rng.uniform() as f32));
        paint_object(
            &mut rng,
            &mut rgb,
            &mut mask,
            size,
            light,
            Object { k, colour, r, centre, style: None },
        );
    }
    (to_image(&rgb, size), mask)
}

/// The most single-label classes [`write_image_folders`] can make: 5 shapes x 4 styles.
pub const MAX_FOLDER_CLASSES: usize = 20;

/// Shape names of the single-label classes (in the order of [`SYNTH_CLASSES`]).
const SHAPES: [&str; 5] = ["disc", "square", "triangle", "ring", "cross"];

/// Styles of the classes beyond the 5 shapes: (name suffix, striped, flattening factor).
const STYLES: [(&str, bool, f32); 4] =
    [("", false, 1.0), ("-striped", true, 1.0), ("-flat", false, 1.8), ("-flat-striped", true, 1.8)];

/// The names of `classes` single-label classes: up to 5, the VOC names of [`SYNTH_CLASSES`]
/// (each shape in random styles); more, `<shape><style>` (class `c`: shape `c % 5`, style `c / 5`,
/// e.g. `disc-striped`), whose shapes are the natural buckets of Table 4 (see
/// [`write_image_folders`]).
pub fn folder_class_names(classes: usize) -> Vec<String> {
    (0..classes)
        .map(|c| {
            if classes <= SYNTH_CLASSES.len() {
                VOC_CLASSES[SYNTH_CLASSES[c] - 1].to_string()
            } else {
                format!("{}{}", SHAPES[c % 5], STYLES[c / 5].0)
            }
        })
        .collect()
}

/// One single-label image: a large object of class `k` (index into [`SYNTH_CLASSES`]) on a
/// scene background, `[size, size, 3]`.
pub fn object_image(seed: u64, index: u64, k: usize, size: usize) -> RgbImage8 {
    class_image(seed, index, k, SYNTH_CLASSES.len(), size)
}

/// One single-label image of class `c` of a `classes`-class set (see [`folder_class_names`]).
pub fn class_image(seed: u64, index: u64, c: usize, classes: usize, size: usize) -> RgbImage8 {
    let mut rng = Rng::derive(seed, &[0x0B1, c as u64, index]);
    let n = size as f32;
    let (mut rgb, light) = background(&mut rng, size);
    let mut mask = vec![0u8; size * size];
    let k = c % SYNTH_CLASSES.len();
    let style = (classes > SYNTH_CLASSES.len()).then(|| {
        let (_, striped, flat) = STYLES[(c / 5).min(3)];
        (striped, flat)
    });
    let colour = object_colour(&mut rng, k);
    let r = n * (0.25 + 0.15 * rng.uniform() as f32);
    let centre = (n * (0.35 + 0.3 * rng.uniform() as f32), n * (0.35 + 0.3 * rng.uniform() as f32));
    paint_object(&mut rng, &mut rgb, &mut mask, size, light, Object { k, colour, r, centre, style });
    to_image(&rgb, size)
}

/// Writes a single-label image-folder set (torchvision `ImageFolder` layout):
/// `root/{train,val}/<class>/<i>.jpg` with `n_train` and `n_val` images per class, one folder per
/// class of [`folder_class_names`] (`classes` from 2 to [`MAX_FOLDER_CLASSES`]). With more than 5
/// classes it also writes `root/shape-buckets.txt`, the `class bucket` map of each class to its
/// shape (hierarchical buckets for supervised pretraining's label-space variants).
pub fn write_image_folders(
    root: &Path,
    seed: u64,
    n_train: usize,
    n_val: usize,
    classes: usize,
    size: usize,
) -> Result<(), DataError> {
    use rayon::prelude::*;
    if !(2..=MAX_FOLDER_CLASSES).contains(&classes) {
        return Err(DataError::BadConfig(format!(
            "{classes} classes: the generator makes 2 to {MAX_FOLDER_CLASSES} (5 shapes x 4 styles)"
        )));
    }
    let names = folder_class_names(classes);
    for (split, from, n) in [("train", 0u64, n_train), ("val", n_train as u64, n_val)] {
        for (c, name) in names.iter().enumerate() {
            let dir = root.join(split).join(name);
            std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
            (0..n).into_par_iter().try_for_each(|i| {
                let img = class_image(seed, from + i as u64, c, classes, size);
                save_jpeg(&img, &dir.join(format!("{:05}.jpg", from + i as u64)))
            })?;
        }
    }
    if classes > SYNTH_CLASSES.len() {
        let mut map = String::from("# class bucket: each generated class and its shape\n");
        for (c, name) in names.iter().enumerate() {
            map.push_str(&format!("{name} {}\n", SHAPES[c % 5]));
        }
        let path = root.join("shape-buckets.txt");
        std::fs::write(&path, map).map_err(|e| io(&path, e))?;
    }
    Ok(())
}

fn io(path: &Path, e: impl std::fmt::Display) -> DataError {
    DataError::Malformed { path: path.to_owned(), msg: e.to_string() }
}

fn save_jpeg(img: &RgbImage8, path: &Path) -> Result<(), DataError> {
    let buf = image::RgbImage::from_raw(img.width as u32, img.height as u32, img.data.clone())
        .expect("size matches");
    let f = std::fs::File::create(path).map_err(|e| io(path, e))?;
    image::codecs::jpeg::JpegEncoder::new_with_quality(std::io::BufWriter::new(f), 95)
        .encode_image(&buf)
        .map_err(|e| io(path, e))
}

fn save_mask(mask: &[u8], size: usize, path: &Path) -> Result<(), DataError> {
    crate::voc::write_class_png(path, size, size, mask)
}

/// Writes `n` unlabelled scenes to `dir/<i>.jpg` (scene indices from `start`).
pub fn write_unlabelled(dir: &Path, seed: u64, start: u64, n: usize, size: usize) -> Result<(), DataError> {
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    use rayon::prelude::*;
    (0..n).into_par_iter().try_for_each(|i| {
        let (img, _) = scene(seed, start + i as u64, size);
        save_jpeg(&img, &dir.join(format!("{:06}.jpg", start + i as u64)))
    })
}

/// Writes a VOC-devkit-style labelled set: `train` and `val` splits of the given sizes (scene
/// indices from `start`), JPEGImages, SegmentationClass palette PNGs, segmentation lists and the
/// per-class classification lists of the 20 VOC classes (objects of the 5 used classes).
pub fn write_voc(
    root: &Path,
    seed: u64,
    start: u64,
    n_train: usize,
    n_val: usize,
    size: usize,
) -> Result<(), DataError> {
    for d in ["JPEGImages", "SegmentationClass", "ImageSets/Segmentation", "ImageSets/Main"] {
        std::fs::create_dir_all(root.join(d)).map_err(|e| io(&root.join(d), e))?;
    }
    let mut names = vec!["background".to_string()];
    names.extend(VOC_CLASSES.iter().map(|s| s.to_string()));
    std::fs::write(root.join("class_names.txt"), names.join("\n") + "\n").map_err(|e| io(root, e))?;
    for (split, from, n) in [("train", start, n_train), ("val", start + n_train as u64, n_val)] {
        let mut ids = String::new();
        let mut cls: Vec<String> = vec![String::new(); 20];
        for i in 0..n {
            let idx = from + i as u64;
            let id = format!("synth_{idx:06}");
            let (img, mask) = scene(seed, idx, size);
            save_jpeg(&img, &root.join(format!("JPEGImages/{id}.jpg")))?;
            save_mask(&mask, size, &root.join(format!("SegmentationClass/{id}.png")))?;
            ids.push_str(&id);
            ids.push('\n');
            for (c, line) in cls.iter_mut().enumerate() {
                let present = mask.iter().any(|&v| v as usize == c + 1);
                line.push_str(&format!("{id} {}\n", if present { 1 } else { -1 }));
            }
        }
        let list = root.join(format!("ImageSets/Segmentation/{split}.txt"));
        std::fs::write(&list, &ids).map_err(|e| io(&list, e))?;
        for (c, name) in VOC_CLASSES.iter().enumerate() {
            let p = root.join(format!("ImageSets/Main/{name}_{split}.txt"));
            std::fs::write(&p, &cls[c]).map_err(|e| io(&p, e))?;
        }
    }
    Ok(())
}
