//! VOC devkit loaders: the shared voc-mini set (facts from its README) and generated malformed
//! sets.
use std::path::Path;

use colorproxy_data::voc::{labels_from_xml, read_mask, VocClassification, VocSegmentation};

fn write_palette_png(path: &Path, w: u32, h: u32, idx: &[u8]) {
    let f = std::fs::File::create(path).unwrap();
    let mut enc = png::Encoder::new(std::io::BufWriter::new(f), w, h);
    enc.set_color(png::ColorType::Indexed);
    enc.set_depth(png::BitDepth::Eight);
    enc.set_palette((0..256).flat_map(|i| [i as u8, (i * 3) as u8, (i * 7) as u8]).collect::<Vec<u8>>());
    enc.write_header().unwrap().write_image_data(idx).unwrap();
}

fn make_voc(root: &Path, masks: &[(&str, u32, u32, Vec<u8>)], image_size: (u32, u32)) {
    for d in ["JPEGImages", "SegmentationClass", "ImageSets/Segmentation", "ImageSets/Main"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    let mut list = String::new();
    for (id, w, h, m) in masks {
        image::RgbImage::from_pixel(image_size.0, image_size.1, image::Rgb([10, 200, 30]))
            .save(root.join(format!("JPEGImages/{id}.jpg")))
            .unwrap();
        write_palette_png(&root.join(format!("SegmentationClass/{id}.png")), *w, *h, m);
        list.push_str(id);
        list.push('\n');
    }
    std::fs::write(root.join("ImageSets/Segmentation/train.txt"), list).unwrap();
}

#[test]
fn masks_are_read_as_raw_indices_and_malformed_sets_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let ok: Vec<u8> = vec![0, 15, 255, 5, 0, 0];
    make_voc(tmp.path(), &[("a", 3, 2, ok.clone())], (3, 2));
    let (w, h, m) = read_mask(&tmp.path().join("SegmentationClass/a.png")).unwrap();
    assert_eq!((w, h, m.clone()), (3, 2, ok));
    let set = VocSegmentation::open(tmp.path(), "train").unwrap();
    assert_eq!(set.load(0).unwrap().1, m);

    // Mask size differs from the image.
    let t2 = tempfile::tempdir().unwrap();
    make_voc(t2.path(), &[("b", 2, 2, vec![0; 4])], (3, 2));
    let e = VocSegmentation::open(t2.path(), "train").unwrap().load(0).unwrap_err().to_string();
    assert!(e.contains("b.png") && e.contains("2x2"), "{e}");
    // Class index out of range.
    let t3 = tempfile::tempdir().unwrap();
    make_voc(t3.path(), &[("c", 2, 1, vec![0, 42])], (2, 1));
    let e = VocSegmentation::open(t3.path(), "train").unwrap().load(0).unwrap_err().to_string();
    assert!(e.contains("c.png") && e.contains("42"), "{e}");
    // A listed image that is missing.
    std::fs::write(t3.path().join("ImageSets/Segmentation/train.txt"), "c\nghost\n").unwrap();
    let set = VocSegmentation::open(t3.path(), "train").unwrap();
    let e = set.load(1).unwrap_err().to_string();
    assert!(e.contains("ghost") && e.contains("train.txt") && e.contains("does not exist"), "{e}");

    // Annotations: difficult-only classes are 0, others 1, absent -1.
    let xml = tmp.path().join("x.xml");
    std::fs::write(
        &xml,
        "<annotation><object><name>dog</name><difficult>0</difficult></object>\
         <object><name>cat</name><difficult>1</difficult></object></annotation>",
    )
    .unwrap();
    let l = labels_from_xml(&xml).unwrap();
    assert_eq!((l[11], l[7], l[0]), (1, 0, -1));
}

#[test]
fn shared_voc_mini_matches_its_readme() {
    let Some(root) = std::env::var_os("COLORPROXY_SHARED_DATA") else { return };
    let root = Path::new(&root).join("voc-mini");
    let val = VocSegmentation::open(&root, "val").unwrap();
    assert_eq!(val.ids, vec!["2011_000003"]);
    let (img, mask) = val.load(0).unwrap();
    assert_eq!((img.width, img.height), (500, 338));
    assert_eq!(mask.iter().filter(|&&v| v == 255).count(), 9460);
    let mut classes: Vec<u8> = mask.iter().cloned().filter(|&v| v != 255).collect();
    classes.sort();
    classes.dedup();
    assert_eq!(classes, vec![0, 5, 15]);
    assert_eq!(VocSegmentation::open(&root, "train").unwrap().ids.len(), 3);
    let cls = VocClassification::open(&root, "trainval").unwrap();
    assert_eq!(cls.ids.len(), 4);
    let i = cls.ids.iter().position(|x| x == "2011_000025").unwrap();
    // bus (5) and car (6) positive, person (14) negative.
    assert_eq!((cls.labels[i][5], cls.labels[i][6], cls.labels[i][14]), (1, 1, -1));
}

#[test]
fn generated_scenes_are_deterministic_and_colour_is_not_the_label() {
    use colorproxy_data::synth::{scene, write_voc, SYNTH_CLASSES};
    let (a, ma) = scene(7, 3, 64);
    let (b, mb) = scene(7, 3, 64);
    assert_eq!((a.data.clone(), ma.clone()), (b.data, mb));
    assert_ne!(scene(8, 3, 64).0.data, a.data);
    // Over many scenes: every class appears, and each class shows more than one dominant hue
    // while some hue is shared by two classes.
    let mut hues: Vec<std::collections::BTreeSet<u8>> = vec![Default::default(); 6];
    for i in 0..200 {
        let (img, m) = scene(1, i, 64);
        for (p, &c) in img.data.chunks(3).zip(&m) {
            if c > 0 {
                let (h, ch) = colorproxy_color::hue_chroma(
                    p[0] as f32 / 255.0,
                    p[1] as f32 / 255.0,
                    p[2] as f32 / 255.0,
                );
                if ch > 0.3 {
                    hues[c as usize].insert((h * 12.0) as u8);
                }
            }
        }
    }
    for &c in &SYNTH_CLASSES {
        assert!(hues[c].len() >= 2, "class {c} hues {:?}", hues[c]);
    }
    let shared = (1..6).any(|i| (i + 1..6).any(|j| !hues[i].is_disjoint(&hues[j])));
    assert!(shared);
    // The VOC-style set goes through the VOC loaders.
    let tmp = tempfile::tempdir().unwrap();
    write_voc(tmp.path(), 0, 0, 6, 3, 64).unwrap();
    let seg = VocSegmentation::open(tmp.path(), "train").unwrap();
    let (img, mask) = seg.load(0).unwrap();
    assert_eq!((img.width, mask.len()), (64, 64 * 64));
    let cls = VocClassification::open(tmp.path(), "val").unwrap();
    assert_eq!(cls.ids.len(), 3);
}

#[test]
fn voc_palette_matches_the_devkit_colours() {
    use colorproxy_data::palette::voc_colour;
    // From the VOC devkit colour map (and ../shared/data/voc-mini's README for 255).
    assert_eq!(voc_colour(0), [0, 0, 0]);
    assert_eq!(voc_colour(1), [128, 0, 0]);
    assert_eq!(voc_colour(15), [192, 128, 128]);
    assert_eq!(voc_colour(255), [224, 224, 192]);
}

#[test]
fn skip_bad_leaves_out_an_annotation_that_is_not_xml_and_names_it() {
    use colorproxy_data::{load_split, OnBad, Task};
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    for d in ["JPEGImages", "Annotations", "ImageSets/Main"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    for id in ["a", "b", "c"] {
        image::RgbImage::from_pixel(8, 8, image::Rgb([10, 200, 30]))
            .save(root.join(format!("JPEGImages/{id}.jpg")))
            .unwrap();
        std::fs::write(
            root.join(format!("Annotations/{id}.xml")),
            "<annotation><object><name>dog</name><difficult>0</difficult></object></annotation>",
        )
        .unwrap();
    }
    std::fs::write(root.join("Annotations/b.xml"), "\u{89}PNG not xml at all").unwrap();
    std::fs::write(root.join("ImageSets/Main/train.txt"), "a\nb\nc\n").unwrap();
    // Without --skip-bad: an error naming the file.
    let e = VocClassification::open(root, "train").unwrap_err().to_string();
    assert!(e.contains("b.xml") && e.contains("not valid XML"), "{e}");
    let mut notes = vec![];
    let e = load_split(Task::Cls, root, "train", OnBad::Stop, &mut |m| notes.push(m.to_string()));
    assert!(e.is_err());
    // With it: the other two images, the bad one named and counted.
    let set = load_split(Task::Cls, root, "train", OnBad::Skip, &mut |m| notes.push(m.to_string())).unwrap();
    assert_eq!(set.ids, ["a", "c"]);
    assert_eq!(set.skipped.load(std::sync::atomic::Ordering::Relaxed), 1);
    assert!(notes.iter().any(|n| n.contains("skipped") && n.contains("b.xml")), "{notes:?}");
}
