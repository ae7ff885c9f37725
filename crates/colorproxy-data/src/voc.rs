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

/// Background names a devkit export may write as the first line of its class list.
const BACKGROUND: [&str; 3] = ["background", "_background_", "__background__"];

/// The object classes of a VOC-layout set, in index order (segmentation index = position + 1),
/// and where they came from: `given` (a file, one name per line), else `ROOT/class_names.txt`
/// (as labelme, CVAT and others export it), else the classes of the
/// `ImageSets/Main/<class>_<split>.txt` files present (sorted), else VOC's 20. A first line
/// naming the background is dropped; blank lines are ignored; a duplicate name is an error.
pub fn class_list(
    root: &Path,
    given: Option<&Path>,
    split: &str,
) -> Result<(Vec<String>, String), DataError> {
    let file =
        given.map(Path::to_owned).or_else(|| Some(root.join("class_names.txt")).filter(|p| p.is_file()));
    if let Some(f) = file {
        let text = std::fs::read_to_string(&f).map_err(|e| io(&f, e))?;
        let mut names: Vec<String> =
            text.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect();
        if names.first().is_some_and(|n| BACKGROUND.contains(&n.as_str())) {
            names.remove(0);
        }
        if names.is_empty() {
            return Err(bad(&f, "lists no classes"));
        }
        for (i, n) in names.iter().enumerate() {
            if names[..i].contains(n) {
                return Err(bad(&f, format!("lists class {n:?} twice")));
            }
        }
        return Ok((names, f.display().to_string()));
    }
    let main = root.join("ImageSets/Main");
    let suffix = format!("_{split}.txt");
    let mut names: Vec<String> = std::fs::read_dir(&main)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.strip_suffix(&suffix).map(String::from))
        .collect();
    names.sort();
    if names.is_empty() {
        return Ok((VOC_CLASSES.map(String::from).to_vec(), "the 20 VOC classes".into()));
    }
    Ok((names, format!("the {}/<class>{suffix} files", main.display())))
}

/// A multi-label classification split.
#[derive(Debug, Clone)]
pub struct VocClassification {
    pub root: PathBuf,
    pub ids: Vec<String>,
    /// `[N][K]`: 1 positive, -1 negative, 0 difficult (ignored).
    pub labels: Vec<Vec<Label>>,
    /// The K object classes.
    pub classes: Vec<String>,
}

impl VocClassification {
    /// [`Self::open_with`] the set's own class list ([`class_list`]).
    pub fn open(root: &Path, split: &str) -> Result<Self, DataError> {
        let (classes, source) = class_list(root, None, split)?;
        Self::open_with(root, split, &classes, &source)
    }

    /// Reads `ImageSets/Main/<class>_<split>.txt` for every class of `classes` or, when there
    /// are no such files, the split's ids from `ImageSets/Main/<split>.txt` with labels from
    /// `Annotations/*.xml`. A class file missing for a listed class, or present for a class not
    /// in the list, is an error naming the file and `source` (where the list came from).
    pub fn open_with(root: &Path, split: &str, classes: &[String], source: &str) -> Result<Self, DataError> {
        Self::open_skipping(root, split, classes, source, false).map(|(set, _)| set)
    }

    /// [`Self::open_with`]; with `skip_bad`, an annotation that cannot be read (not XML, an
    /// object of no listed class) leaves its image out instead of stopping, and is returned in
    /// the list of skipped files with the reason.
    pub fn open_skipping(
        root: &Path,
        split: &str,
        classes: &[String],
        source: &str,
        skip_bad: bool,
    ) -> Result<(Self, Vec<String>), DataError> {
        let mut skipped = vec![];
        let main = root.join("ImageSets/Main");
        let mut table: BTreeMap<String, Vec<Label>> = BTreeMap::new();
        let mut order: Vec<String> = Vec::new();
        let suffix = format!("_{split}.txt");
        let present: Vec<String> = std::fs::read_dir(&main)
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str()?.strip_suffix(&suffix).map(String::from))
            .collect();
        if let Some(extra) = present.iter().find(|c| !classes.contains(c)) {
            return Err(bad(
                &main.join(format!("{extra}{suffix}")),
                format!("class {extra:?} is not in the class list ({source})"),
            ));
        }
        if !present.is_empty() {
            let k = classes.len();
            for (c, name) in classes.iter().enumerate() {
                let p = main.join(format!("{name}_{split}.txt"));
                if !p.is_file() {
                    return Err(bad(&p, format!("missing: class {name:?} is in the class list ({source})")));
                }
                let p = main.join(format!("{name}_{split}.txt"));
                let text = std::fs::read_to_string(&p).map_err(|e| io(&p, e))?;
                if text.trim().is_empty() {
                    return Err(bad(&p, "is empty (a class list file lists every image of the split)"));
                }
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
                        vec![-1; k]
                    });
                    row[c] = l;
                }
            }
        } else {
            let list = main.join(format!("{split}.txt"));
            let text = std::fs::read_to_string(&list).map_err(|e| io(&list, e))?;
            for id in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
                let xml = root.join("Annotations").join(format!("{id}.xml"));
                let labels = match labels_from_xml_for(&xml, classes) {
                    Ok(l) => l,
                    Err(e) if skip_bad => {
                        skipped.push(e.to_string());
                        continue;
                    }
                    Err(e) => return Err(e),
                };
                order.push(id.to_string());
                table.insert(id.to_string(), labels);
            }
        }
        if order.is_empty() {
            return Err(bad(&main, format!("split {split:?} lists no images")));
        }
        let labels = order.iter().map(|id| table[id].clone()).collect();
        Ok((Self { root: root.to_owned(), ids: order, labels, classes: classes.to_vec() }, skipped))
    }

    pub fn image_path(&self, i: usize) -> PathBuf {
        self.root.join("JPEGImages").join(format!("{}.jpg", self.ids[i]))
    }

    pub fn class_names(&self) -> Vec<String> {
        self.classes.clone()
    }
}

/// Labels from a VOC annotation: 1 for classes with a non-difficult object, 0 for classes with
/// only difficult objects, -1 otherwise. The file is parsed as XML; malformed XML, an object
/// without a name or an unknown class is an error naming the file.
pub fn labels_from_xml(path: &Path) -> Result<Vec<Label>, DataError> {
    labels_from_xml_for(path, &VOC_CLASSES.map(String::from))
}

/// [`labels_from_xml`] for a set's own class list.
pub fn labels_from_xml_for(path: &Path, classes: &[String]) -> Result<Vec<Label>, DataError> {
    let text = std::fs::read_to_string(path).map_err(|e| io(path, e))?;
    let doc = roxmltree::Document::parse(&text).map_err(|e| bad(path, format!("not valid XML: {e}")))?;
    let mut labels = vec![-1i8; classes.len()];
    for obj in doc.descendants().filter(|n| n.has_tag_name("object")) {
        let child =
            |t: &str| obj.children().find(|c| c.has_tag_name(t)).and_then(|c| c.text()).map(str::trim);
        let name = child("name").ok_or_else(|| bad(path, "an <object> without <name>"))?;
        let c = classes
            .iter()
            .position(|n| n == name)
            .ok_or_else(|| bad(path, format!("unknown class {name:?} (not in the class list)")))?;
        let difficult = child("difficult").is_some_and(|d| d == "1");
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
    /// Number of classes including background (K + 1).
    pub classes: usize,
    /// Where the class list came from (named in errors about mask indices).
    pub class_source: String,
    /// The split's list file (named in errors about its entries).
    pub list: PathBuf,
}

impl VocSegmentation {
    /// Reads `ImageSets/Segmentation/<split>.txt`; the split `train_aug` (the augmented set) uses
    /// `SegmentationClassAug`. A listed image or mask that does not exist is reported by
    /// [`Self::load`] (so a run can skip it or stop).
    pub fn open(root: &Path, split: &str) -> Result<Self, DataError> {
        let (classes, source) = class_list(root, None, split)?;
        Self::open_with(root, split, classes.len(), &source)
    }

    /// [`Self::open`] with `k` object classes (indices 0 ..= k; `source`: where the list came from).
    pub fn open_with(root: &Path, split: &str, k: usize, source: &str) -> Result<Self, DataError> {
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
        Ok(Self { root: root.to_owned(), ids, mask_dir, classes: k + 1, list, class_source: source.into() })
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
            return Err(bad(
                &mp,
                format!(
                    "class index {v} out of range 0..{} (255 = void) of the class list ({})",
                    self.classes, self.class_source
                ),
            ));
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
