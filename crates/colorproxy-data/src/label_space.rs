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
