//! Label-space variants of supervised pretraining on class folders (the paper's Table 4): fewer
//! samples per class, label noise, random label buckets and hierarchical buckets from a mapping
//! file. Every transform is exact and fixed by its seed.
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::rng::Rng;
use crate::DataError;

/// The indices of the images kept when each class keeps at most `per_class` images (all of a
/// smaller class), chosen at random by `seed`; sorted.
pub fn subsample_per_class(targets: &[usize], per_class: usize, seed: u64) -> Vec<usize> {
    let mut by_class: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (i, &t) in targets.iter().enumerate() {
        by_class.entry(t).or_default().push(i);
    }
    let mut keep = Vec::new();
    for (class, idx) in by_class {
        let order = Rng::derive(seed, &[0x5B5, class as u64]).permutation(idx.len());
        keep.extend(order.into_iter().take(per_class).map(|k| idx[k]));
    }
    keep.sort_unstable();
    keep
}

/// Label noise: exactly `round(fraction * n)` images, chosen at random by `seed`, get a label drawn
/// uniformly from the *other* `classes - 1` classes. Returns the new labels.
pub fn label_noise(
    targets: &[usize],
    classes: usize,
    fraction: f64,
    seed: u64,
) -> Result<Vec<usize>, DataError> {
    if !(0.0..=1.0).contains(&fraction) {
        return Err(DataError::BadConfig(format!("label noise {fraction}: expected a fraction in [0, 1]")));
    }
    if classes < 2 && fraction > 0.0 {
        return Err(DataError::BadConfig("label noise needs at least 2 classes".into()));
    }
    let mut out = targets.to_vec();
    let n = (fraction * targets.len() as f64).round() as usize;
    let mut rng = Rng::derive(seed, &[0x401E]);
    for i in rng.permutation(targets.len()).into_iter().take(n) {
        // One of the other classes, uniformly: draw among classes - 1 and skip the true one.
        let r = rng.below(classes as u64 - 1) as usize;
        out[i] = if r >= targets[i] { r + 1 } else { r };
    }
    Ok(out)
}

/// Random label buckets: the `classes` classes merged at random into exactly `buckets` non-empty
/// buckets (a class -> bucket map), fixed by `seed`.
pub fn random_buckets(classes: usize, buckets: usize, seed: u64) -> Result<Vec<usize>, DataError> {
    if buckets == 0 || buckets > classes {
        return Err(DataError::BadConfig(format!(
            "{buckets} buckets for {classes} classes: expected 1 to {classes}"
        )));
    }
    let mut rng = Rng::derive(seed, &[0xB0C]);
    let order = rng.permutation(classes);
    let mut map = vec![0; classes];
    // The first `buckets` classes of a random order found the buckets (none stays empty); the
    // rest join a bucket drawn uniformly.
    for (k, &c) in order.iter().enumerate() {
        map[c] = if k < buckets { k } else { rng.below(buckets as u64) as usize };
    }
    Ok(map)
}

/// Hierarchical buckets from a mapping file: one `class bucket` pair per line (whitespace or a
/// tab between them; blank lines and `#` comments ignored), e.g. a WordNet-derived map of
/// ImageNet's classes to their ancestors. Every class of `class_names` must be mapped and every
/// mapped class must exist. Buckets are numbered in sorted order of their names. Returns the
/// class -> bucket map and the bucket names.
pub fn buckets_from_file(
    path: &Path,
    class_names: &[String],
) -> Result<(Vec<usize>, Vec<String>), DataError> {
    let text =
        std::fs::read_to_string(path).map_err(|e| DataError::Io { path: path.to_owned(), source: e })?;
    let err = |msg: String| DataError::Malformed { path: path.to_owned(), msg };
    let known: BTreeSet<&str> = class_names.iter().map(String::as_str).collect();
    let mut pairs: BTreeMap<String, String> = BTreeMap::new();
    for (no, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let mut parts = line.split_whitespace();
        let (Some(class), Some(bucket), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(err(format!("line {}: expected `class bucket`, got {line:?}", no + 1)));
        };
        if !known.contains(class) {
            return Err(err(format!("line {}: unknown class {class:?} (not a class of the data)", no + 1)));
        }
        if pairs.insert(class.to_string(), bucket.to_string()).is_some() {
            return Err(err(format!("line {}: class {class:?} is mapped twice", no + 1)));
        }
    }
    if let Some(missing) = class_names.iter().find(|c| !pairs.contains_key(c.as_str())) {
        return Err(err(format!("class {missing:?} has no bucket")));
    }
    let names: Vec<String> = pairs.values().cloned().collect::<BTreeSet<_>>().into_iter().collect();
    let map = class_names.iter().map(|c| names.iter().position(|b| *b == pairs[c]).unwrap_or(0)).collect();
    Ok((map, names))
}

/// A label-space variant of supervised pretraining (Table 4), saved in the fine-tuning config
/// (`[label_space]`). Applied in this order: subsampling, label noise, buckets. The default is
/// the full label space.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelSpace {
    /// Keep at most this many images per class (random, fixed by the seed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_class: Option<usize>,
    /// This fraction of the images gets a uniformly random *other* label.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub label_noise: f64,
    /// Merge the classes at random into this many labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub random_buckets: Option<usize>,
    /// Merge the classes into the buckets of this `class bucket` mapping file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buckets_file: Option<std::path::PathBuf>,
    /// Seed of the subsampling, noise and random buckets.
    #[serde(default)]
    pub seed: u64,
}

fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

/// What [`LabelSpace::apply`] did to a set.
#[derive(Debug, Clone, PartialEq)]
pub struct Relabelled {
    /// Indices (into the original set) of the images kept, sorted.
    pub keep: Vec<usize>,
    /// The new label of each kept image.
    pub targets: Vec<usize>,
    /// The new class names (bucket names; random buckets are named `bucket-<k>`).
    pub class_names: Vec<String>,
    /// Images whose label the noise changed.
    pub noisy: usize,
}

impl LabelSpace {
    /// Whether this is the full label space (nothing to do).
    pub fn is_identity(&self) -> bool {
        self.per_class.is_none()
            && self.label_noise == 0.0
            && self.random_buckets.is_none()
            && self.buckets_file.is_none()
    }

    /// The variant in words, e.g. `50 per class, 20% label noise, 4 random buckets`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(n) = self.per_class {
            parts.push(format!("{n} per class"));
        }
        if self.label_noise > 0.0 {
            parts.push(format!("{}% label noise", self.label_noise * 100.0));
        }
        if let Some(k) = self.random_buckets {
            parts.push(format!("{k} random buckets"));
        }
        if let Some(f) = &self.buckets_file {
            parts.push(format!("buckets of {}", f.display()));
        }
        if parts.is_empty() {
            "full label space".into()
        } else {
            parts.join(", ")
        }
    }

    /// Applies the variant to single-label `targets` over `class_names`.
    pub fn apply(&self, targets: &[usize], class_names: &[String]) -> Result<Relabelled, DataError> {
        if self.random_buckets.is_some() && self.buckets_file.is_some() {
            return Err(DataError::BadConfig("give random_buckets or buckets_file, not both".into()));
        }
        let keep = match self.per_class {
            Some(0) => return Err(DataError::BadConfig("per_class 0 keeps no image".into())),
            Some(n) => subsample_per_class(targets, n, self.seed),
            None => (0..targets.len()).collect(),
        };
        let kept: Vec<usize> = keep.iter().map(|&i| targets[i]).collect();
        let noisy_targets = label_noise(&kept, class_names.len(), self.label_noise, self.seed)?;
        let noisy = noisy_targets.iter().zip(&kept).filter(|(a, b)| a != b).count();
        let (map, names) = match (&self.random_buckets, &self.buckets_file) {
            (Some(k), _) => (
                random_buckets(class_names.len(), *k, self.seed)?,
                (0..*k).map(|b| format!("bucket-{b}")).collect(),
            ),
            (None, Some(f)) => buckets_from_file(f, class_names)?,
            (None, None) => ((0..class_names.len()).collect(), class_names.to_vec()),
        };
        let targets = noisy_targets.iter().map(|&t| map[t]).collect();
        Ok(Relabelled { keep, targets, class_names: names, noisy })
    }
}
