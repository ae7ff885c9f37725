//! Feature shift (the paper's Fig. 3, section 6.5): how much fine-tuning changes each feature of
//! a pretrained network. For every backbone layer and channel, the Pearson correlation between the
//! channel's activation in two networks of the same architecture (e.g. before and after
//! fine-tuning) on the same inputs, at the same sampled positions. Activations are the
//! pre-ReLU values ([`Backbone::pre_activations`]: normalised convolution outputs, so a pretrained
//! network with BN and its BN-absorbed copy give the same values). Summarised per layer as the
//! median and interquartile range over channels.
use colorproxy_data::Rng;
use serde::Serialize;
use tch::{Device, Kind, Tensor};

use crate::backbone::{Backbone, Tap};
use crate::NnError;

/// Running sums of one channel's paired samples `(a, b)` (float64).
#[derive(Debug, Clone, Copy, Default)]
struct Sums {
    n: f64,
    a: f64,
    b: f64,
    aa: f64,
    bb: f64,
    ab: f64,
}

impl Sums {
    /// Pearson's r; `None` when either side is constant over the samples.
    fn r(&self) -> Option<f64> {
        let n = self.n;
        let cov = self.ab - self.a * self.b / n;
        let va = self.aa - self.a * self.a / n;
        let vb = self.bb - self.b * self.b / n;
        let scale = (self.aa.abs() + self.bb.abs()).max(1e-300);
        (va > 1e-12 * scale && vb > 1e-12 * scale).then(|| (cov / (va * vb).sqrt()).clamp(-1.0, 1.0))
    }
}

/// One layer's shift: every channel's correlation and their quartiles.
#[derive(Debug, Clone, Serialize)]
pub struct LayerShift {
    pub layer: String,
    /// Per channel; `None` for a channel constant on the samples in either network.
    pub correlations: Vec<Option<f64>>,
    pub median: f64,
    pub q1: f64,
    pub q3: f64,
    /// Samples per channel (images x positions).
    pub samples: usize,
}

/// Accumulates paired activations of two networks image by image.
pub struct ShiftAccumulator {
    layers: Vec<(String, Vec<Sums>)>,
    positions: usize,
    rng: Rng,
}

impl ShiftAccumulator {
    /// `positions`: positions sampled per image and layer (all of a map if it has fewer).
    pub fn new(positions: usize, seed: u64) -> Self {
        Self { layers: Vec::new(), positions: positions.max(1), rng: Rng::derive(seed, &[0x5817]) }
    }

    /// Adds one batch of inputs run through both networks (`[B, C, H, W]` inputs, eval mode).
    pub fn add(&mut self, before: &Backbone, after: &Backbone, x: &Tensor) -> Result<(), NnError> {
        let (ta, tb) = (before.pre_activations(x), after.pre_activations(x));
        for (a, b) in ta.iter().zip(&tb).filter(|(a, _)| a.name != "data") {
            self.add_layer(a, b)?;
        }
        Ok(())
    }

    fn add_layer(&mut self, a: &Tap, b: &Tap) -> Result<(), NnError> {
        if a.features.size() != b.features.size() {
            return Err(NnError::Config(format!(
                "layer {}: shapes {:?} and {:?} differ (the same architecture and width are needed)",
                a.name,
                a.features.size(),
                b.features.size()
            )));
        }
        let s = a.features.size();
        let (bsz, c, hw) = (s[0], s[1], s[2] * s[3]);
        // The same positions in both networks: per image, `positions` of the map (with
        // replacement when the map is larger, all of it otherwise).
        let flat = |t: &Tensor| t.to_device(Device::Cpu).to_kind(Kind::Double).reshape([bsz, c, hw]);
        let (fa, fb) = (flat(&a.features), flat(&b.features));
        let idx: Vec<i64> = (0..bsz)
            .flat_map(|_| {
                if hw as usize <= self.positions {
                    (0..hw).collect::<Vec<_>>()
                } else {
                    (0..self.positions).map(|_| self.rng.below(hw as u64) as i64).collect()
                }
            })
            .collect();
        let per = idx.len() as i64 / bsz;
        let index = Tensor::from_slice(&idx).reshape([bsz, 1, per]).expand([bsz, c, per], false);
        // [C, samples]
        let pick = |f: &Tensor| f.gather(2, &index, false).permute([1, 0, 2]).reshape([c, -1]);
        let (pa, pb) = (pick(&fa), pick(&fb));
        let sum = |t: &Tensor| -> Vec<f64> {
            Vec::<f64>::try_from(t.sum_dim_intlist([1i64].as_slice(), false, Kind::Double))
                .unwrap_or_default()
        };
        let (sa, sb, saa, sbb, sab) =
            (sum(&pa), sum(&pb), sum(&(&pa * &pa)), sum(&(&pb * &pb)), sum(&(&pa * &pb)));
        let n = pa.size()[1] as f64;
        let entry = match self.layers.iter_mut().position(|(name, _)| name == a.name) {
            Some(i) => &mut self.layers[i].1,
            None => {
                self.layers.push((a.name.to_string(), vec![Sums::default(); c as usize]));
                &mut self.layers.last_mut().expect("just pushed").1
            }
        };
        for (k, e) in entry.iter_mut().enumerate() {
            e.n += n;
            e.a += sa[k];
            e.b += sb[k];
            e.aa += saa[k];
            e.bb += sbb[k];
            e.ab += sab[k];
        }
        Ok(())
    }

    /// Per layer (in network order): correlations, median and quartiles over the channels that
    /// are not constant.
    pub fn finish(&self) -> Vec<LayerShift> {
        self.layers
            .iter()
            .map(|(name, sums)| {
                let correlations: Vec<Option<f64>> = sums.iter().map(Sums::r).collect();
                let mut v: Vec<f64> = correlations.iter().flatten().copied().collect();
                v.sort_by(f64::total_cmp);
                let q = |p: f64| quantile(&v, p);
                LayerShift {
                    layer: name.clone(),
                    median: q(0.5),
                    q1: q(0.25),
                    q3: q(0.75),
                    samples: sums.first().map(|s| s.n as usize).unwrap_or(0),
                    correlations,
                }
            })
            .collect()
    }
}

/// The `p` quantile of sorted values, linear between order statistics (NaN when empty).
pub fn quantile(sorted: &[f64], p: f64) -> f64 {
    match sorted.len() {
        0 => f64::NAN,
        1 => sorted[0],
        n => {
            let pos = p * (n - 1) as f64;
            let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
            sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
        }
    }
}
