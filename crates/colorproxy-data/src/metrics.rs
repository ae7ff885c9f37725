//! Evaluation metrics of the transfer tasks: average precision (VOC07 11-point and area under the
//! precision-recall curve), mIoU from a confusion matrix, pixel accuracy, top-k accuracy.
use serde::Serialize;

/// Labels of multi-label classification: 1 positive, -1 negative, 0 ignored ("difficult").
pub type Label = i8;

/// Average precision as area under the precision-recall curve, as scikit-learn's
/// `average_precision_score`: `sum_n (R_n - R_{n-1}) P_n` over the distinct score thresholds,
/// highest first (tied scores form one threshold). Ignored labels (0) are left out. `None` when
/// there is no positive.
pub fn average_precision(scores: &[f32], labels: &[Label]) -> Option<f64> {
    let mut v: Vec<(f32, bool)> =
        scores.iter().zip(labels).filter(|(_, &l)| l != 0).map(|(&s, &l)| (s, l > 0)).collect();
    let positives = v.iter().filter(|x| x.1).count();
    if positives == 0 {
        return None;
    }
    v.sort_by(|a, b| b.0.total_cmp(&a.0));
    let (mut tp, mut fp, mut ap, mut prev_recall) = (0usize, 0usize, 0f64, 0f64);
    let mut i = 0;
    while i < v.len() {
        let s = v[i].0;
        while i < v.len() && v[i].0 == s {
            if v[i].1 {
                tp += 1;
            } else {
                fp += 1;
            }
            i += 1;
        }
        let recall = tp as f64 / positives as f64;
        let precision = tp as f64 / (tp + fp) as f64;
        ap += (recall - prev_recall) * precision;
        prev_recall = recall;
    }
    Some(ap)
}

/// The VOC2007 devkit's 11-point interpolated AP (`VOCevalcls.m`): examples sorted by score
/// (descending, stable), cumulative precision/recall over positives (1) and negatives (-1) with
/// "difficult" (0) examples counting as neither, then the mean over t = 0, 0.1, ..., 1 of the
/// maximum precision at recall >= t (0 if none).
pub fn average_precision_voc07(scores: &[f32], labels: &[Label]) -> Option<f64> {
    let positives = labels.iter().filter(|&&l| l > 0).count();
    if positives == 0 {
        return None;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let (mut tp, mut fp) = (0usize, 0usize);
    let mut pr = Vec::with_capacity(order.len());
    for &i in &order {
        if labels[i] > 0 {
            tp += 1;
        } else if labels[i] < 0 {
            fp += 1;
        }
        let precision = if tp + fp > 0 { tp as f64 / (tp + fp) as f64 } else { f64::NAN };
        pr.push((tp as f64 / positives as f64, precision));
    }
    let mut ap = 0.0;
    for t in 0..=10 {
        let t = t as f64 / 10.0;
        let p = pr.iter().filter(|(r, p)| *r >= t - 1e-12 && !p.is_nan()).map(|x| x.1).fold(0.0, f64::max);
        ap += p / 11.0;
    }
    Some(ap)
}

/// Per-class APs and their means for a multi-label problem. `scores`, `labels`: `[N][C]`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ApReport {
    /// Mean over classes that have a positive, area under the PR curve.
    pub map: f64,
    /// Mean over classes, VOC07 11-point.
    pub map_voc07: f64,
    pub per_class: Vec<(String, Option<f64>)>,
    pub per_class_voc07: Vec<(String, Option<f64>)>,
}

pub fn ap_report(scores: &[Vec<f32>], labels: &[Vec<Label>], class_names: &[String]) -> ApReport {
    let column = |c: usize| -> (Vec<f32>, Vec<Label>) {
        (scores.iter().map(|r| r[c]).collect(), labels.iter().map(|r| r[c]).collect())
    };
    let mut per_class = Vec::new();
    let mut per_class_voc07 = Vec::new();
    for (c, name) in class_names.iter().enumerate() {
        let (s, l) = column(c);
        per_class.push((name.clone(), average_precision(&s, &l)));
        per_class_voc07.push((name.clone(), average_precision_voc07(&s, &l)));
    }
    let mean = |v: &[(String, Option<f64>)]| {
        let xs: Vec<f64> = v.iter().filter_map(|x| x.1).collect();
        if xs.is_empty() {
            0.0
        } else {
            xs.iter().sum::<f64>() / xs.len() as f64
        }
    };
    ApReport { map: mean(&per_class), map_voc07: mean(&per_class_voc07), per_class, per_class_voc07 }
}

/// Pixel value that is ignored (void) in segmentation ground truth.
pub const VOID: u8 = 255;

/// A confusion matrix accumulated over a whole split: `counts[gt * n + pred]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfusionMatrix {
    pub classes: usize,
    pub counts: Vec<u64>,
}

/// mIoU and friends.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SegReport {
    /// Mean IoU over classes present in the ground truth or the prediction.
    pub miou: f64,
    /// IoU per class; `None` for classes absent from both.
    pub per_class_iou: Vec<Option<f64>>,
    pub pixel_accuracy: f64,
}

impl ConfusionMatrix {
    pub fn new(classes: usize) -> Self {
        Self { classes, counts: vec![0; classes * classes] }
    }

    /// Adds an image: `gt` and `pred` of equal length; void ground truth is skipped. Ground truth
    /// or predictions outside `0..classes` are an error.
    pub fn add(&mut self, gt: &[u8], pred: &[u8]) -> Result<(), String> {
        if gt.len() != pred.len() {
            return Err(format!("ground truth has {} pixels, prediction {}", gt.len(), pred.len()));
        }
        let n = self.classes;
        for (&g, &p) in gt.iter().zip(pred) {
            if g == VOID {
                continue;
            }
            if g as usize >= n || p as usize >= n {
                return Err(format!("class index {} out of range 0..{n}", g.max(p)));
            }
            self.counts[g as usize * n + p as usize] += 1;
        }
        Ok(())
    }

    pub fn report(&self) -> SegReport {
        let n = self.classes;
        let mut per_class_iou = Vec::with_capacity(n);
        let (mut correct, mut total) = (0u64, 0u64);
        for c in 0..n {
            let tp = self.counts[c * n + c];
            let gt: u64 = (0..n).map(|p| self.counts[c * n + p]).sum();
            let pred: u64 = (0..n).map(|g| self.counts[g * n + c]).sum();
            let union = gt + pred - tp;
            per_class_iou.push(if union > 0 { Some(tp as f64 / union as f64) } else { None });
            correct += tp;
            total += gt;
        }
        let present: Vec<f64> = per_class_iou.iter().filter_map(|x| *x).collect();
        SegReport {
            miou: if present.is_empty() { 0.0 } else { present.iter().sum::<f64>() / present.len() as f64 },
            per_class_iou,
            pixel_accuracy: if total > 0 { correct as f64 / total as f64 } else { 0.0 },
        }
    }
}

/// Top-k accuracy of single-label predictions: `scores` `[N][C]`, `labels` `[N]`.
pub fn top_k_accuracy(scores: &[Vec<f32>], labels: &[usize], k: usize) -> f64 {
    if scores.is_empty() {
        return 0.0;
    }
    let hits = scores
        .iter()
        .zip(labels)
        .filter(|(s, &l)| {
            let better = s.iter().filter(|&&v| v > s[l]).count();
            better < k
        })
        .count();
    hits as f64 / scores.len() as f64
}
