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
    /// How many images an epoch of this set has (for schedules in epochs: `epochs`,
    /// `lr_drop_epochs`, a sweep's `at_epochs`); counted from the files when not given.
    pub images: Option<usize>,
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
    /// The length in epochs of its data (instead of `iterations`; supervised: the cap of its
    /// early stopping): iterations = epochs x images / batch, rounded.
    pub epochs: Option<f64>,
    /// The images of one epoch when not its data set's (e.g. `label_space.per_class = 100` of
    /// ImageNet's 1000 classes: 100000).
    pub epoch_images: Option<usize>,
    /// Colorization: the learning-rate drops (x gamma) at these epochs.
    pub lr_drop_epochs: Option<Vec<f64>>,
    /// Colorization: the learning-rate drops at these iterations (set after `iterations`, which
    /// otherwise rescales the config's drops).
    pub lr_drops: Option<Vec<usize>>,
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
    /// Initialisations: `random`, a pretraining's name, `NAME@ITERATION` (a snapshot), or
    /// `weights:DATA` (a weights file given as a data set, e.g. torchvision's ImageNet VGG-16).
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
    /// Then retrain on 100% of the training split with the schedule early stopping found (the
    /// paper's protocol for Table 1; `colorproxy finetune --retrain-full`); the retrained network
    /// is the one scored in the tables.
    #[serde(default)]
    pub retrain_full: bool,
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

/// A table: one row per initialisation, one column per fine-tuning; or, in the paper's shape,
/// explicit rows (`[[table.row]]`) whose cells name their runs, with the paper's values.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableSpec {
    pub name: String,
    pub title: String,
    /// Fine-tuning names; with explicit rows, the column headings (as the paper's).
    pub columns: Vec<String>,
    /// Initialisations (default: every init of the columns, in order).
    pub rows: Option<Vec<String>>,
    /// Explicit rows in the paper's shape (then `columns` are headings).
    #[serde(default)]
    pub row: Vec<RowSpec>,
    #[serde(default)]
    pub note: String,
}

/// A row of a paper-shaped table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RowSpec {
    /// As the paper writes it (e.g. `Our method, AlexNet`).
    pub label: String,
    /// One per column: `FINETUNE:INIT` (the fine-tuning's runs from that init; `#METRIC` after it
    /// shows another figure of its results than the main one, e.g. `#top5`), or `""` for a cell
    /// with no run (the paper has none, or this method cannot produce it: say why in `note`).
    pub cells: Vec<String>,
    /// The paper's published value of each cell, in the paper's units (`nan`: the paper has none);
    /// empty: a table without the paper's values (e.g. a CPU twin).
    #[serde(default)]
    pub paper: Vec<f64>,
    #[serde(default)]
    pub note: String,
}

impl RowSpec {
    /// The `(fine-tuning, init)` of each cell (None: no run).
    pub fn runs(&self) -> Vec<Option<(&str, &str)>> {
        self.cells.iter().map(|c| c.split('#').next().unwrap_or(c).split_once(':')).collect()
    }

    /// The figure each cell shows: None for the run's main metric, else a key of its `extra`.
    pub fn metrics(&self) -> Vec<Option<&str>> {
        self.cells.iter().map(|c| c.split_once('#').map(|(_, m)| m)).collect()
    }
}

/// Fig. 4: fine-tuning from snapshots of pretrainings, score against pretraining iterations.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepSpec {
    pub name: String,
    pub title: String,
    /// The fine-tuning (its own `init` list is not used here).
    pub finetune: String,
    /// The paper's published values by row (`PRETRAIN@AT` or `random`), in its units.
    #[serde(default)]
    pub paper: BTreeMap<String, f64>,
    /// Colorization pretrainings whose snapshots are fine-tuned.
    pub pretrain: Vec<String>,
    /// Pretraining iterations (snapshots are taken there).
    #[serde(default)]
    pub at: Vec<usize>,
    /// The snapshots in epochs of the pretrainings' data instead of `at` (then the keys of `paper`
    /// are `PRETRAIN@EPOCHS` too).
    #[serde(default)]
    pub at_epochs: Vec<f64>,
    #[serde(default)]
    pub note: String,
}

impl Recipe {
    pub fn read(path: &Path) -> crate::Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Self::parse(&text, &path.display().to_string())
    }

    /// A recipe from its text; `origin` (a file name) names it in errors.
    pub fn parse(text: &str, origin: &str) -> crate::Result<Self> {
        let r: Recipe = toml::from_str(text).with_context(|| format!("{origin}: not a valid recipe"))?;
        r.check().with_context(|| format!("recipe {origin}"))?;
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
                if let Some(d) = i.strip_prefix("weights:") {
                    if !self.data.contains_key(d) {
                        bail!("fine-tuning {:?}: init {i:?} names no data set of the recipe", f.name);
                    }
                    continue;
                }
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
            if !t.row.is_empty() {
                self.check_rows(t)?;
                continue;
            }
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
            if !s.at_epochs.is_empty() && !s.at.is_empty() {
                bail!("sweep {:?}: give `at` (iterations) or `at_epochs`, not both", s.name);
            }
            if s.at_epochs.is_empty() && (s.at.contains(&0) || s.at.is_empty()) {
                bail!("sweep {:?}: `at` lists pretraining iterations from 1", s.name);
            }
            if s.at_epochs.iter().any(|&e| e.is_nan() || e <= 0.0) {
                bail!("sweep {:?}: `at_epochs` are positive", s.name);
            }
        }
        for p in &self.pretrain {
            if p.epochs.is_some() && p.iterations.is_some() {
                bail!("pretraining {:?}: give `iterations` or `epochs`, not both", p.name);
            }
            if (p.lr_drop_epochs.is_some() || p.lr_drops.is_some()) && p.kind != PretrainKind::Colorization {
                bail!(
                    "pretraining {:?}: `lr_drops` and `lr_drop_epochs` are for colorization pretraining \
                     (supervised pretraining drops at plateaus)",
                    p.name
                );
            }
            if p.lr_drop_epochs.is_some() && p.lr_drops.is_some() {
                bail!("pretraining {:?}: give `lr_drops` or `lr_drop_epochs`, not both", p.name);
            }
        }
        if self.seeds.is_empty() {
            bail!("seeds is empty");
        }
        Ok(())
    }

    /// A paper-shaped table: one cell and one paper value per column, each cell a fine-tuning of
    /// the recipe from one of its inits.
    fn check_rows(&self, t: &TableSpec) -> crate::Result<()> {
        if t.rows.is_some() {
            bail!("table {:?}: give `rows` or [[table.row]], not both", t.name);
        }
        for r in &t.row {
            let n = t.columns.len();
            if r.cells.len() != n || !(r.paper.is_empty() || r.paper.len() == n) {
                bail!(
                    "table {:?}, row {:?}: {} cells and {} paper values for {n} columns",
                    t.name,
                    r.label,
                    r.cells.len(),
                    r.paper.len()
                );
            }
            for (cell, run) in r.cells.iter().zip(r.runs()) {
                match run {
                    None if cell.is_empty() => {}
                    None => {
                        bail!("table {:?}, row {:?}: cell {cell:?} is not FINETUNE:INIT", t.name, r.label)
                    }
                    Some((f, i)) => {
                        let spec = self.finetune.iter().find(|s| s.name == f);
                        if !spec.is_some_and(|s| s.init.iter().any(|x| x == i)) {
                            bail!(
                                "table {:?}, row {:?}: {cell:?} is not a fine-tuning of the recipe with that init",
                                t.name,
                                r.label
                            );
                        }
                    }
                }
            }
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
