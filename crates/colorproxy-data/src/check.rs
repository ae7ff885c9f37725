//! `data check`: decode every image of a source and report what is usable.
use std::collections::BTreeMap;
use std::path::PathBuf;

use rayon::prelude::*;
use serde::Serialize;

use crate::decode::{decode_file, DecodeLimits};
use crate::source::ImageSource;

/// What `colorproxy data check` reports.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CheckReport {
    pub files: usize,
    pub decoded: usize,
    pub skipped: usize,
    /// Skip reason kind -> files (with the detailed message).
    pub skipped_by_reason: BTreeMap<String, Vec<SkippedFile>>,
    /// Distribution of the shorter and longer sides of decoded images, in pixels.
    pub short_side: SizeStats,
    pub long_side: SizeStats,
    /// Decoded images whose mean chroma is below the threshold.
    pub achromatic: usize,
    pub achromatic_share: f64,
    pub achromatic_threshold: f32,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SkippedFile {
    pub file: PathBuf,
    pub reason: String,
}

/// Min, quartiles and max of a size list.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct SizeStats {
    pub min: usize,
    pub p25: usize,
    pub median: usize,
    pub p75: usize,
    pub max: usize,
}

impl SizeStats {
    fn of(mut v: Vec<usize>) -> Self {
        if v.is_empty() {
            return Self::default();
        }
        v.sort_unstable();
        let q = |f: f64| v[((v.len() - 1) as f64 * f).round() as usize];
        Self { min: v[0], p25: q(0.25), median: q(0.5), p75: q(0.75), max: v[v.len() - 1] }
    }
}

/// Decodes all files in parallel (current rayon pool), calling `progress` once per file.
pub fn check_images(
    source: &ImageSource,
    limits: &DecodeLimits,
    achromatic_threshold: f32,
    progress: &(dyn Fn() + Sync),
) -> CheckReport {
    let results: Vec<_> = source
        .files
        .par_iter()
        .map(|p| {
            let r = decode_file(p, limits).map(|img| (img.width, img.height, img.mean_chroma()));
            progress();
            (p.clone(), r)
        })
        .collect();
    let mut skipped_by_reason: BTreeMap<String, Vec<SkippedFile>> = BTreeMap::new();
    let (mut shorts, mut longs, mut achromatic) = (Vec::new(), Vec::new(), 0);
    for (file, r) in results {
        match r {
            Ok((w, h, chroma)) => {
                shorts.push(w.min(h));
                longs.push(w.max(h));
                if chroma < achromatic_threshold {
                    achromatic += 1;
                }
            }
            Err(reason) => skipped_by_reason
                .entry(reason.kind().to_string())
                .or_default()
                .push(SkippedFile { file, reason: reason.to_string() }),
        }
    }
    let decoded = shorts.len();
    CheckReport {
        files: source.len(),
        decoded,
        skipped: source.len() - decoded,
        skipped_by_reason,
        short_side: SizeStats::of(shorts),
        long_side: SizeStats::of(longs),
        achromatic,
        achromatic_share: if decoded > 0 { achromatic as f64 / decoded as f64 } else { 0.0 },
        achromatic_threshold,
    }
}
