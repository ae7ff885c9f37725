//! Top activations (the paper's Fig. 5 and Fig. 2): for chosen features (channels) of a layer,
//! the N strongest activations over all positions of all images, at most one per image, each
//! located as the receptive field of its unit (the input patch it sees), to show what a feature
//! responds to. Values are the pre-ReLU activations ([`Backbone::pre_activations`]).
use tch::{Device, Kind, Tensor};

use crate::backbone::arch::ReceptiveField;
use crate::backbone::Backbone;
use crate::NnError;

/// One top activation: its value, the image (index in the order given) and the unit's position
/// in the layer's map.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct TopUnit {
    pub value: f64,
    pub image: usize,
    pub y: i64,
    pub x: i64,
}

/// The N best units per feature, over images added one by one.
pub struct TopActivations {
    pub layer: String,
    pub features: Vec<i64>,
    n: usize,
    /// Per feature, best first.
    best: Vec<Vec<TopUnit>>,
}

impl TopActivations {
    pub fn new(layer: &str, features: Vec<i64>, n: usize) -> Self {
        let best = vec![Vec::new(); features.len()];
        Self { layer: layer.to_string(), features, n: n.max(1), best }
    }

    /// Adds image `image` (input `[1, C, H, W]`): each feature's strongest unit in it.
    pub fn add(&mut self, net: &Backbone, image: usize, x: &Tensor) -> Result<(), NnError> {
        let taps = net.pre_activations(x);
        let tap = taps.iter().find(|t| t.name == self.layer).ok_or_else(|| {
            NnError::Config(format!(
                "layer {:?} is not a layer of the network ({})",
                self.layer,
                taps.iter().map(|t| t.name).collect::<Vec<_>>().join(", ")
            ))
        })?;
        let f = tap.features.to_device(Device::Cpu).to_kind(Kind::Double);
        let (c, w) = (f.size()[1], f.size()[3]);
        if let Some(&bad) = self.features.iter().find(|&&k| k < 0 || k >= c) {
            return Err(NnError::Config(format!("feature {bad}: layer {} has {c} channels", self.layer)));
        }
        for (k, &ch) in self.features.iter().enumerate() {
            let map = f.get(0).get(ch).reshape([-1]);
            let pos = map.argmax(0, false).int64_value(&[]);
            let unit = TopUnit { value: map.double_value(&[pos]), image, y: pos / w, x: pos % w };
            let list = &mut self.best[k];
            let at = list.iter().position(|u| u.value < unit.value).unwrap_or(list.len());
            if at < self.n {
                list.insert(at, unit);
                list.truncate(self.n);
            }
        }
        Ok(())
    }

    /// Per feature (in the order of `features`), the best units, strongest first.
    pub fn results(&self) -> &[Vec<TopUnit>] {
        &self.best
    }
}

/// A unit's receptive field in input pixels, `(x0, y0, x1, y1)` inclusive, clipped to a
/// `width x height` input: the pixels whose values can change the unit's activation.
pub fn patch_box(rf: &ReceptiveField, y: i64, x: i64, width: i64, height: i64) -> (i64, i64, i64, i64) {
    let half = (rf.size - 1) as f64 / 2.0;
    let span = |i: i64, limit: i64| {
        let c = rf.start + (i * rf.stride) as f64;
        (((c - half).ceil() as i64).clamp(0, limit - 1), ((c + half).floor() as i64).clamp(0, limit - 1))
    };
    let ((x0, x1), (y0, y1)) = (span(x, width), span(y, height));
    (x0, y0, x1, y1)
}
