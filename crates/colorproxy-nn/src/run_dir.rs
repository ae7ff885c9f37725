//! A run folder, shared by pretraining and fine-tuning: its paths, the metrics log (JSON lines,
//! cut back to the checkpoint on resume), the progress callbacks of a training loop, starting
//! fresh or resuming, and finding the run config that belongs to a checkpoint.
//!
//! ```text
//! RUN_DIR/config.toml        the resolved config
//! RUN_DIR/metrics.jsonl      one JSON object per logged iteration
//! RUN_DIR/checkpoints/       gen-N/ (resumable), last.safetensors, iter-N.safetensors (snapshots)
//! RUN_DIR/.lock              held by the process that runs in the folder
//! ```
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::NnError;

fn file_err(path: &Path, e: impl std::fmt::Display) -> NnError {
    NnError::File { path: path.to_owned(), msg: e.to_string() }
}

/// Paths of a run folder.
#[derive(Debug, Clone)]
pub struct RunPaths {
    pub root: PathBuf,
}

impl RunPaths {
    pub fn new(root: &Path) -> Self {
        Self { root: root.to_owned() }
    }
    pub fn config(&self) -> PathBuf {
        self.root.join("config.toml")
    }
    pub fn metrics(&self) -> PathBuf {
        self.root.join("metrics.jsonl")
    }
    pub fn checkpoints(&self) -> PathBuf {
        self.root.join("checkpoints")
    }
    /// The newest weights (a copy of the newest checkpoint generation's), for readers such as
    /// `colorize` and `finetune --init`.
    pub fn last_weights(&self) -> PathBuf {
        self.checkpoints().join("last.safetensors")
    }
    /// The state file of the newest checkpoint generation (see the checkpoint module).
    pub fn last_state(&self) -> PathBuf {
        match generations(self).first() {
            Some((_, dir)) => dir.join("state.json"),
            None => self.checkpoints().join("gen-none/state.json"),
        }
    }
    pub fn snapshot(&self, iteration: usize) -> PathBuf {
        self.checkpoints().join(format!("iter-{iteration}.safetensors"))
    }
    pub fn lock_file(&self) -> PathBuf {
        self.root.join(".lock")
    }

    /// Whether the folder holds (part of) a run: a config, metrics or checkpoints.
    pub fn holds_run(&self) -> bool {
        self.config().exists()
            || self.metrics().exists()
            || std::fs::read_dir(self.checkpoints()).is_ok_and(|mut d| d.next().is_some())
    }

    /// Takes the run folder for this process (created if needed): a second process on the same
    /// folder gets an error naming the holder. The lock is held until the guard is dropped (or
    /// the process ends, however it ends).
    pub fn lock(&self) -> Result<RunLock, NnError> {
        std::fs::create_dir_all(&self.root).map_err(|e| file_err(&self.root, e))?;
        let path = self.lock_file();
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| file_err(&path, e))?;
        if let Err(e) = f.try_lock() {
            let holder = std::fs::read_to_string(&path).unwrap_or_default();
            let holder = holder.trim();
            return Err(file_err(
                &self.root,
                match e {
                    std::fs::TryLockError::WouldBlock => format!(
                        "is in use by another run ({})",
                        if holder.is_empty() { "holder unknown" } else { holder }
                    ),
                    std::fs::TryLockError::Error(e) => format!("cannot lock {}: {e}", path.display()),
                },
            ));
        }
        let me = format!(
            "pid {} on {}, since {}: {}",
            std::process::id(),
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .unwrap_or_default(),
            utc_now(),
            std::env::args().collect::<Vec<_>>().join(" ")
        );
        use std::io::{Seek, Write};
        let _ = f.set_len(0).and_then(|_| f.rewind()).and_then(|_| f.write_all(me.as_bytes()));
        Ok(RunLock { _file: f })
    }

    /// Refuses a fresh run in a folder that holds one, and `--force` in a folder with files that
    /// are not colorproxy's, before anything in it is touched (not even the lock file);
    /// [`Self::start`] checks again with the lock held.
    pub fn refuse_existing(&self, mode: StartMode) -> Result<(), NnError> {
        if self.root.exists() && !self.root.is_dir() {
            return Err(file_err(
                &self.root,
                "is a file, not a folder: give --out a folder (new or a run's)",
            ));
        }
        if mode == StartMode::Fresh && self.holds_run() {
            return Err(file_err(
                &self.root,
                "already holds a run: continue it with --resume, or start over with --force",
            ));
        }
        if mode == StartMode::Overwrite {
            self.own_files()?;
        }
        Ok(())
    }

    /// Prepares the folder for a run (call with the lock held, after every input was validated):
    /// `Resume` needs a checkpoint; `Fresh` refuses a folder that holds a run; `Overwrite` clears
    /// what an earlier run left (checkpoints, metrics, schedule, results) so nothing of it is
    /// resumed or reported.
    pub fn start(&self, mode: StartMode) -> Result<(), NnError> {
        match mode {
            StartMode::Resume => {
                if generations(self).is_empty() {
                    return Err(file_err(&self.checkpoints(), "no checkpoint to resume from"));
                }
            }
            StartMode::Fresh if self.holds_run() => {
                return Err(file_err(
                    &self.root,
                    "already holds a run: continue it with --resume, or start over with --force",
                ));
            }
            StartMode::Fresh => {}
            StartMode::Overwrite => {
                let ours = self.own_files()?;
                for p in ours {
                    let gone =
                        if p.is_dir() { std::fs::remove_dir_all(&p) } else { std::fs::remove_file(&p) };
                    gone.map_err(|e| file_err(&p, format!("--force cannot remove it: {e}")))?;
                }
            }
        }
        std::fs::create_dir_all(self.checkpoints()).map_err(|e| file_err(&self.checkpoints(), e))?;
        if self.marker().is_file() {
            return Ok(());
        }
        crate::atomic_io::write_atomic(&self.marker(), MARKER_TEXT.as_bytes())
    }

    /// The marker file that says colorproxy made the folder (`--force` removes files only in a
    /// folder with it, or with an earlier version's run config and data record).
    pub fn marker(&self) -> PathBuf {
        self.root.join(".colorproxy-run")
    }

    /// What `--force` removes: the files of colorproxy's run layout ([`RUN_FILES`], `checkpoints/`
    /// holding only checkpoints, temp files). A folder that is not colorproxy's, or that holds
    /// anything else (a file of the user's), is an error naming it, and nothing is removed.
    pub fn own_files(&self) -> Result<Vec<PathBuf>, NnError> {
        let refuse = |p: &Path, why: &str| {
            Err(file_err(
                p,
                format!("{why}; --force removes only the files colorproxy writes in a run folder, so nothing was \
                 removed: move it away or give another --out"),
            ))
        };
        let ours_by_config = || {
            let config = std::fs::read_to_string(self.config()).unwrap_or_default();
            RunKind::of_config(&config) != RunKind::Unknown
                && crate::atomic_io::read_json::<DataRecord>(&self.data_record()).is_ok()
        };
        let Ok(entries) = std::fs::read_dir(&self.root) else { return Ok(vec![]) };
        let entries: Vec<_> = entries.flatten().map(|e| e.path()).collect();
        let is_temp = |n: &str| n.starts_with('.') && n.contains(".tmp.");
        // What a run killed before its marker and data record were written leaves (the lock, temp
        // files, an empty checkpoints folder) does not make a folder the user's.
        let only_temp = |d: &Path| {
            std::fs::read_dir(d).is_ok_and(|r| r.flatten().all(|e| is_temp(&e.file_name().to_string_lossy())))
        };
        let visible = entries.iter().any(|p| {
            let n = name_of(p);
            !(matches!(n.as_str(), ".lock" | ".colorproxy-run")
                || is_temp(&n)
                || (n == "checkpoints" && only_temp(p)))
        });
        if visible && !self.marker().is_file() && !ours_by_config() {
            return refuse(
                &self.root,
                "is not a colorproxy run folder (no .colorproxy-run marker, no run config)",
            );
        }
        let mut ours = vec![];
        for p in entries {
            let n = name_of(&p);
            match n.as_str() {
                // Kept: the lock (held now), the marker, a retrain-full run and the README's eval report.
                ".lock" | ".colorproxy-run" | "full" | "eval" => {}
                "checkpoints" if p.is_dir() => {
                    for c in std::fs::read_dir(&p).map_err(|e| file_err(&p, e))?.flatten() {
                        let (cp, cn) = (c.path(), c.file_name().to_string_lossy().into_owned());
                        let own = is_temp(&cn)
                            || cn == "last.safetensors"
                            || (cp.is_dir()
                                && cn.strip_prefix("gen-").is_some_and(|i| i.parse::<usize>().is_ok()))
                            || cn
                                .strip_prefix("iter-")
                                .and_then(|r| r.strip_suffix(".safetensors"))
                                .is_some_and(|i| i.parse::<usize>().is_ok());
                        if !own {
                            return refuse(&cp, "is not a checkpoint colorproxy wrote");
                        }
                    }
                    ours.push(p);
                }
                n if RUN_FILES.contains(&n) && p.is_file() => ours.push(p),
                n if is_temp(n) => ours.push(p),
                _ => return refuse(&p, "is not a file of colorproxy's run layout"),
            }
        }
        Ok(ours)
    }

    /// Takes the folder for a run, in order: refuses an existing run without resume / force,
    /// locks the folder, removes temp files an earlier process of the folder left (a kill or a
    /// full disk), prepares it ([`Self::start`]), checks a resumed run's config with
    /// `check_config`, records (or, on resume, checks) the data. Call it after every input was
    /// validated: `Overwrite` deletes the earlier run. Returns the lock and whether the run
    /// resumes (`Auto` resumes when the folder holds a checkpoint).
    pub fn take(
        &self,
        resume: Resume,
        force: bool,
        data: &DataRecord,
        check_config: impl Fn(&RunPaths) -> Result<(), NnError>,
    ) -> Result<(RunLock, bool), NnError> {
        let mode = match resume {
            Resume::Auto if !generations(self).is_empty() => StartMode::Resume,
            Resume::Auto if self.holds_run() => {
                // A run that stopped before its first checkpoint (e.g. requeued early): the same run
                // starts over; another run's folder is refused.
                if self.config().is_file() {
                    check_config(self).map_err(|e| {
                        file_err(
                            &self.root,
                            format!(
                                "--resume auto: the folder holds a different run ({e}); use another --out"
                            ),
                        )
                    })?;
                    StartMode::Overwrite
                } else {
                    StartMode::Fresh
                }
            }
            Resume::Auto => StartMode::Fresh,
            Resume::Yes => StartMode::Resume,
            Resume::No if force => StartMode::Overwrite,
            Resume::No => StartMode::Fresh,
        };
        self.refuse_existing(mode)?;
        let lock = self.lock()?;
        self.remove_stale_temp_files();
        self.start(mode)?;
        let resumed = mode == StartMode::Resume;
        if resumed {
            check_config(self)?;
        }
        self.check_data(data, resumed)?;
        Ok((lock, resumed))
    }

    /// Removes the temp files and folders (`.NAME.tmp.PID.N`) of the run folder and its
    /// checkpoints that a killed process or a full disk left behind. Call with the lock held: no
    /// other process writes here then.
    pub fn remove_stale_temp_files(&self) {
        for dir in [self.root.clone(), self.checkpoints()] {
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with('.') && name.contains(".tmp.") {
                    let p = e.path();
                    let _ = if p.is_dir() { std::fs::remove_dir_all(&p) } else { std::fs::remove_file(&p) };
                }
            }
        }
    }

    /// The saved config text (for comparing a resumed run's config with the original).
    pub fn read_config(&self) -> Result<String, NnError> {
        std::fs::read_to_string(self.config()).map_err(|e| file_err(&self.config(), e))
    }

    /// Writes the resolved config (atomically; not rewritten when unchanged).
    pub fn write_config(&self, toml: &str) -> Result<(), NnError> {
        if std::fs::read_to_string(self.config()).is_ok_and(|t| t == toml) {
            return Ok(());
        }
        crate::atomic_io::write_atomic(&self.config(), toml.as_bytes())
    }
}

/// The files colorproxy writes at the top of a run folder (besides `checkpoints/`, `.lock`, the
/// marker, temp files and a `--retrain-full` run's `full/`), which `--force` removes.
pub const RUN_FILES: &[&str] = &[
    "config.toml",
    "metrics.jsonl",
    "data.json",
    "schedule.json",
    "results.json",
    "results.md",
    "report.html",
    "curves.png",
    "curves.svg",
    "loss.png",
    "loss.svg",
    "examples.png",
    "examples.svg",
    "done.json",
];

const MARKER_TEXT: &str = "A colorproxy run folder: --force removes only the files of its layout.\n";

fn name_of(p: &Path) -> String {
    p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// Whether a run continues from the checkpoint in its folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Resume {
    /// A new run (`--force` to replace one in the folder).
    #[default]
    No,
    /// Continue from the newest complete checkpoint; an error if there is none (`--resume`).
    Yes,
    /// Continue if the folder holds a checkpoint of this run, start fresh if it holds none;
    /// a folder of another run is refused (`--resume auto`: requeue-safe).
    Auto,
}

impl Resume {
    /// `--resume` given (either form).
    pub fn requested(self) -> bool {
        self != Self::No
    }
}

/// How a run uses its folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartMode {
    /// A new run; the folder must not hold one.
    Fresh,
    /// Continue from the newest complete checkpoint.
    Resume,
    /// A new run replacing whatever the folder holds (`--force`).
    Overwrite,
}

/// The lock on a run folder ([`RunPaths::lock`]), released when dropped.
#[derive(Debug)]
pub struct RunLock {
    _file: std::fs::File,
}

/// What the caller sees while a training loop runs (progress bars, logs).
///
/// `M` is the record of a logged step (pretraining: its metrics; fine-tuning logs none).
pub trait TrainObserver<M = ()> {
    fn start(&mut self, _start_iteration: usize, _total: usize) {}
    /// The learning rate of the step about to be reported.
    fn lr(&mut self, _lr: f64) {}
    fn step(&mut self, _iteration: usize, _loss: f64, _images_per_s: f64) {}
    fn log(&mut self, _record: &M) {}
    fn message(&mut self, _msg: &str) {}
}

/// An observer that does nothing.
pub struct Silent;
impl<M> TrainObserver<M> for Silent {}

/// The metrics log `metrics.jsonl`, opened for appending.
pub struct MetricsLog {
    path: PathBuf,
    file: std::fs::File,
}

impl MetricsLog {
    /// Opens the log; `resumed_at`: the iteration of the checkpoint a run resumes from (lines
    /// past it are dropped and will be recomputed).
    pub fn open(path: &Path, resumed_at: Option<usize>) -> Result<Self, NnError> {
        if let Some(it) = resumed_at {
            truncate_metrics(path, it)?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| file_err(path, e))?;
        Ok(Self { path: path.to_owned(), file })
    }

    /// Appends one line.
    pub fn append<T: Serialize>(&mut self, row: &T) -> Result<(), NnError> {
        let line = serde_json::to_string(row).map_err(|e| file_err(&self.path, e))?;
        writeln!(self.file, "{line}").map_err(|e| file_err(&self.path, e))
    }
}

/// Keeps the metrics lines up to `iteration`.
pub fn truncate_metrics(path: &Path, iteration: usize) -> Result<(), NnError> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(());
    };
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .ok()
                .and_then(|v| v.get("iteration")?.as_u64())
                .is_some_and(|i| i as usize <= iteration)
        })
        .collect();
    let mut s = kept.join("\n");
    if !s.is_empty() {
        s.push('\n');
    }
    if s.len() == text.len() {
        return Ok(());
    }
    // Atomically: a failed write (a full disk) leaves the log as it was.
    crate::atomic_io::write_atomic(path, s.as_bytes())
}

/// Reads a metrics log (one `T` per line).
pub fn read_jsonl<T: DeserializeOwned>(path: &Path) -> Result<Vec<T>, NnError> {
    let text = std::fs::read_to_string(path).map_err(|e| file_err(path, e))?;
    text.lines()
        .enumerate()
        .map(|(i, l)| serde_json::from_str(l).map_err(|e| file_err(path, format!("line {}: {e}", i + 1))))
        .collect()
}

/// The config of the run a checkpoint belongs to: `given`, else the run folder's config.toml
/// (`RUN_DIR/checkpoints/X.safetensors` -> `RUN_DIR/config.toml`, or a config.toml beside the
/// checkpoint). Returns the file's path and text.
pub fn config_of_checkpoint(ck: &Path, given: Option<&Path>) -> Result<(PathBuf, String), NnError> {
    let candidates: Vec<PathBuf> = match given {
        Some(p) => vec![p.to_owned()],
        None => {
            let dir = ck.parent().unwrap_or(Path::new("."));
            vec![dir.join("../config.toml"), dir.join("config.toml")]
        }
    };
    for c in &candidates {
        if c.is_file() {
            let text = std::fs::read_to_string(c).map_err(|e| file_err(c, e))?;
            return Ok((c.clone(), text));
        }
    }
    Err(file_err(
        ck,
        format!(
            "no run config: expected the run's config.toml at {} (or pass --config)",
            candidates[0].display()
        ),
    ))
}

/// The time now as `YYYY-MM-DD HH:MM:SS UTC`.
pub fn utc_now() -> String {
    let secs =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    utc_time(secs as i64)
}

/// Seconds since 1970-01-01 as `YYYY-MM-DD HH:MM:SS UTC` (the proleptic Gregorian calendar,
/// H. Hinnant's days-to-civil algorithm).
pub fn utc_time(secs: i64) -> String {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Which command made a run folder, judged from its config.toml.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunKind {
    /// `colorproxy pretrain` (a `[targets]` section).
    Pretrain,
    /// `colorproxy finetune` or `pretrain-supervised` (a `task` key).
    Finetune,
    /// Neither (not TOML, or another file).
    Unknown,
}

impl RunKind {
    pub fn of_config(text: &str) -> Self {
        match text.parse::<toml::Table>() {
            Ok(t) if t.contains_key("task") => Self::Finetune,
            Ok(t) if t.contains_key("targets") || t.contains_key("iterations") => Self::Pretrain,
            _ => Self::Unknown,
        }
    }
}

/// What a run trains on, recorded as `RUN_DIR/data.json` and checked when it resumes.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct DataRecord {
    /// The data as given (folder, file list or devkit and split).
    pub source: String,
    pub items: usize,
    /// xxh3 of the items' names (and sizes, for files), in order.
    pub fingerprint: String,
}

impl DataRecord {
    /// A record of `items` (names, e.g. relative paths with sizes, or VOC ids).
    pub fn new(source: &str, items: &[String]) -> Self {
        let joined = items.join("\n");
        Self {
            source: source.into(),
            items: items.len(),
            fingerprint: format!("{:016x}", xxhash_rust::xxh3::xxh3_64(joined.as_bytes())),
        }
    }

    /// A record of image files: their paths relative to `root` and their sizes.
    pub fn of_files(root: &Path, files: &[PathBuf]) -> Self {
        let items: Vec<String> = files
            .iter()
            .map(|f| {
                let size = std::fs::metadata(f).map(|m| m.len()).unwrap_or(0);
                format!("{}\t{size}", f.strip_prefix(root).unwrap_or(f).display())
            })
            .collect();
        Self::new(&root.display().to_string(), &items)
    }
}

impl RunPaths {
    pub fn data_record(&self) -> PathBuf {
        self.root.join("data.json")
    }

    /// On resume, checks that `data` is what the run trained on (a run from before records
    /// existed is accepted and recorded); otherwise records it.
    pub fn check_data(&self, data: &DataRecord, resume: bool) -> Result<(), NnError> {
        let path = self.data_record();
        if resume && path.is_file() {
            let saved: DataRecord = crate::atomic_io::read_json(&path)?;
            if saved.fingerprint != data.fingerprint {
                return Err(file_err(
                    &self.root,
                    format!(
                        "--resume with other data: the run trained on {} ({} items, fingerprint {}), \
                         the data given now are {} ({} items, fingerprint {}); resume with the original \
                         data or start a new run",
                        saved.source,
                        saved.items,
                        saved.fingerprint,
                        data.source,
                        data.items,
                        data.fingerprint
                    ),
                ));
            }
            return Ok(());
        }
        crate::atomic_io::write_json(&path, data)
    }
}

/// The generation folders of a run, newest first: `(iteration, path)`.
pub fn generations(paths: &RunPaths) -> Vec<(usize, PathBuf)> {
    let mut v: Vec<(usize, PathBuf)> = std::fs::read_dir(paths.checkpoints())
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let it = name.strip_prefix("gen-")?.parse().ok()?;
            Some((it, e.path()))
        })
        .collect();
    v.sort_by_key(|g| std::cmp::Reverse(g.0));
    v
}
