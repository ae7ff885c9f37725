//! The plan of a recipe: every pretraining and fine-tuning run it asks for, with its resolved
//! config, data, initialisation and run folder (named by a hash of all that decides its result).
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use colorproxy_nn::transfer::{Task, TransferConfig};
use colorproxy_nn::PretrainConfig;

use super::recipe::{apply_overrides, key, FinetuneSpec, PretrainKind, PretrainSpec, Recipe};
use crate::{bail, Context};

/// Where the recipe's named data sets are.
pub struct DataSets {
    pub recipe_dir: PathBuf,
    pub out: PathBuf,
    pub given: BTreeMap<String, PathBuf>,
}

impl DataSets {
    /// The folder of `NAME[/sub]` and a description that does not depend on where it lies.
    pub fn resolve(&self, r: &Recipe, spec: &str) -> crate::Result<(PathBuf, String)> {
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
    /// Retrain on 100% of the training split with the found schedule (scored: the retrained one).
    pub retrain_full: bool,
    pub dir: PathBuf,
    pub key: String,
}

/// Every run of a recipe.
pub struct Plan {
    pub pretrain: Vec<PretrainPlan>,
    pub finetune: Vec<FinetunePlan>,
}

fn read_config(dir: &Path, file: &str) -> crate::Result<String> {
    let p = dir.join(file);
    std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))
}

impl Recipe {
    /// The recipe with every schedule in epochs turned into iterations: a pretraining's `epochs`
    /// and `lr_drop_epochs`, a sweep's `at_epochs` (and its `paper` keys). An epoch is its data's
    /// images (the data set's `images`, else its files counted) over the pretraining's batch.
    pub fn with_epochs(mut self, data: &DataSets) -> crate::Result<Self> {
        let mut per_epoch = BTreeMap::new();
        for k in 0..self.pretrain.len() {
            let p = &self.pretrain[k];
            let swept = self.sweep.iter().any(|s| !s.at_epochs.is_empty() && s.pretrain.contains(&p.name));
            if p.epochs.is_none() && p.lr_drop_epochs.is_none() && !swept {
                continue;
            }
            let per =
                self.iterations_per_epoch(p, data).with_context(|| format!("pretraining {:?}", p.name))?;
            let to_it = |e: f64| ((e * per).round() as usize).max(1);
            let p = &mut self.pretrain[k];
            if let Some(e) = p.epochs {
                p.iterations = Some(to_it(e));
            }
            if let Some(d) = &p.lr_drop_epochs {
                p.lr_drops = Some(d.iter().map(|&e| to_it(e)).collect());
            }
            per_epoch.insert(p.name.clone(), per);
        }
        for s in self.sweep.iter_mut().filter(|s| !s.at_epochs.is_empty()) {
            let pers: Vec<f64> = s.pretrain.iter().filter_map(|p| per_epoch.get(p).copied()).collect();
            let Some(&per) = pers.first() else {
                bail!("sweep {:?}: `at_epochs` needs at least one pretraining", s.name);
            };
            if pers.iter().any(|&x| x != per) {
                bail!("sweep {:?}: its pretrainings have epochs of different lengths", s.name);
            }
            let to_it = |e: f64| ((e * per).round() as usize).max(1);
            s.at = s.at_epochs.iter().map(|&e| to_it(e)).collect();
            let mut paper = BTreeMap::new();
            for (key, v) in std::mem::take(&mut s.paper) {
                let new = match key.split_once('@') {
                    Some((p, e)) => {
                        let e: f64 = e.parse().map_err(|_| {
                            crate::RunError::msg(format!(
                                "sweep {:?}: paper key {key:?}: PRETRAIN@EPOCHS",
                                s.name
                            ))
                        })?;
                        format!("{p}@{}", to_it(e))
                    }
                    None => key,
                };
                paper.insert(new, v);
            }
            s.paper = paper;
        }
        Ok(self)
    }

    /// Iterations per epoch of a pretraining: its data's images (or `epoch_images`) / its batch.
    fn iterations_per_epoch(&self, p: &PretrainSpec, data: &DataSets) -> crate::Result<f64> {
        let batch = match p.kind {
            PretrainKind::Colorization => self.base_pretrain_config(p, data)?.data.batch_size,
            PretrainKind::Supervised => self.supervised_config(p, data, Path::new(""))?.batch_size,
        } as f64;
        if let Some(n) = p.epoch_images {
            return Ok(n as f64 / batch);
        }
        let mut images = 0usize;
        for item in p.data.items() {
            let name = item.split(['/', '@']).next().unwrap_or(&item);
            let declared = (item == name).then(|| self.data.get(name).and_then(|d| d.images)).flatten();
            images += match declared {
                Some(n) => n,
                None => {
                    if item.contains('@') {
                        bail!("epochs of {item:?}: give the set's `images` in [data.{name}]");
                    }
                    let (mut path, _) = data.resolve(self, &item)?;
                    if p.kind == PretrainKind::Supervised {
                        path = path.join("train"); // class folders: DATA/train/<class>/
                    }
                    colorproxy_data::ImageSource::open(&path)
                        .with_context(|| format!("counting the images of {item:?} for epochs (or give `images` in [data.{name}])"))?
                        .len()
                }
            };
        }
        Ok(images as f64 / batch)
    }

    /// A colorization pretraining's config before `iterations` and the seed: preset or file, then
    /// its `set`.
    fn base_pretrain_config(&self, p: &PretrainSpec, data: &DataSets) -> crate::Result<PretrainConfig> {
        let base = match (&p.preset, &p.config) {
            (Some(n), None) => PretrainConfig::preset(n)?.to_toml(),
            (None, Some(f)) => read_config(&data.recipe_dir, f)?,
            _ => bail!("give preset or config"),
        };
        Ok(PretrainConfig::from_toml(&apply_overrides(&base, &p.set)?)?)
    }

    /// A supervised pretraining's config, resolved as `colorproxy pretrain-supervised` resolves
    /// its flags (`finetune::resolve_from`: the preset or config file with the recipe's `set`,
    /// random init, the seed, the cap, then the `set` again), on the class folders at `path`.
    fn supervised_config(
        &self,
        p: &PretrainSpec,
        data: &DataSets,
        path: &Path,
    ) -> crate::Result<TransferConfig> {
        let base = match (&p.preset, &p.config) {
            (Some(n), None) => TransferConfig::preset(n)?,
            (None, Some(f)) => TransferConfig::from_toml(&read_config(&data.recipe_dir, f)?)?,
            _ => bail!("give preset or config"),
        };
        if base.task != Task::Cls {
            bail!("supervised pretraining needs a classification preset (cls-cpu, cls-paper)");
        }
        let mut request = crate::request::FinetuneRequest::new(Task::Cls, path, Path::new(""));
        request.seed = Some(p.seed);
        request.max_iterations = p.iterations;
        request.set = p.set.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let mut c = crate::finetune::resolve_from(base, &request, crate::finetune::InitModel::Read)?;
        c.label_space.seed = p.seed;
        Ok(c)
    }

    /// Resolves every run (configs, data paths, keys, folders under `runs`).
    pub fn plan(&self, data: &DataSets, runs: &Path) -> crate::Result<Plan> {
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

    fn plan_pretrain(&self, p: &PretrainSpec, data: &DataSets, runs: &Path) -> crate::Result<PretrainPlan> {
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
                let mut c = self.base_pretrain_config(p, data)?;
                if let Some(n) = p.iterations {
                    c = c.with_iterations(n);
                }
                if let Some(d) = &p.lr_drops {
                    c.optim.lr_drops = d.clone();
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
                let mut c = self.supervised_config(p, data, &sources[0].0)?;
                // The recorded total batch is derived (batch_size x world_size, both in the key):
                // left out, as for fine-tunings, so that runs keep their keys.
                let t = colorproxy_nn::transfer::TransferConfig { total_batch: 0, ..c.clone() }.to_toml();
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
    ) -> crate::Result<FinetunePlan> {
        let task = f.task.task();
        let base = match (&f.preset, &f.config) {
            (Some(n), None) => TransferConfig::preset(n)?,
            (None, Some(file)) => TransferConfig::from_toml(&read_config(&data.recipe_dir, file)?)?,
            (None, None) => TransferConfig::cpu(task),
            _ => bail!("give preset or config, not both"),
        };
        if base.task != task {
            bail!("the config is for the other task");
        }
        let (base_init, at) = match init.split_once('@') {
            Some((b, it)) => {
                (b, Some(it.parse::<usize>().with_context(|| format!("init {init:?}: bad iteration"))?))
            }
            None => (init, None),
        };
        let weights = match init.strip_prefix("weights:") {
            Some(d) => Some(data.resolve(self, d)?),
            None => None,
        };
        let from = if base_init == "random" || weights.is_some() {
            None
        } else {
            let k = pretrain.iter().position(|p| p.name == base_init).context("unknown pretraining")?;
            let p = &pretrain[k];
            if let (Some(it), Config::Color(pc)) = (at, &p.config) {
                if !pc.snapshots.contains(&it) && it != pc.iterations {
                    bail!("init {init:?}: the pretraining takes no snapshot at {it} (list it in a sweep's `at`)");
                }
            } else if at.is_some() {
                bail!("init {init:?}: snapshots are of colorization pretrainings");
            }
            Some((k, at.filter(|&it| matches!(&p.config, Config::Color(pc) if it != pc.iterations))))
        };
        // Resolved as `colorproxy finetune` resolves its flags (`finetune::resolve_from`): the
        // preset or config file with the recipe's `set`, the init's backbone, the seed, the cap,
        // then the `set` again.
        let (path, desc) = data.resolve(self, &f.data)?;
        let mut request = crate::request::FinetuneRequest::new(task, &path, runs);
        request.seed = Some(seed);
        request.max_iterations = f.max_iterations;
        request.set = f.set.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let model_of = |p: &PretrainPlan| match &p.config {
            Config::Color(pc) => pc.model.clone(),
            Config::Supervised(tc) => tc.model.clone(),
        };
        let planned;
        let init_model = match (&from, &weights) {
            (Some((k, _)), _) => {
                planned = model_of(&pretrain[*k]);
                crate::finetune::InitModel::Planned(&planned)
            }
            (None, None) => {
                request.init = "random".into();
                crate::finetune::InitModel::Read
            }
            (None, Some((path, _))) => {
                request.init = path.to_string_lossy().into_owned();
                if path.is_file() {
                    crate::finetune::InitModel::Read
                } else {
                    crate::finetune::InitModel::Unread
                }
            }
        };
        let c = crate::finetune::resolve_from(base, &request, init_model)?;
        let init_key = match (from, &weights) {
            (None, Some((_, desc))) => format!("weights:{desc}"),
            (None, None) => "random".to_string(),
            (Some((k, it)), _) => {
                format!("{}@{}", pretrain[k].key, it.map(|i| i.to_string()).unwrap_or_default())
            }
        };
        let mut keyed = c.clone();
        keyed.init = init_key;
        // The recorded total batch is derived (batch_size x world_size, both in the key); left out
        // so that runs keyed before the recipes resolved through `finetune::resolve` keep their keys.
        keyed.total_batch = 0;
        let full = if f.retrain_full { "\nretrain_full" } else { "" };
        let key = key(&format!("{desc}\n{}\n{}\n{}{full}", f.train_split, f.eval_split, keyed.to_toml()));
        // The last snapshot is the pretraining's final weights: one folder for both names.
        let shown = match from {
            Some((_, None)) => base_init.to_string(),
            _ => init.replace('@', "-at").replace(':', "-"),
        };
        let dir = runs.join(format!("finetune-{}-{shown}-seed{seed}-{key}", f.name));
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
            retrain_full: f.retrain_full,
            dir,
            key,
        })
    }
}
