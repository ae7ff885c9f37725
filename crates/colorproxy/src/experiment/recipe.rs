//! The recipe format (`experiments/*.toml`, documented in `experiments/README.md`) and its
//! resolution into runs: named data sets, pretrainings (colorization or supervised), fine-tunings
//! from them (x seeds), tables and snapshot sweeps. A run's key is a hash of everything that
//! decides its result (resolved config, data, init, seed), so a changed recipe makes new runs and
//! an unchanged one finds its finished runs again.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use colorproxy_nn::transfer::{Task, TransferConfig};
use colorproxy_nn::PretrainConfig;
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
    pub fn read(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let r: Recipe =
            toml::from_str(&text).with_context(|| format!("{}: not a valid recipe", path.display()))?;
        r.check().with_context(|| format!("recipe {}", path.display()))?;
        Ok(r)
    }

    /// Names unique and known, references resolvable.
    fn check(&self) -> anyhow::Result<()> {
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
pub fn apply_overrides(text: &str, set: &toml::Table) -> anyhow::Result<String> {
    let mut doc: toml::Table = toml::from_str(text).context("config")?;
    for (key, value) in set {
        let parts: Vec<&str> = key.split('.').collect();
        let mut t = &mut doc;
        for p in &parts[..parts.len() - 1] {
            let e = t.entry(p.to_string()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
            t = e.as_table_mut().with_context(|| format!("override {key:?}: {p:?} is not a table"))?;
        }
        t.insert(parts[parts.len() - 1].to_string(), value.clone());
    }
    Ok(toml::to_string(&doc)?)
}

/// A short stable hash (hex) of text.
pub fn key(text: &str) -> String {
    format!("{:016x}", xxhash_rust::xxh3::xxh3_64(text.as_bytes()))[..10].to_string()
}

/// Where the recipe's named data sets are.
pub struct DataSets {
    pub recipe_dir: PathBuf,
    pub out: PathBuf,
    pub given: BTreeMap<String, PathBuf>,
}

impl DataSets {
    /// The folder of `NAME[/sub]` and a description that does not depend on where it lies.
    pub fn resolve(&self, r: &Recipe, spec: &str) -> anyhow::Result<(PathBuf, String)> {
        let (name, sub) = spec.split_once('/').unwrap_or((spec, ""));
        let d = r.data.get(name).with_context(|| format!("data {name:?} is not in the recipe's [data]"))?;
        let (root, desc) = if let Some(p) = self.given.get(name) {
            (p.clone(), format!("given:{name}"))
        } else if let Some(g) = &d.generate {
            (self.out.join("data").join(name), format!("generate:{}", serde_json::to_string(g)?))
        } else if let Some(p) = &d.path {
            (self.recipe_dir.join(p), format!("path:{p}"))
        } else {
            bail!("data {name:?} has no path in the recipe: give it with --data {name}=PATH ({})", d.about);
        };
        let path = if sub.is_empty() { root } else { root.join(sub) };
        Ok((path, if sub.is_empty() { desc } else { format!("{desc}/{sub}") }))
    }
}

/// A resolved pretraining run.
#[derive(Debug, Clone)]
pub struct PretrainPlan {
    pub name: String,
    pub kind: PretrainKind,
    pub dir: PathBuf,
    /// Colorization: the config; supervised: the fine-tuning config.
    pub config: Config,
    /// The images (folder, file list to write, or class folders).
    pub data: PretrainData,
    pub key: String,
}

#[derive(Debug, Clone)]
pub enum Config {
    Color(Box<PretrainConfig>),
    Supervised(Box<TransferConfig>),
}

#[derive(Debug, Clone)]
pub enum PretrainData {
    Folder(PathBuf),
    /// Pooled sources: written as a file list at `list` before the run.
    Pooled {
        list: PathBuf,
        sources: Vec<(PathBuf, Option<String>)>,
    },
}

impl PretrainData {
    pub fn path(&self) -> &Path {
        match self {
            PretrainData::Folder(p) => p,
            PretrainData::Pooled { list, .. } => list,
        }
    }
}

/// A resolved fine-tuning run.
#[derive(Debug, Clone)]
pub struct FinetunePlan {
    /// The fine-tuning's name (a table column).
    pub name: String,
    /// The init as the recipe names it (`random`, `colorization`, `colorization@200`).
    pub init: String,
    pub seed: u64,
    pub task: Task,
    pub data: PathBuf,
    pub train_split: String,
    pub eval_split: String,
    /// The config; `init` is filled in with the checkpoint path when the run starts.
    pub config: TransferConfig,
    /// The pretraining run it starts from and the snapshot iteration (None: last).
    pub from: Option<(usize, Option<usize>)>,
    pub dir: PathBuf,
    pub key: String,
}

/// Every run of a recipe.
pub struct Plan {
    pub pretrain: Vec<PretrainPlan>,
    pub finetune: Vec<FinetunePlan>,
}

fn read_config(dir: &Path, file: &str) -> anyhow::Result<String> {
    let p = dir.join(file);
    std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))
}

impl Recipe {
    /// Resolves every run (configs, data paths, keys, folders under `runs`).
    pub fn plan(&self, data: &DataSets, runs: &Path) -> anyhow::Result<Plan> {
        let mut pretrain = Vec::new();
        for p in &self.pretrain {
            pretrain.push(
                self.plan_pretrain(p, data, runs).with_context(|| format!("pretraining {:?}", p.name))?,
            );
        }
        let mut finetune = Vec::new();
        for f in &self.finetune {
            let mut inits: Vec<String> = f.init.clone();
            for s in self.sweep.iter().filter(|s| s.finetune == f.name) {
                for p in &s.pretrain {
                    inits.extend(s.at.iter().map(|it| format!("{p}@{it}")));
                }
            }
            let mut seen = std::collections::BTreeSet::new();
            inits.retain(|i| seen.insert(i.clone()));
            for init in inits {
                for &seed in f.seeds.as_ref().unwrap_or(&self.seeds) {
                    let plan = self
                        .plan_finetune(f, &init, seed, &pretrain, data, runs)
                        .with_context(|| format!("fine-tuning {:?} from {init}, seed {seed}", f.name))?;
                    finetune.push(plan);
                }
            }
        }
        Ok(Plan { pretrain, finetune })
    }

    fn plan_pretrain(&self, p: &PretrainSpec, data: &DataSets, runs: &Path) -> anyhow::Result<PretrainPlan> {
        let items = p.data.items();
        let mut sources = Vec::new();
        let mut desc = Vec::new();
        for it in &items {
            let (spec, split) = match it.split_once('@') {
                Some((s, split)) => (s, Some(split.to_string())),
                None => (it.as_str(), None),
            };
            let (path, d) = data.resolve(self, spec)?;
            desc.push(format!("{d}@{}", split.clone().unwrap_or_default()));
            sources.push((path, split));
        }
        let (config, text) = match p.kind {
            PretrainKind::Colorization => {
                let base = match (&p.preset, &p.config) {
                    (Some(n), None) => PretrainConfig::preset(n)?.to_toml(),
                    (None, Some(f)) => read_config(&data.recipe_dir, f)?,
                    _ => bail!("give preset or config"),
                };
                let mut c = PretrainConfig::from_toml(&apply_overrides(&base, &p.set)?)?;
                if let Some(n) = p.iterations {
                    c = c.with_iterations(n);
                }
                c.seed = p.seed;
                // Snapshots where the recipe's sweeps fine-tune.
                for s in self.sweep.iter().filter(|s| s.pretrain.contains(&p.name)) {
                    c.snapshots.extend(s.at.iter().copied().filter(|&i| i < c.iterations));
                }
                c.snapshots.sort_unstable();
                c.snapshots.dedup();
                c.validate()?;
                let t = c.to_toml();
                (Config::Color(Box::new(c)), t)
            }
            PretrainKind::Supervised => {
                if items.len() != 1 || sources[0].1.is_some() {
                    bail!("supervised pretraining reads one set of class folders");
                }
                let base = match (&p.preset, &p.config) {
                    (Some(n), None) => TransferConfig::preset(n)?.to_toml(),
                    (None, Some(f)) => read_config(&data.recipe_dir, f)?,
                    _ => bail!("give preset or config"),
                };
                let mut c = TransferConfig::from_toml(&apply_overrides(&base, &p.set)?)?;
                if c.task != Task::Cls {
                    bail!("supervised pretraining needs a classification preset (cls-cpu, cls-paper)");
                }
                if let Some(n) = p.iterations {
                    c = c.with_max_iterations(n);
                }
                c.seed = p.seed;
                c.init = "random".into();
                c.rebalance = colorproxy_nn::backbone::arch::arch(&c.model.arch)?.rebalance;
                c.label_space.seed = p.seed;
                c.validate()?;
                let t = c.to_toml();
                // A mapping file named as `DATA/sub/file` (e.g. generated), else relative to the
                // recipe; the key keeps the name as written.
                if let Some(f) = c.label_space.buckets_file.clone() {
                    let name = f.to_string_lossy().into_owned();
                    let first = name.split('/').next().unwrap_or("");
                    c.label_space.buckets_file = Some(if self.data.contains_key(first) {
                        data.resolve(self, &name)?.0
                    } else {
                        data.recipe_dir.join(f)
                    });
                }
                (Config::Supervised(Box::new(c)), t)
            }
        };
        let key = key(&format!("{:?}\n{}\n{text}", p.kind, desc.join(",")));
        let dir = runs.join(format!("pretrain-{}-{key}", p.name));
        let data = if items.len() == 1 && sources[0].1.is_none() {
            PretrainData::Folder(sources.remove(0).0)
        } else {
            PretrainData::Pooled { list: dir.with_extension("images.txt"), sources }
        };
        Ok(PretrainPlan { name: p.name.clone(), kind: p.kind, dir, config, data, key })
    }

    fn plan_finetune(
        &self,
        f: &FinetuneSpec,
        init: &str,
        seed: u64,
        pretrain: &[PretrainPlan],
        data: &DataSets,
        runs: &Path,
    ) -> anyhow::Result<FinetunePlan> {
        let task = f.task.task();
        let base = match (&f.preset, &f.config) {
            (Some(n), None) => TransferConfig::preset(n)?.to_toml(),
            (None, Some(file)) => read_config(&data.recipe_dir, file)?,
            (None, None) => TransferConfig::cpu(task).to_toml(),
            _ => bail!("give preset or config, not both"),
        };
        let mut c = TransferConfig::from_toml(&apply_overrides(&base, &f.set)?)?;
        if c.task != task {
            bail!("the config is for the other task");
        }
        if let Some(n) = f.max_iterations {
            c = c.with_max_iterations(n);
        }
        c.seed = seed;
        let (base_init, at) = match init.split_once('@') {
            Some((b, it)) => {
                (b, Some(it.parse::<usize>().with_context(|| format!("init {init:?}: bad iteration"))?))
            }
            None => (init, None),
        };
        let from = if base_init == "random" {
            None
        } else {
            let k = pretrain.iter().position(|p| p.name == base_init).context("unknown pretraining")?;
            let p = &pretrain[k];
            // The backbone of the pretraining fixes the widths.
            let m = match &p.config {
                Config::Color(pc) => &pc.model,
                Config::Supervised(tc) => &tc.model,
            };
            c.model.arch = m.arch.clone();
            c.model.width = m.width;
            c.model.fc_channels = m.fc_channels;
            if let (Some(it), Config::Color(pc)) = (at, &p.config) {
                if !pc.snapshots.contains(&it) && it != pc.iterations {
                    bail!("init {init:?}: the pretraining takes no snapshot at {it} (list it in a sweep's `at`)");
                }
            } else if at.is_some() {
                bail!("init {init:?}: snapshots are of colorization pretrainings");
            }
            Some((k, at.filter(|&it| matches!(&p.config, Config::Color(pc) if it != pc.iterations))))
        };
        let mut c = c.for_arch();
        let arch = colorproxy_nn::backbone::arch::arch(&c.model.arch)?;
        if from.is_none() {
            c.init = "random".into();
            c.rebalance = c.rebalance || arch.rebalance;
        }
        let init_key = match from {
            None => "random".to_string(),
            Some((k, it)) => format!("{}@{}", pretrain[k].key, it.map(|i| i.to_string()).unwrap_or_default()),
        };
        let (path, desc) = data.resolve(self, &f.data)?;
        let mut keyed = c.clone();
        keyed.init = init_key;
        let key = key(&format!("{desc}\n{}\n{}\n{}", f.train_split, f.eval_split, keyed.to_toml()));
        // The last snapshot is the pretraining's final weights: one folder for both names.
        let shown = match from {
            Some((_, None)) => base_init.to_string(),
            _ => init.replace('@', "-at"),
        };
        let dir = runs.join(format!("finetune-{}-{shown}-seed{seed}-{key}", f.name));
        c.validate()?;
        Ok(FinetunePlan {
            name: f.name.clone(),
            init: init.to_string(),
            seed,
            task,
            data: path,
            train_split: f.train_split.clone(),
            eval_split: f.eval_split.clone(),
            config: c,
            from,
            dir,
            key,
        })
    }
}
