//! Evaluation of a fine-tuned network: dense segmentation (mIoU, pixel accuracy), 10-crop
//! classification (mAP, VOC07 11-point; or top-1/top-5 for class folders).
use std::collections::BTreeMap;

use colorproxy_data::metrics::{ap_report, top_k_accuracy, ConfusionMatrix};
use colorproxy_data::transfer_data::ten_crops;
use colorproxy_data::RgbImage8;
use serde::{Deserialize, Serialize};
use tch::{Device, Kind};

use super::config::TransferConfig;
use super::net::{TransferNet, GRAY_MEAN};
use super::{LabelledSet, Task};
use crate::NnError;

/// Evaluation result: the metric, its value and per-class values.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EvalResult {
    /// `miou` or `map`.
    pub metric: String,
    pub value: f64,
    pub per_class: BTreeMap<String, Option<f64>>,
    /// Extra figures: pixel accuracy, mAP VOC07 11-point.
    pub extra: BTreeMap<String, f64>,
    /// What a network that learned nothing about the images scores on the same images
    /// ([`reference_score`]): its name and value.
    #[serde(default)]
    pub reference: Option<(String, f64)>,
}

/// The reference row of an evaluation, what a network that learned nothing about the images
/// gets: VOC classification, the mAP of a constant scorer (every image the same score for a
/// class, so each class's AP is its share of positives); class folders, the top-1 of always
/// answering the most frequent class; segmentation, the mIoU of labelling every pixel with the
/// most frequent class. Returns its name and value on `subset`.
pub fn reference_score(cfg: &TransferConfig, set: &LabelledSet, subset: &[usize]) -> (String, f64) {
    match cfg.task {
        Task::Seg => {
            let k = cfg.classes() as usize;
            let mut counts = vec![0u64; k];
            for &i in subset {
                for &v in &set.masks[i] {
                    if (v as usize) < k {
                        counts[v as usize] += 1;
                    }
                }
            }
            let major = (0..k).max_by_key(|&c| (counts[c], std::cmp::Reverse(c))).unwrap_or(0) as u8;
            let mut cm = ConfusionMatrix::new(k);
            for &i in subset {
                let pred = vec![major; set.masks[i].len()];
                let _ = cm.add(&set.masks[i], &pred);
            }
            ("majority-class mIoU".into(), cm.report().miou)
        }
        Task::Cls if cfg.single_label() => {
            let mut counts = std::collections::BTreeMap::<usize, usize>::new();
            for &i in subset {
                *counts.entry(set.targets[i]).or_default() += 1;
            }
            let top = counts.values().max().copied().unwrap_or(0);
            ("majority-class top-1".into(), top as f64 / subset.len().max(1) as f64)
        }
        Task::Cls => {
            let labels: Vec<Vec<i8>> = subset.iter().map(|&i| set.labels[i].clone()).collect();
            let scores = vec![vec![0.5f32; cfg.classes() as usize]; subset.len()];
            ("constant-scorer mAP".into(), ap_report(&scores, &labels, &cfg.output_names()).map)
        }
    }
}

/// Dense segmentation of one image at full resolution (or downscaled to `test_max_side` and
/// the logits upsampled back): class indices `[H * W]`.
pub fn segment(net: &TransferNet, img: &RgbImage8) -> Vec<u8> {
    use colorproxy_data::transfer_data::resize_image;
    let max = net.config.test_max_side;
    let (w, h) = (img.width, img.height);
    let work = if max > 0 && w.max(h) > max {
        let s = max as f64 / w.max(h) as f64;
        resize_image(img, ((w as f64 * s).round() as usize).max(1), ((h as f64 * s).round() as usize).max(1))
    } else {
        img.clone()
    };
    tch::no_grad(|| {
        let x = net.input(&[&work], GRAY_MEAN);
        let (ph, pw) = (work.height as i64, work.width as i64);
        let (padh, padw) = ((32 - ph % 32) % 32, (32 - pw % 32) % 32);
        let x = x.replication_pad2d([0, padw, 0, padh]);
        let logits = net.seg_logits_dense(&x).narrow(2, 0, ph).narrow(3, 0, pw);
        let logits = if (work.width, work.height) != (w, h) {
            logits.upsample_bilinear2d([h as i64, w as i64], false, None, None)
        } else {
            logits
        };
        let pred = logits.argmax(1, false).to_kind(Kind::Uint8).to_device(Device::Cpu).flatten(0, -1);
        Vec::<u8>::try_from(pred).expect("u8 tensor")
    })
}

/// Classification scores of one image: `[classes]` (sigmoid probabilities for VOC, softmax for
/// single-label), averaged over the 10 crops, or of the centre crop alone (`test_crops = 1`).
pub fn classify(net: &TransferNet, img: &RgbImage8) -> Vec<f32> {
    let cfg = &net.config;
    let mut crops = ten_crops(img, cfg.test_short_side, cfg.crop);
    if cfg.test_crops == 1 {
        // The fifth of the ten: the centre, not mirrored.
        crops.swap(0, 4);
        crops.truncate(1);
    }
    tch::no_grad(|| {
        let refs: Vec<&RgbImage8> = crops.iter().collect();
        let x = net.input(&refs, GRAY_MEAN);
        let logits = net.cls_logits(&x, false, 0);
        let probs = if cfg.single_label() { logits.softmax(1, Kind::Float) } else { logits.sigmoid() };
        let p = probs.mean_dim([0i64].as_slice(), false, Kind::Float);
        Vec::<f32>::try_from(p.to_device(Device::Cpu)).expect("float tensor")
    })
}

/// Scores a subset of a labelled set; `save` receives each image's index and its segmentation
/// prediction (empty for classification) as it is done.
pub fn evaluate(
    net: &TransferNet,
    set: &LabelledSet,
    subset: &[usize],
    save: &mut dyn FnMut(usize, &[u8]),
) -> Result<EvalResult, NnError> {
    let reference = Some(reference_score(&net.config, set, subset));
    if net.config.single_label() {
        return Ok(EvalResult { reference, ..evaluate_single_label(net, set, subset, save)? });
    }
    let names = net.config.output_names();
    match net.config.task {
        Task::Seg => {
            let mut cm = ConfusionMatrix::new(names.len());
            for &i in subset {
                let pred = segment(net, &set.images[i]);
                save(i, &pred);
                cm.add(&set.masks[i], &pred).map_err(|m| NnError::Config(format!("{}: {m}", set.ids[i])))?;
            }
            let r = cm.report();
            Ok(EvalResult {
                metric: "miou".into(),
                value: r.miou,
                per_class: names.into_iter().zip(r.per_class_iou).collect(),
                extra: BTreeMap::from([("pixel_accuracy".into(), r.pixel_accuracy)]),
                reference,
            })
        }
        Task::Cls => {
            let scores: Vec<Vec<f32>> = subset
                .iter()
                .map(|&i| {
                    let s = classify(net, &set.images[i]);
                    save(i, &[]);
                    s
                })
                .collect();
            let labels: Vec<Vec<i8>> = subset.iter().map(|&i| set.labels[i].clone()).collect();
            let r = ap_report(&scores, &labels, &names);
            Ok(EvalResult {
                metric: "map".into(),
                value: r.map,
                per_class: r.per_class.into_iter().collect(),
                extra: BTreeMap::from([("map_voc07_11point".into(), r.map_voc07)]),
                reference,
            })
        }
    }
}

/// Single-label scoring: top-1 (the value) and top-5 accuracy of the 10-crop softmax, and each
/// class's top-1 accuracy (recall) as `per_class`.
fn evaluate_single_label(
    net: &TransferNet,
    set: &LabelledSet,
    subset: &[usize],
    save: &mut dyn FnMut(usize, &[u8]),
) -> Result<EvalResult, NnError> {
    let (mut scores, mut targets) = (Vec::new(), Vec::new());
    for &i in subset {
        if let Some(img) = set.usable_image(i)? {
            scores.push(classify(net, &img));
            targets.push(set.targets[i]);
        }
        save(i, &[]);
    }
    let names = &net.config.classes;
    let per_class = names
        .iter()
        .enumerate()
        .map(|(c, n)| {
            let (s, t): (Vec<Vec<f32>>, Vec<usize>) =
                scores.iter().zip(&targets).filter(|(_, &t)| t == c).map(|(s, &t)| (s.clone(), t)).unzip();
            (n.clone(), (!t.is_empty()).then(|| top_k_accuracy(&s, &t, 1)))
        })
        .collect();
    Ok(EvalResult {
        metric: "top1".into(),
        value: top_k_accuracy(&scores, &targets, 1),
        per_class,
        extra: BTreeMap::from([
            ("top5".into(), top_k_accuracy(&scores, &targets, 5)),
            ("images".into(), scores.len() as f64),
        ]),
        reference: None,
    })
}
