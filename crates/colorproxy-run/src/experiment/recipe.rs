//! The recipe format (`experiments/*.toml`, documented in `experiments/README.md`) and its
//! resolution into runs: named data sets, pretrainings (colorization or supervised), fine-tunings
//! from them (x seeds), tables and snapshot sweeps. A run's key is a hash of everything that
//! decides its result (resolved config, data, init, seed), so a changed recipe makes new runs and
//! an unchanged one finds its finished runs again.
use std::collections::BTreeMap;
use std::path::Path;

use crate::{bail, Context};
use colorproxy_nn::transfer::Task;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    pub title: String,
    #[serde(default)]
    pub description: String,
    /// Fine-tuning seeds (a fine-tuning may give its own).
    #[serde(default = "default_seeds")]
    pub seeds: Vec<u64>,
    #[serde(default)]
    pub data: BTreeMap<String, DataSpec>,
    #[serde(default)]
    pub pretrain: Vec<PretrainSpec>,
    #[serde(default)]
    pub finetune: Vec<FinetuneSpec>,
    #[serde(default)]
    pub table: Vec<TableSpec>,
    #[serde(default)]
    pub sweep: Vec<SweepSpec>,
}

fn default_seeds() -> Vec<u64> {
    vec![0, 1, 2]
}

fn train() -> String {
    "train".into()
}

fn val() -> String {
    "val".into()
}

/// A named data set: a path (relative to the recipe), generated scenes, or a path given on the
/// command line (`--data NAME=PATH`; neither key).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSpec {
    pub path: Option<String>,
    pub generate: Option<GenerateSpec>,
    /// What the set is, for the tables and `--data` errors.
    #[serde(default)]
    pub about: String,
}

/// `colorproxy data generate` into OUT/data/NAME.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct GenerateSpec {
    pub images: usize,
    #[serde(default)]
    pub seed: u64,
    #[serde(default = "five")]
    pub classes: usize,
    pub per_class_train: Option<usize>,
    pub per_class_val: Option<usize>,
    /// The VOC-style set's training / validation scenes (default: images / 4, images / 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voc_train: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voc_val: Option<usize>,
}

fn five() -> usize {
    5
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PretrainKind {
    /// Colorization (`colorproxy pretrain`).
    Colorization,
    /// Supervised on class folders (`colorproxy pretrain-supervised`).
    Supervised,
}

fn colorization() -> PretrainKind {
    PretrainKind::Colorization
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PretrainSpec {
    pub name: String,
    #[serde(default = "colorization")]
    pub kind: PretrainKind,
    /// A built-in preset (colorization: cpu-small ...; supervised: cls-cpu ...).
    pub preset: Option<String>,
    /// A config file (relative to the recipe) instead of a preset.
    pub config: Option<String>,
    /// Images: `NAME` or `NAME/sub/folder`; several are pooled; `NAME@SPLIT` is the images of a
    /// VOC split (unlabelled use). Supervised: class folders.
    pub data: OneOrMany,
    /// Colorization: total iterations (drops and snapshots keep their fraction). Supervised: the
    /// cap of the early-stopping protocol.
    pub iterations: Option<usize>,
    #[serde(default)]
    pub seed: u64,
    /// Config overrides by dotted key, e.g. `"optim.lr_drops" = []`, `"model.hypercolumn" =
    /// ["fc7"]`, `"label_space.per_class" = 20`.
    #[serde(default)]
    pub set: toml::Table,
    /// Shown in tables instead of the name.
    pub label: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn items(&self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s.clone()],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FinetuneSpec {
    pub name: String,
    pub task: TaskName,
    pub preset: Option<String>,
    pub config: Option<String>,
    /// A VOC devkit (or class folders for cls): `NAME` or `NAME/sub`.
    pub data: String,
    /// Initialisations: `random`, a pretraining's name, or `NAME@ITERATION` (a snapshot).
    #[serde(default)]
    pub init: Vec<String>,
    /// Cap on iterations (the early-stopping protocol scales with it).
    pub max_iterations: Option<usize>,
    pub seeds: Option<Vec<u64>>,
    #[serde(default)]
    pub set: toml::Table,
    #[serde(default = "train")]
    pub train_split: String,
    #[serde(default = "val")]
    pub eval_split: String,
    /// Shown in tables instead of the name.
    pub label: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskName {
    Seg,
    Cls,
}

impl TaskName {
    pub fn task(self) -> Task {
        match self {
            TaskName::Seg => Task::Seg,
            TaskName::Cls => Task::Cls,
        }
    }
}

/// A table: one row per initialisation, one column per fine-tuning.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableSpec {
    pub name: String,
    pub title: String,
    /// Fine-tuning names.
    pub columns: Vec<String>,
    /// Initialisations (default: every init of the columns, in order).
    pub rows: Option<Vec<String>>,
    #[serde(default)]
    pub note: String,
}

/// Fig. 4: fine-tuning from snapshots of pretrainings, score against pretraining iterations.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepSpec {
    pub name: String,
    pub title: String,
    /// The fine-tuning (its own `init` list is not used here).
    pub finetune: String,
    /// Colorization pretrainings whose snapshots are fine-tuned.
    pub pretrain: Vec<String>,
    /// Pretraining iterations (snapshots are taken there).
    pub at: Vec<usize>,
    #[serde(default)]
    pub note: String,
}

impl Recipe {
    pub fn read(path: &Path) -> crate::Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let r: Recipe =
            toml::from_str(&text).with_context(|| format!("{}: not a valid recipe", path.display()))?;
        r.check().with_context(|| format!("recipe {}", path.display()))?;
        Ok(r)
    }

    /// Names unique and known, references resolvable.
    fn check(&self) -> crate::Result<()> {
        let mut names = std::collections::BTreeSet::new();
        for n in self.pretrain.iter().map(|p| &p.name).chain(self.finetune.iter().map(|f| &f.name)) {
            if n == "random" || n.contains(['@', '/']) || !names.insert(n.clone()) {
                bail!("name {n:?} is used twice, reserved (random) or contains @ or /");
            }
        }
        let pre = |n: &str| self.pretrain.iter().find(|p| p.name == n);
        let ft = |n: &str| self.finetune.iter().find(|f| f.name == n);
        for f in &self.finetune {
            for i in &f.init {
                let base = i.split('@').next().unwrap_or(i);
                if base != "random" && pre(base).is_none() {
                    bail!(
                        "fine-tuning {:?}: init {i:?} is not `random` or a pretraining of the recipe",
                        f.name
                    );
                }
            }
        }
        for t in &self.table {
            for c in &t.columns {
                if ft(c).is_none() {
                    bail!("table {:?}: column {c:?} is not a fine-tuning of the recipe", t.name);
                }
            }
        }
        for s in &self.sweep {
            if ft(&s.finetune).is_none() {
                bail!("sweep {:?}: {:?} is not a fine-tuning of the recipe", s.name, s.finetune);
            }
            for p in &s.pretrain {
                match pre(p) {
                    Some(p) if p.kind == PretrainKind::Colorization => {}
                    _ => bail!("sweep {:?}: {p:?} is not a colorization pretraining of the recipe", s.name),
                }
            }
            if s.at.contains(&0) || s.at.is_empty() {
                bail!("sweep {:?}: `at` lists pretraining iterations from 1", s.name);
            }
        }
        if self.seeds.is_empty() {
            bail!("seeds is empty");
        }
        Ok(())
    }
}

/// Applies `set` (dotted keys or nested tables) to a config's TOML.
pub fn apply_overrides(text: &str, set: &toml::Table) -> crate::Result<String> {
    let mut doc: toml::Table = toml::from_str(text).context("config")?;
    for (key, value) in set {
        let (t, last) = crate::overrides::section_of(&mut doc, key)
            .map_err(|p| crate::RunError::msg(format!("override {key:?}: {p:?} is not a table")))?;
        t.insert(last.to_string(), value.clone());
    }
    Ok(toml::to_string(&doc)?)
}

/// A short stable hash (hex) of text.
pub fn key(text: &str) -> String {
    format!("{:016x}", xxhash_rust::xxh3::xxh3_64(text.as_bytes()))[..10].to_string()
}
