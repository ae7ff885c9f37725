//! [`ColorBatch`]: one training batch of colorization pretraining, and [`PretrainData`], which
//! builds the batch at any position deterministically.
use std::path::PathBuf;

use colorproxy_color::{HueChromaTargets, RgbView, TargetConfig};
use fast_image_resize::Resizer;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::augment::{augment, AugmentConfig};
use crate::decode::{decode_file, DecodeLimits, SkipReason};
use crate::rng::Rng;
use crate::source::ImageSource;
use crate::DataError;

/// Sampling, batching and decoding parameters of the pretraining pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PipelineConfig {
    /// Images per step and process (paper: 8 on one GPU); a data-parallel job of N processes
    /// trains on N x batch_size images per step.
    pub batch_size: usize,
    /// Sparse points per image (paper: 128).
    pub points: usize,
    /// Points are uniform integers in `[border, crop - border)` (paper: 96 at crop 352).
    pub border: usize,
    pub augment: AugmentConfig,
    pub limits: DecodeLimits,
    /// Skip images whose mean chroma is below `achromatic_threshold` (the paper keeps them).
    pub skip_achromatic: bool,
    pub achromatic_threshold: f32,
    /// Worker threads building batches (0: all cores).
    pub workers: usize,
    /// Batches prepared ahead of the training step.
    pub prefetch: usize,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            batch_size: 8,
            points: 128,
            border: 96,
            augment: AugmentConfig::default(),
            limits: DecodeLimits::default(),
            skip_achromatic: false,
            achromatic_threshold: 0.02,
            workers: 0,
            prefetch: 4,
        }
    }
}

impl PipelineConfig {
    pub fn validate(&self) -> Result<(), DataError> {
        self.augment.validate()?;
        if self.batch_size == 0 || self.points == 0 {
            return Err(DataError::BadConfig("batch_size and points must be positive".into()));
        }
        if self.batch_size > 65_536 || self.points > 1 << 20 {
            return Err(DataError::BadConfig(format!(
                "batch_size {} or points {} is absurdly large",
                self.batch_size, self.points
            )));
        }
        if 2 * self.border >= self.augment.crop as usize {
            return Err(DataError::BadConfig(format!(
                "border {} leaves no room for points in a {} crop",
                self.border, self.augment.crop
            )));
        }
        Ok(())
    }
}

/// One batch. Shapes use B = batch size, S = crop side, P = points, K = bins.
#[derive(Debug, Clone, PartialEq)]
pub struct ColorBatch {
    pub batch: usize,
    pub side: usize,
    pub points_per_image: usize,
    pub hue_bins: usize,
    pub chroma_bins: usize,
    /// `[B, 1, S, S]`: `(R+G+B)/3 - gray_mean`.
    pub input: Vec<f32>,
    /// `[B, P, 2]`: integer `(y, x)` pixel coordinates in the crop.
    pub points: Vec<i64>,
    /// `[B, P, K]`: normalised hue histograms of the 7x7 windows.
    pub hue_hist: Vec<f32>,
    /// `[B, P, K]`: normalised chroma histograms.
    pub chroma_hist: Vec<f32>,
    /// `[B, P]`: hue loss weights (5 x centre chroma).
    pub hue_weight: Vec<f32>,
    /// `[B, P]`: chroma loss weights.
    pub chroma_weight: Vec<f32>,
    /// `[B, P, 2]`: CIE (a\*, b\*) / `lab_ab_scale` at the points.
    pub lab_ab: Vec<f32>,
    /// The file used in each slot.
    pub files: Vec<PathBuf>,
    /// Files skipped while building this batch, with the reason.
    pub skipped: Vec<(PathBuf, SkipReason)>,
}

/// One image's share of a batch.
struct Item {
    input: Vec<f32>,
    points: Vec<i64>,
    hue_hist: Vec<f32>,
    chroma_hist: Vec<f32>,
    hue_weight: Vec<f32>,
    chroma_weight: Vec<f32>,
    lab_ab: Vec<f32>,
    file: PathBuf,
    skipped: Vec<(PathBuf, SkipReason)>,
}

/// The unlabelled pretraining set: files, pipeline and target configs.
#[derive(Debug, Clone)]
pub struct PretrainData {
    pub source: ImageSource,
    pub pipeline: PipelineConfig,
    pub targets: HueChromaTargets,
    pub seed: u64,
    /// Data parallelism: the slots of each global batch this process builds (its rank's share);
    /// `None`: all of them. A slot's image, augmentation and points do not depend on the share.
    pub shard: Option<std::ops::Range<usize>>,
}

/// Attempts per batch slot before giving up (each attempt draws another image).
const MAX_ATTEMPTS: usize = 32;

thread_local! {
    static RESIZER: std::cell::RefCell<Resizer> = std::cell::RefCell::new(Resizer::new());
}

impl PretrainData {
    pub fn new(
        source: ImageSource,
        pipeline: PipelineConfig,
        targets: TargetConfig,
        seed: u64,
    ) -> Result<Self, DataError> {
        pipeline.validate()?;
        Ok(Self { source, pipeline, targets: HueChromaTargets::new(targets)?, seed, shard: None })
    }

    /// Whole batches per epoch (the last partial batch is dropped).
    pub fn batches_per_epoch(&self) -> usize {
        (self.source.len() / self.pipeline.batch_size).max(1)
    }

    /// The order of files in `epoch`.
    pub fn epoch_order(&self, epoch: u64) -> Vec<usize> {
        Rng::derive(self.seed, &[0xE90C, epoch]).permutation(self.source.len())
    }

    /// Builds the batch `index` of `epoch` given that epoch's order; slots are built in parallel
    /// on the current rayon pool. The result does not depend on the pool's size.
    pub fn batch(&self, epoch: u64, index: usize, order: &[usize]) -> Result<ColorBatch, DataError> {
        let slots = self.shard.clone().unwrap_or(0..self.pipeline.batch_size);
        let b = slots.len();
        let items: Vec<Result<Item, DataError>> =
            slots.into_par_iter().map(|slot| self.item(epoch, index, slot, order)).collect();
        let p = self.pipeline.points;
        let cfg = self.targets.config();
        let s = self.pipeline.augment.crop as usize;
        let mut out = ColorBatch {
            batch: b,
            side: s,
            points_per_image: p,
            hue_bins: cfg.hue_bins,
            chroma_bins: cfg.chroma_bins,
            input: Vec::with_capacity(b * s * s),
            points: Vec::with_capacity(b * p * 2),
            hue_hist: Vec::with_capacity(b * p * cfg.hue_bins),
            chroma_hist: Vec::with_capacity(b * p * cfg.chroma_bins),
            hue_weight: Vec::with_capacity(b * p),
            chroma_weight: Vec::with_capacity(b * p),
            lab_ab: Vec::with_capacity(b * p * 2),
            files: Vec::with_capacity(b),
            skipped: Vec::new(),
        };
        for it in items {
            let it = it?;
            out.input.extend_from_slice(&it.input);
            out.points.extend_from_slice(&it.points);
            out.hue_hist.extend_from_slice(&it.hue_hist);
            out.chroma_hist.extend_from_slice(&it.chroma_hist);
            out.hue_weight.extend_from_slice(&it.hue_weight);
            out.chroma_weight.extend_from_slice(&it.chroma_weight);
            out.lab_ab.extend_from_slice(&it.lab_ab);
            out.files.push(it.file);
            out.skipped.extend(it.skipped);
        }
        Ok(out)
    }

    fn item(&self, epoch: u64, index: usize, slot: usize, order: &[usize]) -> Result<Item, DataError> {
        let n = self.source.len();
        let b = self.pipeline.batch_size;
        let mut skipped = Vec::new();
        for attempt in 0..MAX_ATTEMPTS {
            let mut rng = Rng::derive(self.seed, &[epoch, index as u64, slot as u64, attempt as u64]);
            let file_index =
                if attempt == 0 { order[(index * b + slot) % n] } else { rng.below(n as u64) as usize };
            let path = &self.source.files[file_index];
            match self.make_item(path, &mut rng) {
                Ok(mut item) => {
                    item.skipped = skipped;
                    return Ok(item);
                }
                Err(reason) => skipped.push((path.clone(), reason)),
            }
        }
        let last = skipped.last().map(|(p, r)| format!("{}: {r}", p.display())).unwrap_or_default();
        Err(DataError::TooManyBad { attempts: MAX_ATTEMPTS, slot, last })
    }

    /// Decode, augment, sample points and compute targets for one file.
    fn make_item(&self, path: &std::path::Path, rng: &mut Rng) -> Result<Item, SkipReason> {
        let pc = &self.pipeline;
        let img = decode_file(path, &pc.limits)?;
        if pc.skip_achromatic {
            let mean_chroma = img.mean_chroma();
            if mean_chroma < pc.achromatic_threshold {
                return Err(SkipReason::Achromatic { mean_chroma, threshold: pc.achromatic_threshold });
            }
        }
        let aug = RESIZER.with(|r| augment(&img, &pc.augment, rng, &mut r.borrow_mut()));
        let s = aug.side;
        let rgb: Vec<f32> = aug.rgb.iter().map(|&v| v as f32 * (1.0 / 255.0)).collect();
        let cfg = self.targets.config();
        let input: Vec<f32> =
            rgb.chunks_exact(3).map(|p| (p[0] + p[1] + p[2]) / 3.0 - cfg.gray_mean).collect();
        let span = (s - 2 * pc.border) as u64;
        let pts: Vec<(usize, usize)> = (0..pc.points)
            .map(|_| {
                let y = pc.border + rng.below(span) as usize;
                let x = pc.border + rng.below(span) as usize;
                (y, x)
            })
            .collect();
        let view = RgbView::new(&rgb, s, s).map_err(|e| SkipReason::Corrupt(e.to_string()))?;
        let targets = self.targets.compute(view, &pts).map_err(|e| SkipReason::Corrupt(e.to_string()))?;
        let mut item = Item {
            input,
            points: Vec::with_capacity(pc.points * 2),
            hue_hist: Vec::with_capacity(pc.points * cfg.hue_bins),
            chroma_hist: Vec::with_capacity(pc.points * cfg.chroma_bins),
            hue_weight: Vec::with_capacity(pc.points),
            chroma_weight: Vec::with_capacity(pc.points),
            lab_ab: Vec::with_capacity(pc.points * 2),
            file: path.to_owned(),
            skipped: Vec::new(),
        };
        for t in targets {
            item.points.extend_from_slice(&[t.y as i64, t.x as i64]);
            item.hue_hist.extend_from_slice(&t.hue_hist);
            item.chroma_hist.extend_from_slice(&t.chroma_hist);
            item.hue_weight.push(t.hue_weight);
            item.chroma_weight.push(t.chroma_weight);
            item.lab_ab.extend_from_slice(&[t.lab_ab[0] / cfg.lab_ab_scale, t.lab_ab[1] / cfg.lab_ab_scale]);
        }
        Ok(item)
    }
}
