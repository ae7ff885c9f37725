//! PASCAL VOC devkit layout: VOC2007-style multi-label classification and VOC2012-style semantic
//! segmentation.
//!
//! ```text
//! ROOT/JPEGImages/<id>.jpg
//! ROOT/ImageSets/Main/<class>_<split>.txt      "<id> 1|-1|0"  (0 = difficult, ignored)
//! ROOT/Annotations/<id>.xml                    used when the class lists are missing
//! ROOT/ImageSets/Segmentation/<split>.txt      "<id>"
//! ROOT/SegmentationClass/<id>.png              palette PNG: class indices, 255 = void
//! ROOT/SegmentationClassAug/<id>.png           the augmented 10,582-image set (split train_aug)
//! ```
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::decode::{decode_file, DecodeLimits, RgbImage8};
use crate::metrics::{Label, VOID};
use crate::DataError;

/// The 20 VOC object classes, in VOC index order (segmentation index = position + 1).
pub const VOC_CLASSES: [&str; 20] = [
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
];

fn io(path: &Path, e: std::io::Error) -> DataError {
    DataError::Io { path: path.to_owned(), source: e }
}

fn bad(path: &Path, msg: impl Into<String>) -> DataError {
    DataError::Malformed { path: path.to_owned(), msg: msg.into() }
}

/// A multi-label classification split.
#[derive(Debug, Clone)]
pub struct VocClassification {
    pub root: PathBuf,
    pub ids: Vec<String>,
    /// `[N][20]`: 1 positive, -1 negative, 0 difficult (ignored).
    pub labels: Vec<Vec<Label>>,
}

impl VocClassification {
    /// Reads `ImageSets/Main/<class>_<split>.txt` for the 20 classes, or, when those are missing,
    /// the split's ids from `ImageSets/Main/<split>.txt` with labels from `Annotations/*.xml`.
    pub fn open(root: &Path, split: &str) -> Result<Self, DataError> {
        let main = root.join("ImageSets/Main");
        let mut table: BTreeMap<String, Vec<Label>> = BTreeMap::new();
        let mut order: Vec<String> = Vec::new();
        let first = main.join(format!("{}_{split}.txt", VOC_CLASSES[0]));
        if first.is_file() {
            for (c, name) in VOC_CLASSES.iter().enumerate() {
                let p = main.join(format!("{name}_{split}.txt"));
                let text = std::fs::read_to_string(&p).map_err(|e| io(&p, e))?;
                for (ln, line) in text.lines().enumerate() {
                    let mut it = line.split_whitespace();
                    let (Some(id), Some(l)) = (it.next(), it.next()) else {
                        if line.trim().is_empty() {
                            continue;
                        }
                        return Err(bad(&p, format!("line {}: expected \"<id> <1|-1|0>\"", ln + 1)));
                    };
                    let l: Label = match l {
                        "1" => 1,
                        "-1" => -1,
                        "0" => 0,
                        o => return Err(bad(&p, format!("line {}: label {o:?} is not 1, -1 or 0", ln + 1))),
                    };
                    let row = table.entry(id.to_string()).or_insert_with(|| {
                        order.push(id.to_string());
                        vec![-1; 20]
                    });
                    row[c] = l;
                }
            }
        } else {
            let list = main.join(format!("{split}.txt"));
            let text = std::fs::read_to_string(&list).map_err(|e| io(&list, e))?;
            for id in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
                let xml = root.join("Annotations").join(format!("{id}.xml"));
                let labels = labels_from_xml(&xml)?;
                order.push(id.to_string());
                table.insert(id.to_string(), labels);
            }
        }
        if order.is_empty() {
            return Err(bad(&main, format!("split {split:?} lists no images")));
        }
        let labels = order.iter().map(|id| table[id].clone()).collect();
        Ok(Self { root: root.to_owned(), ids: order, labels })
    }

    pub fn image_path(&self, i: usize) -> PathBuf {
        self.root.join("JPEGImages").join(format!("{}.jpg", self.ids[i]))
    }

    pub fn class_names(&self) -> Vec<String> {
        VOC_CLASSES.iter().map(|s| s.to_string()).collect()
    }
}

/// Labels from a VOC annotation: 1 for classes with a non-difficult object, 0 for classes with
/// only difficult objects, -1 otherwise.
pub fn labels_from_xml(path: &Path) -> Result<Vec<Label>, DataError> {
    let text = std::fs::read_to_string(path).map_err(|e| io(path, e))?;
    let mut labels = vec![-1i8; 20];
    for obj in text.split("<object>").skip(1) {
        let tag = |t: &str| -> Option<String> {
            let a = obj.find(&format!("<{t}>"))? + t.len() + 2;
            let b = obj[a..].find(&format!("</{t}>"))? + a;
            Some(obj[a..b].trim().to_string())
        };
        let name = tag("name").ok_or_else(|| bad(path, "an <object> without <name>"))?;
        let c = VOC_CLASSES
            .iter()
            .position(|n| *n == name)
            .ok_or_else(|| bad(path, format!("unknown class {name:?}")))?;
        let difficult = tag("difficult").map(|d| d == "1").unwrap_or(false);
        labels[c] = if difficult { labels[c].max(0) } else { 1 };
    }
    Ok(labels)
}

/// A semantic segmentation split.
#[derive(Debug, Clone)]
pub struct VocSegmentation {
    pub root: PathBuf,
    pub ids: Vec<String>,
    /// `SegmentationClass` or `SegmentationClassAug`.
    pub mask_dir: PathBuf,
    /// Number of classes including background (21).
    pub classes: usize,
    /// The split's list file (named in errors about its entries).
    pub list: PathBuf,
}

impl VocSegmentation {
    /// Reads `ImageSets/Segmentation/<split>.txt`; the split `train_aug` (the augmented set) uses
    /// `SegmentationClassAug`. A listed image or mask that does not exist is reported by
    /// [`Self::load`] (so a run can skip it or stop).
    pub fn open(root: &Path, split: &str) -> Result<Self, DataError> {
        let list = root.join("ImageSets/Segmentation").join(format!("{split}.txt"));
        let text = std::fs::read_to_string(&list).map_err(|e| io(&list, e))?;
        let aug = root.join("SegmentationClassAug");
        let mask_dir =
            if split.contains("aug") && aug.is_dir() { aug } else { root.join("SegmentationClass") };
        let ids: Vec<String> =
            text.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect();
        if ids.is_empty() {
            return Err(bad(&list, "lists no images"));
        }
        Ok(Self { root: root.to_owned(), ids, mask_dir, classes: 21, list })
    }

    pub fn image_path(&self, i: usize) -> PathBuf {
        self.root.join("JPEGImages").join(format!("{}.jpg", self.ids[i]))
    }

    pub fn mask_path(&self, i: usize) -> PathBuf {
        self.mask_dir.join(format!("{}.png", self.ids[i]))
    }

    /// The image and its class-index mask, checked: both exist, same size, indices `< classes`
    /// or 255.
    pub fn load(&self, i: usize) -> Result<(RgbImage8, Vec<u8>), DataError> {
        for p in [self.image_path(i), self.mask_path(i)] {
            if !p.is_file() {
                return Err(bad(
                    &self.list,
                    format!("lists {:?} but {} does not exist", self.ids[i], p.display()),
                ));
            }
        }
        let ip = self.image_path(i);
        let img = decode_file(&ip, &DecodeLimits { min_side: 1, ..DecodeLimits::default() })
            .map_err(|e| bad(&ip, e.to_string()))?;
        let mp = self.mask_path(i);
        let (w, h, mask) = read_mask(&mp)?;
        if (w, h) != (img.width, img.height) {
            return Err(bad(&mp, format!("mask is {w}x{h}, image {}x{}", img.width, img.height)));
        }
        if let Some(&v) = mask.iter().find(|&&v| v != VOID && v as usize >= self.classes) {
            return Err(bad(&mp, format!("class index {v} out of range 0..{} (255 = void)", self.classes)));
        }
        Ok((img, mask))
    }
}

/// Writes class indices `[height * width]` as a PNG in the devkit's format: 8-bit palette
/// indices (what [`read_mask`] reads back) with the VOC colour map, so viewers show the usual
/// colours.
pub fn write_class_png(path: &Path, width: usize, height: usize, mask: &[u8]) -> Result<(), DataError> {
    if mask.len() != width * height {
        return Err(bad(path, format!("{} class indices for a {width}x{height} image", mask.len())));
    }
    let f = std::fs::File::create(path).map_err(|e| io(path, e))?;
    let mut enc = png::Encoder::new(std::io::BufWriter::new(f), width as u32, height as u32);
    enc.set_color(png::ColorType::Indexed);
    enc.set_depth(png::BitDepth::Eight);
    enc.set_palette((0..=255u8).flat_map(crate::palette::voc_colour).collect::<Vec<u8>>());
    enc.write_header().and_then(|mut w| w.write_image_data(mask)).map_err(|e| bad(path, e.to_string()))
}

/// Reads a mask PNG's raw samples (palette indices, or gray values for 8-bit gray masks), not the
/// palette colours.
pub fn read_mask(path: &Path) -> Result<(usize, usize, Vec<u8>), DataError> {
    let f = std::fs::File::open(path).map_err(|e| io(path, e))?;
    let mut dec = png::Decoder::new(std::io::BufReader::new(f));
    dec.set_transformations(png::Transformations::IDENTITY);
    let mut reader = dec.read_info().map_err(|e| bad(path, format!("not a readable PNG: {e}")))?;
    let size = reader.output_buffer_size().ok_or_else(|| bad(path, "PNG too large"))?;
    let mut buf = vec![0u8; size];
    let info = reader.next_frame(&mut buf).map_err(|e| bad(path, format!("corrupt PNG: {e}")))?;
    if info.bit_depth != png::BitDepth::Eight
        || !matches!(info.color_type, png::ColorType::Indexed | png::ColorType::Grayscale)
    {
        return Err(bad(
            path,
            format!("mask must be 8-bit palette or gray, is {:?} {:?}", info.color_type, info.bit_depth),
        ));
    }
    let (w, h) = (info.width as usize, info.height as usize);
    let mut out = Vec::with_capacity(w * h);
    for row in buf.chunks(info.line_size).take(h) {
        out.extend_from_slice(&row[..w]);
    }
    Ok((w, h, out))
}
