//! A VOC-layout set with its own 3 classes (as CVAT, LabelImg or labelme export them) trains and
//! evaluates for both tasks; a class list that disagrees with the split files or the masks is an
//! error naming the file.
use std::path::Path;
use std::process::{Command, Output};

const CLASSES: [&str; 3] = ["kettle", "tree", "scooter"];

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_colorproxy"));
    c.env("CI", "1").env("OMP_NUM_THREADS", "1");
    c
}

/// 64x64 images with one or two coloured squares of classes 1..=3 on a gray background.
fn write_set(root: &Path, n_train: usize, n_val: usize) {
    for d in ["JPEGImages", "SegmentationClass", "ImageSets/Main", "ImageSets/Segmentation"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    let colours = [[200u8, 40, 40], [40, 170, 60], [50, 60, 210]];
    let mut lists = std::collections::BTreeMap::<(String, String), String>::new();
    for (split, range) in [("train", 0..n_train), ("val", n_train..n_train + n_val)] {
        let mut ids = String::new();
        for i in range {
            let id = format!("img{i:03}");
            let mut rgb = image::RgbImage::from_pixel(64, 64, image::Rgb([128, 128, 128]));
            let mut mask = vec![0u8; 64 * 64];
            let objs = [(i % 3, 4 + (i * 7) % 20, 6), (((i / 3) + 1) % 3, 30, 30 + (i * 5) % 10)];
            let mut present = [false; 3];
            for (k, &(c, x0, y0)) in objs.iter().enumerate().take(1 + i % 2) {
                let _ = k;
                present[c] = true;
                for y in y0..y0 + 24 {
                    for x in x0..x0 + 24 {
                        rgb.put_pixel(x as u32, y as u32, image::Rgb(colours[c]));
                        mask[y * 64 + x] = c as u8 + 1;
                    }
                }
            }
            rgb.save(root.join(format!("JPEGImages/{id}.jpg"))).unwrap();
            colorproxy_data::voc::write_class_png(
                &root.join(format!("SegmentationClass/{id}.png")),
                64,
                64,
                &mask,
            )
            .unwrap();
            ids.push_str(&format!("{id}\n"));
            for (c, name) in CLASSES.iter().enumerate() {
                let l = if present[c] { "1" } else { "-1" };
                lists
                    .entry((name.to_string(), split.to_string()))
                    .or_default()
                    .push_str(&format!("{id} {l}\n"));
            }
        }
        std::fs::write(root.join(format!("ImageSets/Segmentation/{split}.txt")), &ids).unwrap();
    }
    for ((c, split), body) in lists {
        std::fs::write(root.join(format!("ImageSets/Main/{c}_{split}.txt")), body).unwrap();
    }
    std::fs::write(root.join("class_names.txt"), format!("background\n{}\n", CLASSES.join("\n"))).unwrap();
}

fn finetune(task: &str, data: &Path, out: &Path) -> Output {
    bin()
        .args(["finetune", task, "--init", "random", "--max-iterations", "40", "--data"])
        .arg(data)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap()
}

#[test]
fn a_set_with_its_own_three_classes_trains_and_evaluates_for_both_tasks() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("set");
    write_set(&data, 12, 6);
    for task in ["seg", "cls"] {
        let run = tmp.path().join(task);
        let o = finetune(task, &data, &run);
        assert!(o.status.success(), "{task}: {}", text(&o));
        let cfg = std::fs::read_to_string(run.join("config.toml")).unwrap();
        assert!(cfg.contains("classes = [") && CLASSES.iter().all(|c| cfg.contains(c)), "{cfg}");
        let r: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(run.join("results.json")).unwrap()).unwrap();
        let per_class = r["per_class"].as_object().unwrap();
        let expect = if task == "seg" { 4 } else { 3 };
        assert_eq!(per_class.len(), expect, "{r}");
        assert!(CLASSES.iter().all(|c| per_class.contains_key(*c)), "{r}");
        assert!(r["reference"][1].as_f64().is_some(), "no reference row: {r}");
        // eval reads the classes from the network's config.
        let o = bin()
            .args(["eval", task, "--split", "val", "--json", "--checkpoint"])
            .arg(run.join("checkpoints/last.safetensors"))
            .arg("--data")
            .arg(&data)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["per_class"].as_object().unwrap().len(), expect, "{v}");
    }
}

#[test]
fn a_class_list_that_disagrees_with_the_data_is_an_error_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("set");
    write_set(&data, 6, 3);
    // The class list drops "scooter": its split files and its mask index are now unknown.
    std::fs::write(data.join("class_names.txt"), "background\nkettle\ntree\n").unwrap();
    let o = finetune("cls", &data, &tmp.path().join("cls"));
    assert!(!o.status.success() && text(&o).contains("scooter_train.txt"), "{}", text(&o));
    let o = finetune("seg", &data, &tmp.path().join("seg"));
    assert!(
        !o.status.success() && text(&o).contains("SegmentationClass") && text(&o).contains("class_names.txt"),
        "{}",
        text(&o)
    );
    // A --classes file naming a class without split files.
    std::fs::write(tmp.path().join("classes.txt"), "kettle\ntree\nscooter\nboat\n").unwrap();
    let o = bin()
        .args(["finetune", "cls", "--init", "random", "--max-iterations", "5", "--classes"])
        .arg(tmp.path().join("classes.txt"))
        .arg("--data")
        .arg(&data)
        .arg("--out")
        .arg(tmp.path().join("cls2"))
        .output()
        .unwrap();
    assert!(!o.status.success() && text(&o).contains("boat_train.txt"), "{}", text(&o));
}
