//! [`SparseHypercolumn`]: each listed layer's feature map bilinearly sampled at the sampled points
//! and concatenated (the paper's sparse hypercolumn, section 3).
//!
//! Pixel-centre convention: a feature at index `i` of a layer with stride `s` is centred on input
//! pixel `i * s + (s - 1) / 2`. Input pixel `p` therefore maps to layer coordinate
//! `(p - (s - 1) / 2) / s`, clamped to `[0, size - 1]` (offsets 0, 0.5, 1.5 for strides 1, 2, 4,
//! as in the authors' example). This is exactly PyTorch's `align_corners=False` bilinear
//! upsampling by `s`, so the sparse result equals dense upsampling evaluated at the points.
use tch::{Kind, Tensor};

use crate::backbone::Tap;

/// Samples taps at points.
#[derive(Debug, Clone)]
pub struct SparseHypercolumn {
    /// Names of the layers to use, in order.
    pub layers: Vec<String>,
}

impl SparseHypercolumn {
    pub fn new(layers: Vec<String>) -> Self {
        Self { layers }
    }

    /// The dense hypercolumn at 1/4 of the input resolution, `[B, C, H/4, W/4]` (the authors'
    /// dense colorizer and segmenter): stride-1 and stride-2 layers average-pooled down,
    /// stride-4 layers as they are, deeper layers upsampled bilinearly with the same pixel-centre
    /// convention as the sparse sampling. `size`: the input's `(H, W)`, multiples of 32.
    pub fn dense_quarter(&self, taps: &[Tap], size: (i64, i64)) -> Tensor {
        let (h4, w4) = (size.0 / 4, size.1 / 4);
        let parts: Vec<Tensor> = self
            .layers
            .iter()
            .map(|name| {
                let t =
                    taps.iter().find(|t| t.name == name).expect("layer list validated against the backbone");
                let fs = t.features.size();
                let exact = fs[2] * t.scale == size.0 && fs[3] * t.scale == size.1;
                match t.scale {
                    k if k < 4 => {
                        t.features.avg_pool2d([4 / k, 4 / k], [4 / k, 4 / k], [0, 0], false, true, None)
                    }
                    // A map that is not exactly input/scale (AlexNet's 11x11 stride-4 conv1 and
                    // the layers after it): sampled at the 4x4 cells' centres like the sparse path.
                    _ if !exact => {
                        let dev = t.features.device();
                        let ys = Tensor::arange(h4, (Kind::Float, dev)) * 4.0 + 1.5;
                        let xs = Tensor::arange(w4, (Kind::Float, dev)) * 4.0 + 1.5;
                        let grid = Tensor::stack(
                            &[
                                ys.view([-1, 1]).expand([h4, w4], false),
                                xs.view([1, -1]).expand([h4, w4], false),
                            ],
                            -1,
                        )
                        .reshape([1, h4 * w4, 2])
                        .expand([fs[0], h4 * w4, 2], false);
                        sample_at(&t.features, t.scale, &grid).reshape([fs[0], fs[1], h4, w4])
                    }
                    4 => t.features.shallow_clone(),
                    _ => t.features.upsample_bilinear2d([h4, w4], false, None, None),
                }
            })
            .collect();
        Tensor::cat(&parts, 1)
    }

    /// `taps`: the backbone's outputs; `points`: `[B, P, 2]` (y, x) in input pixels (any numeric
    /// kind). Returns `[B * P, C]` with `C` the sum of the listed layers' channels.
    pub fn forward(&self, taps: &[Tap], points: &Tensor) -> Tensor {
        let (b, p) = (points.size()[0], points.size()[1]);
        let parts: Vec<Tensor> = self
            .layers
            .iter()
            .map(|name| {
                let tap =
                    taps.iter().find(|t| t.name == name).expect("layer list validated against the backbone");
                sample_at(&tap.features, tap.scale, points)
            })
            .collect();
        Tensor::cat(&parts, 1).permute([0, 2, 1]).reshape([b * p, -1])
    }
}

/// Bilinear samples of `features` `[B, C, H, W]` (stride `scale`) at `points` `[B, P, 2]` (y, x
/// in input pixels): `[B, C, P]`.
pub fn sample_at(features: &Tensor, scale: i64, points: &Tensor) -> Tensor {
    let size = features.size();
    let (h, w) = (size[2], size[3]);
    let pts = points.to_kind(features.kind()).to_device(features.device());
    let off = (scale as f64 - 1.0) / 2.0;
    let norm = |c: Tensor, n: i64| -> Tensor {
        let c = ((c - off) / scale as f64).clamp(0.0, (n - 1) as f64);
        if n > 1 {
            c * (2.0 / (n - 1) as f64) - 1.0
        } else {
            c * 0.0
        }
    };
    let gy = norm(pts.select(2, 0), h);
    let gx = norm(pts.select(2, 1), w);
    let grid = Tensor::stack(&[gx, gy], -1).unsqueeze(2); // [B, P, 1, 2] as (x, y)
                                                          // interpolation 0 = bilinear, padding 1 = border, align_corners = true (grid in index units).
    features.grid_sampler_2d(&grid, 0, 1, true).squeeze_dim(-1)
}

/// The dense reference: each tap upsampled by its stride with `align_corners=False` bilinear
/// interpolation to `[B, C, H*s, W*s]`.
pub fn dense_upsample(tap: &Tap) -> Tensor {
    let s = tap.features.size();
    tap.features.upsample_bilinear2d([s[2] * tap.scale, s[3] * tap.scale], false, None, None)
}

/// Points as a float tensor from the batch's integer `[B, P, 2]` coordinates.
pub fn points_tensor(points: &[i64], batch: i64, per_image: i64) -> Tensor {
    Tensor::from_slice(points).reshape([batch, per_image, 2]).to_kind(Kind::Float)
}
