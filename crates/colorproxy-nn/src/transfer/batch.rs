//! The training batch of one fine-tuning step (random views of training images, points for
//! segmentation) and its loss: cross-entropy at the points ignoring void (segmentation), sigmoid
//! cross-entropy ignoring difficult labels (VOC classification) or softmax cross-entropy
//! (class folders).
use std::borrow::Cow;
use std::ops::Range;

use colorproxy_data::metrics::VOID;
use colorproxy_data::transfer_data::{random_view, ViewSpec};
use colorproxy_data::{RgbImage8, Rng};
use rayon::prelude::*;
use tch::{Kind, Tensor};

use super::config::TransferConfig;
use super::net::{TransferNet, GRAY_MEAN};
use super::{LabelledSet, Task};
use crate::model::ToDev;
use crate::NnError;

/// One training batch: views `[crop, crop, 3]`, their masks, points `[B * P * 2]` (y, x) and
/// labels (VOC multi-label) or class indices (single-label).
struct TrainBatch {
    views: Vec<RgbImage8>,
    masks: Vec<Vec<u8>>,
    points: Vec<i64>,
    labels: Vec<Vec<i8>>,
    targets: Vec<i64>,
}

/// Image `idx[pos]`, or with `OnBad::Skip` the next one in `idx` that decodes (each failure
/// counted in `set.skipped`): `(set index, image)`.
fn train_image<'a>(
    set: &'a LabelledSet,
    idx: &[usize],
    pos: usize,
) -> Result<(usize, Cow<'a, RgbImage8>), NnError> {
    for k in 0..idx.len().min(64) {
        let i = idx[(pos + k) % idx.len()];
        if let Some(img) = set.usable_image(i)? {
            return Ok((i, img));
        }
    }
    Err(NnError::Config(format!("{} consecutive training images failed to decode", idx.len().min(64))))
}

fn build_batch(
    cfg: &TransferConfig,
    set: &LabelledSet,
    idx: &[usize],
    it: usize,
    slots: Range<usize>,
) -> Result<TrainBatch, NnError> {
    let spec = ViewSpec {
        short_side: cfg.short_side,
        scale_min: cfg.scale_min,
        scale_max: cfg.scale_max,
        crop: cfg.crop,
        mirror: true,
    };
    let views: Vec<_> = slots
        .into_par_iter()
        .map(|slot| {
            let mut rng = Rng::derive(cfg.seed, &[0x7A, it as u64, slot as u64]);
            let (i, img) = train_image(set, idx, rng.below(idx.len() as u64) as usize)?;
            let mask = set.masks.get(i).map(|m| m.as_slice());
            let (img, m) = random_view(&img, mask, &spec, &mut rng);
            let span = (cfg.crop - 2 * cfg.border.min(cfg.crop / 2 - 1)) as u64;
            let b = cfg.border.min(cfg.crop / 2 - 1);
            let pts: Vec<i64> = (0..cfg.points)
                .flat_map(|_| [b as i64 + rng.below(span) as i64, b as i64 + rng.below(span) as i64])
                .collect();
            let target = set.targets.get(i).map(|&t| t as i64).unwrap_or(-1);
            Ok((img, m.unwrap_or_default(), pts, set.labels.get(i).cloned().unwrap_or_default(), target))
        })
        .collect::<Result<_, NnError>>()?;
    let mut out =
        TrainBatch { views: vec![], masks: vec![], points: vec![], labels: vec![], targets: vec![] };
    for (a, b, c, d, t) in views {
        out.views.push(a);
        out.masks.push(b);
        out.points.extend(c);
        out.labels.push(d);
        out.targets.push(t);
    }
    Ok(out)
}

/// The loss of slots `slots` of the training batch of iteration `it` (all of it in one
/// process; a rank's share in data-parallel runs), and how many terms it is the mean of (valid
/// points, labelled class entries or images), so that ranks can weight their shares exactly.
pub fn batch_loss(
    net: &TransferNet,
    cfg: &TransferConfig,
    set: &LabelledSet,
    idx: &[usize],
    it: usize,
    slots: Range<usize>,
) -> Result<(Tensor, f64), NnError> {
    let TrainBatch { views: imgs, masks, points: pts, labels, targets: classes } =
        build_batch(cfg, set, idx, it, slots)?;
    let refs: Vec<&RgbImage8> = imgs.iter().collect();
    let x = net.input(&refs, GRAY_MEAN);
    let dev = net.vs.device();
    let key = crate::init::dropout_key(cfg.seed, it as u64, 1);
    Ok(match cfg.task {
        Task::Seg => {
            let b = imgs.len() as i64;
            let p = cfg.points as i64;
            let points = Tensor::from_slice(&pts).reshape([b, p, 2]);
            let targets: Vec<i64> = (0..imgs.len())
                .flat_map(|k| {
                    let m = &masks[k];
                    let pts = &pts;
                    (0..cfg.points).map(move |j| {
                        let (y, xx) = (
                            pts[(k * cfg.points + j) * 2] as usize,
                            pts[(k * cfg.points + j) * 2 + 1] as usize,
                        );
                        let v = m[y * cfg.crop + xx];
                        if v == VOID {
                            -100
                        } else {
                            v as i64
                        }
                    })
                })
                .collect();
            let logits = net.seg_logits_sparse(&x, &points.to_kind(Kind::Float).to_dev(dev), true, key);
            let t = Tensor::from_slice(&targets).to_dev(dev);
            // Mean over non-void points; a batch of only void points gives 0.
            let valid = t.ne(-100).sum(Kind::Float);
            let count = valid.double_value(&[]);
            (
                logits.cross_entropy_loss::<Tensor>(&t, None, tch::Reduction::Sum, -100, 0.0)
                    / valid.clamp_min(1.0),
                count,
            )
        }
        Task::Cls if cfg.single_label() => {
            let t = Tensor::from_slice(&classes).to_dev(dev);
            (net.cls_logits(&x, true, key).cross_entropy_for_logits(&t), imgs.len() as f64)
        }
        Task::Cls => {
            let l: Vec<f32> = labels.iter().flatten().map(|&v| if v > 0 { 1.0 } else { 0.0 }).collect();
            let m: Vec<f32> = labels.iter().flatten().map(|&v| if v != 0 { 1.0 } else { 0.0 }).collect();
            let (n, k) = (labels.len() as i64, cfg.classes());
            let target = Tensor::from_slice(&l).reshape([n, k]).to_dev(dev);
            let mask = Tensor::from_slice(&m).reshape([n, k]).to_dev(dev);
            let logits = net.cls_logits(&x, true, key);
            let per =
                logits.binary_cross_entropy_with_logits::<Tensor>(&target, None, None, tch::Reduction::None);
            let count = mask.sum(Kind::Float);
            let n = count.double_value(&[]);
            ((per * &mask).sum(Kind::Float) / count.clamp_min(1.0), n)
        }
    })
}
