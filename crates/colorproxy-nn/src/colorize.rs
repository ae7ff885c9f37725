//! Dense colorization with a pretrained network (the authors' colorizer).
//!
//! The input is resized so its shorter side is `short_side` (by default the middle of the
//! training range, so the network sees objects at the scale it learnt) and its longer side at most
//! `max_side`, which bounds memory for any image size; padded to a
//! multiple of 32 (replicated border); the hypercolumn is built for every position at 1/4
//! resolution (stride-1 and stride-2 layers average-pooled down, deeper layers upsampled
//! bilinearly with the same pixel-centre convention as the sparse hypercolumn); the head runs
//! as 1x1 convolutions, softmax, then the histograms are upsampled x4 and resized to the input's
//! size, and turned into colour with the input's own gray (see `colorproxy_color::reconstruct`).
use std::path::Path;

use colorproxy_color::reconstruct::{pixel_from_hists, ReconstructOptions};
use colorproxy_data::RgbImage8;
use tch::{Device, Kind, Tensor};

use crate::checkpoint::load_weights;
use crate::config::{ColorLoss, PretrainConfig};
use crate::head::HeadOutput;
use crate::model::ColorizationNet;
use crate::NnError;

/// Options of the colorizer.
#[derive(Debug, Clone, Copy)]
pub struct ColorizeOptions {
    pub reconstruct: ReconstructOptions,
    /// Shorter side of the processing size, in pixels.
    pub short_side: usize,
    /// Longer side at most this.
    pub max_side: usize,
}

impl ColorizeOptions {
    /// Defaults for a network pretrained with `config`: the middle of its training range of
    /// shorter sides, longer side at most twice that.
    pub fn for_config(config: &PretrainConfig) -> Self {
        let a = &config.data.augment;
        let short = ((a.short_side_min + a.short_side_max) / 2) as usize;
        Self { reconstruct: ReconstructOptions::default(), short_side: short, max_side: 2 * short }
    }
}

/// A colorized image: `rgb` `[H, W, 3]` 8-bit, `hue_entropy` `[H, W]` in [0, 1] (entropy of the
/// predicted hue histogram divided by log(bins)).
pub struct Colorized {
    pub width: usize,
    pub height: usize,
    pub rgb: Vec<u8>,
    pub hue_entropy: Vec<f32>,
}

/// A pretrained colorization network ready for dense inference.
pub struct Colorizer {
    pub net: ColorizationNet,
    pub config: PretrainConfig,
    pub options: ColorizeOptions,
}

impl Colorizer {
    /// Loads weights written by `pretrain` with the run's config.
    pub fn load(
        weights: &Path,
        config: PretrainConfig,
        device: Device,
        options: ColorizeOptions,
    ) -> Result<Self, NnError> {
        if config.model.loss != ColorLoss::Histogram {
            return Err(NnError::Config(format!(
                "{}: colorize needs a network trained with the histogram loss (this one uses {:?})",
                weights.display(),
                config.model.loss
            )));
        }
        let t = &config.targets;
        let mut net = ColorizationNet::new(
            &config.model,
            t.hue_bins as i64,
            t.chroma_bins as i64,
            device,
            config.seed,
        )?;
        load_weights(&mut net.vs, weights)?;
        Ok(Self { net, config, options })
    }

    /// The processing size for an image of `w x h`.
    pub fn processing_size(&self, w: usize, h: usize) -> (usize, usize) {
        let (short, long) = (w.min(h) as f64, w.max(h) as f64);
        let mut s = self.options.short_side as f64 / short;
        if long * s > self.options.max_side as f64 {
            s = self.options.max_side as f64 / long;
        }
        (((w as f64 * s).round() as usize).max(1), ((h as f64 * s).round() as usize).max(1))
    }

    /// Per-pixel hue and chroma probabilities at the image's own size: two `[K, H, W]` tensors.
    pub fn predict(&self, img: &RgbImage8) -> (Tensor, Tensor) {
        let dev = self.net.vs.device();
        let (w, h) = (img.width, img.height);
        let gray: Vec<f32> = img
            .data
            .chunks_exact(3)
            .map(|p| (p[0] as f32 + p[1] as f32 + p[2] as f32) / (3.0 * 255.0))
            .collect();
        let (pw, ph) = self.processing_size(w, h);
        tch::no_grad(|| {
            let g = Tensor::from_slice(&gray).reshape([1, 1, h as i64, w as i64]).to_device(dev);
            let g = if (pw, ph) == (w, h) {
                g
            } else {
                g.internal_upsample_bilinear2d_aa([ph as i64, pw as i64], false, None, None)
            };
            let x = g - self.config.targets.gray_mean as f64;
            let (padh, padw) = ((32 - ph % 32) % 32, (32 - pw % 32) % 32);
            let x = x.replication_pad2d([0, padw as i64, 0, padh as i64]);
            let (hp, wp) = ((ph + padh) as i64, (pw + padw) as i64);
            let (h4, w4) = (hp / 4, wp / 4);
            let taps = self.net.backbone.forward_taps(&x, false, 0);
            let hc = self.net.hypercolumn.dense_quarter(&taps, (hp, wp)); // [1, C, h4, w4]
            let c = hc.size()[1];
            let flat = hc.permute([0, 2, 3, 1]).reshape([-1, c]);
            let (hue, chroma) = match self.net.head.forward(&flat, false, 0) {
                HeadOutput::Histogram { hue, chroma } => (hue, chroma),
                HeadOutput::Lab { .. } => unreachable!("checked at load"),
            };
            let to_map = |z: Tensor| -> Tensor {
                let k = z.size()[1];
                let p = z.softmax(-1, Kind::Float).reshape([1, h4, w4, k]).permute([0, 3, 1, 2]);
                let p = p
                    .upsample_bilinear2d([hp, wp], false, None, None)
                    .narrow(2, 0, ph as i64)
                    .narrow(3, 0, pw as i64);
                let p = if (pw, ph) == (w, h) {
                    p
                } else {
                    p.upsample_bilinear2d([h as i64, w as i64], false, None, None)
                };
                p.squeeze_dim(0).to_device(Device::Cpu).contiguous()
            };
            (to_map(hue), to_map(chroma))
        })
    }

    /// Colorizes an image (colour inputs are used as grayscale); the output has the input's size.
    pub fn colorize(&self, img: &RgbImage8) -> Colorized {
        let (hue, chroma) = self.predict(img);
        let (w, h) = (img.width, img.height);
        // Pixel-major [H*W, K] for the per-pixel conversion.
        let k_h = hue.size()[0] as usize;
        let k_c = chroma.size()[0] as usize;
        let hue: Vec<f32> =
            Vec::try_from(hue.permute([1, 2, 0]).contiguous().flatten(0, -1)).expect("float tensor");
        let chroma: Vec<f32> =
            Vec::try_from(chroma.permute([1, 2, 0]).contiguous().flatten(0, -1)).expect("float tensor");
        let mut rgb = vec![0u8; w * h * 3];
        let mut hue_entropy = vec![0f32; w * h];
        let log_k = (k_h as f32).ln();
        let opts = self.options.reconstruct;
        for i in 0..w * h {
            let p = &img.data[i * 3..i * 3 + 3];
            let l = (p[0] as f32 + p[1] as f32 + p[2] as f32) / (3.0 * 255.0);
            let hp = &hue[i * k_h..(i + 1) * k_h];
            let cp = &chroma[i * k_c..(i + 1) * k_c];
            let out = pixel_from_hists(hp, cp, l, &opts);
            for c in 0..3 {
                rgb[i * 3 + c] = (out[c] * 255.0).round().clamp(0.0, 255.0) as u8;
            }
            hue_entropy[i] = -hp.iter().filter(|&&v| v > 0.0).map(|&v| v * v.ln()).sum::<f32>() / log_k;
        }
        Colorized { width: w, height: h, rgb, hue_entropy }
    }
}

/// PSNR (dB, peak 1) and RMSE (8-bit units) of `a` against `b`, over all pixels and channels.
pub fn psnr_rmse(a: &[u8], b: &[u8]) -> (f64, f64) {
    let n = a.len().max(1) as f64;
    let se: f64 = a.iter().zip(b).map(|(&x, &y)| (x as f64 - y as f64).powi(2)).sum();
    let mse = se / n;
    let psnr = if mse == 0.0 { f64::INFINITY } else { 10.0 * (255.0f64 * 255.0 / mse).log10() };
    (psnr, mse.sqrt())
}

/// The plain gray version of an image (channel mean, rounded, in all three channels).
pub fn gray_rgb(img: &RgbImage8) -> Vec<u8> {
    img.data
        .chunks_exact(3)
        .flat_map(|p| {
            let g = ((p[0] as u32 + p[1] as u32 + p[2] as u32) as f32 / 3.0).round() as u8;
            [g, g, g]
        })
        .collect()
}
