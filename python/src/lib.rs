//! `colorproxy._core`: the Python package's native module. Thin bindings over the workspace's
//! library crates: colour targets, the pretraining batch stream, the torchvision export, and the
//! typed requests of `pretrain`, `finetune` and `eval`. The Python layer (`colorproxy/__init__.py`)
//! gives them their documented signatures.
//!
//! Tensors cross into Python as `torch.Tensor`s that share the libtorch storage (pyo3-tch), so the
//! package must run in a Python whose torch is the libtorch it was built against (2.11).
//! Library errors become `colorproxy.ColorproxyError` with the library's message (file and
//! problem); an interrupted run (Ctrl-C in Python) checkpoints and raises `KeyboardInterrupt`.
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

use colorproxy_data::{BatchLoader, DataPosition, RgbImage8};
use colorproxy_nn::transfer::Task;
use colorproxy_run::batches::{batch_tensors, BatchStream};
use colorproxy_run::request::{EvalRequest, FinetuneRequest, PretrainRequest, Resume};
use colorproxy_run::RunError;
use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyKeyboardInterrupt};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use pyo3_tch::PyTensor;

create_exception!(
    _core,
    ColorproxyError,
    PyException,
    "An error of colorproxy: the message names the file and the problem."
);

/// A library error as a Python exception: the message with its causes (`context: cause`).
fn py_err(e: RunError) -> PyErr {
    if let RunError::Interrupted { .. } = e {
        return PyKeyboardInterrupt::new_err(
            "interrupted; the run wrote its checkpoint (resume=True continues it)",
        );
    }
    let mut msg = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        let m = s.to_string();
        if !msg.contains(&m) {
            msg = format!("{msg}: {m}");
        }
        source = s.source();
    }
    ColorproxyError::new_err(msg)
}

fn resume_of(resume: &str) -> PyResult<Resume> {
    match resume {
        "no" | "false" => Ok(Resume::No),
        "yes" | "true" => Ok(Resume::Yes),
        "auto" => Ok(Resume::Auto),
        other => Err(ColorproxyError::new_err(format!("resume={other:?}: use False, True or \"auto\""))),
    }
}

fn task_of(task: &str) -> PyResult<Task> {
    match task {
        "cls" => Ok(Task::Cls),
        "seg" => Ok(Task::Seg),
        other => Err(ColorproxyError::new_err(format!("task {other:?}: use \"cls\" or \"seg\""))),
    }
}

/// Runs `f` (a training run) on its own thread while this thread waits with the GIL released and
/// checks Python's signals: a `KeyboardInterrupt` asks the run to checkpoint and stop (as Ctrl-C
/// does for the binary), then is raised once the run has stopped.
fn run_interruptible<T: Send + 'static>(
    py: Python<'_>,
    f: impl FnOnce() -> colorproxy_run::Result<T> + Send + 'static,
) -> PyResult<T> {
    colorproxy_run::progress::clear_interrupt();
    let (tx, rx) = mpsc::channel();
    let handle = std::thread::Builder::new()
        .name("colorproxy-run".into())
        .spawn(move || {
            let _ = tx.send(f());
        })
        .map_err(|e| ColorproxyError::new_err(format!("cannot start the run's thread: {e}")))?;
    let mut interrupted: Option<PyErr> = None;
    let mut rx = rx;
    let result = loop {
        // (The receiver moves into the GIL-free closure and back: it is Send, not Sync.)
        let (got, back) = py.allow_threads(move || (rx.recv_timeout(Duration::from_millis(100)), rx));
        rx = back;
        match got {
            Ok(r) => break r,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if let Err(e) = py.check_signals() {
                    if interrupted.is_none() {
                        colorproxy_run::progress::request_interrupt(2);
                        interrupted = Some(e);
                    }
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let _ = handle.join();
                return Err(ColorproxyError::new_err(
                    "the run's thread stopped without a result (a panic; see stderr)",
                ));
            }
        }
    };
    let _ = handle.join();
    colorproxy_run::progress::clear_interrupt();
    // A KeyboardInterrupt (from `interrupted` or a signal the run saw itself) is raised with the
    // library's message: the checkpoint is written.
    drop(interrupted);
    result.map_err(py_err)
}

/// Named CPU tensors as a dict of `torch.Tensor` (no copy).
fn tensor_dict<'py>(py: Python<'py>, named: Vec<(String, tch::Tensor)>) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for (k, t) in named {
        d.set_item(k, PyTensor(t))?;
    }
    Ok(d)
}

fn target_config(config: Option<&str>) -> PyResult<colorproxy_color::TargetConfig> {
    let cfg: colorproxy_color::TargetConfig = match config {
        Some(text) => toml::from_str(text)
            .map_err(|e| ColorproxyError::new_err(format!("invalid target config: {e}")))?,
        None => colorproxy_color::TargetConfig::default(),
    };
    cfg.validate().map_err(|e| ColorproxyError::new_err(format!("invalid target config: {e}")))?;
    Ok(cfg)
}

/// The targets of `img` at `points` as tensors: `hue_hist` / `chroma_hist` `[P, K]`, `hue_weight`,
/// `chroma_weight`, `gray` `[P]`, `ab` `[P, 2]`, `points` `[P, 2]` int64.
fn targets_dict<'py>(
    py: Python<'py>,
    img: &RgbImage8,
    points: Vec<(usize, usize)>,
    config: Option<&str>,
    what: &str,
) -> PyResult<Bound<'py, PyDict>> {
    let cfg = target_config(config)?;
    let t = py
        .allow_threads(|| colorproxy_run::images::point_targets(img, &points, cfg, what))
        .map_err(py_err)?;
    let p = t.len() as i64;
    let flat = |f: &dyn Fn(&colorproxy_color::PointTarget) -> Vec<f32>| -> Vec<f32> {
        t.iter().flat_map(f).collect()
    };
    let hue = flat(&|x| x.hue_hist.clone());
    let chroma = flat(&|x| x.chroma_hist.clone());
    let k_h = if p > 0 { hue.len() as i64 / p } else { 0 };
    let k_c = if p > 0 { chroma.len() as i64 / p } else { 0 };
    let pts: Vec<i64> = t.iter().flat_map(|x| [x.y as i64, x.x as i64]).collect();
    tensor_dict(
        py,
        vec![
            ("hue_hist".into(), tch::Tensor::from_slice(&hue).reshape([p, k_h])),
            ("chroma_hist".into(), tch::Tensor::from_slice(&chroma).reshape([p, k_c])),
            ("hue_weight".into(), tch::Tensor::from_slice(&flat(&|x| vec![x.hue_weight]))),
            ("chroma_weight".into(), tch::Tensor::from_slice(&flat(&|x| vec![x.chroma_weight]))),
            ("gray".into(), tch::Tensor::from_slice(&flat(&|x| vec![x.gray]))),
            ("ab".into(), tch::Tensor::from_slice(&flat(&|x| x.lab_ab.to_vec())).reshape([p, 2])),
            ("points".into(), tch::Tensor::from_slice(&pts).reshape([p, 2])),
        ],
    )
}

/// Colour targets of an image file at `(y, x)` points.
#[pyfunction]
#[pyo3(signature = (path, points, config=None))]
fn targets_file<'py>(
    py: Python<'py>,
    path: PathBuf,
    points: Vec<(usize, usize)>,
    config: Option<&str>,
) -> PyResult<Bound<'py, PyDict>> {
    let img = colorproxy_run::images::decode_any_size(&path).map_err(py_err)?;
    targets_dict(py, &img, points, config, &path.display().to_string())
}

/// Colour targets of an RGB image given as `height x width x 3` bytes (row-major, uint8).
#[pyfunction]
#[pyo3(signature = (rgb, height, width, points, config=None))]
fn targets_rgb<'py>(
    py: Python<'py>,
    rgb: Vec<u8>,
    height: usize,
    width: usize,
    points: Vec<(usize, usize)>,
    config: Option<&str>,
) -> PyResult<Bound<'py, PyDict>> {
    let img = RgbImage8 { width, height, data: rgb };
    targets_dict(py, &img, points, config, "the image")
}

/// The pretraining batches of one process of a job: `len()` batches per epoch, each a dict of
/// tensors; the same stream `colorproxy pretrain` draws for the same request.
#[pyclass(module = "colorproxy._core")]
struct Loader {
    stream: BatchStream,
    running: Option<(BatchLoader, usize)>,
}

#[pymethods]
impl Loader {
    #[new]
    #[pyo3(signature = (data, preset=None, config=None, batch_size=None, seed=None, workers=None, rank=0, world_size=1, set=vec![]))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        data: PathBuf,
        preset: Option<String>,
        config: Option<PathBuf>,
        batch_size: Option<usize>,
        seed: Option<u64>,
        workers: Option<usize>,
        rank: usize,
        world_size: usize,
        set: Vec<String>,
    ) -> PyResult<Self> {
        let mut req = PretrainRequest::new(&data, &PathBuf::new());
        (req.preset, req.config, req.batch_size, req.seed, req.workers, req.set) =
            (preset, config, batch_size, seed, workers, set);
        let stream = py.allow_threads(|| BatchStream::open(&req, rank, world_size)).map_err(py_err)?;
        Ok(Self { stream, running: None })
    }

    fn __len__(&self) -> usize {
        self.stream.batches_per_epoch()
    }

    /// Images in the data set.
    #[getter]
    fn images(&self) -> usize {
        self.stream.images()
    }

    /// Images per batch of this process.
    #[getter]
    fn batch_size(&self) -> usize {
        self.stream.config.data.batch_size
    }

    #[getter]
    fn seed(&self) -> u64 {
        self.stream.config.seed
    }

    /// The resolved pretraining config (TOML), as `pretrain` would save it.
    #[getter]
    fn config(&self) -> String {
        self.stream.config.to_toml()
    }

    /// (Re)starts the stream at batch `batch` of epoch `epoch`; `next_batch` then yields the rest
    /// of that epoch.
    #[pyo3(signature = (epoch, batch=0))]
    fn start(&mut self, epoch: u64, batch: usize) -> PyResult<()> {
        let per_epoch = self.stream.batches_per_epoch();
        if batch >= per_epoch {
            return Err(ColorproxyError::new_err(format!(
                "batch {batch} of an epoch of {per_epoch} batches"
            )));
        }
        self.running = None;
        let loader = self.stream.from(DataPosition { epoch, batch }).map_err(py_err)?;
        self.running = Some((loader, per_epoch - batch));
        Ok(())
    }

    /// The next batch of the started epoch as a dict of tensors (`gray`, `points`, `hue_hist`,
    /// `chroma_hist`, `hue_weight`, `chroma_weight`, `ab`; plus `files`, a list of paths), or None
    /// at the end of the epoch.
    fn next_batch<'py>(&mut self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        let Some((loader, left)) = self.running.as_mut() else {
            return Ok(None);
        };
        if *left == 0 {
            self.running = None;
            return Ok(None);
        }
        *left -= 1;
        let next = py.allow_threads(|| loader.next());
        let Some((_, batch)) = next else {
            return Err(ColorproxyError::new_err("the data loader stopped"));
        };
        let batch = batch.map_err(|e| py_err(e.into()))?;
        let named = batch_tensors(&batch).into_iter().map(|(k, t)| (k.to_string(), t)).collect();
        let d = tensor_dict(py, named)?;
        let files: Vec<String> = batch.files.iter().map(|f| f.display().to_string()).collect();
        d.set_item("files", files)?;
        let skipped: Vec<(String, String)> =
            batch.skipped.iter().map(|(f, r)| (f.display().to_string(), r.to_string())).collect();
        d.set_item("skipped", skipped)?;
        Ok(Some(d))
    }
}

/// Colorization pretraining (`colorproxy pretrain`); returns when it is done.
#[pyfunction]
#[pyo3(signature = (data, out, preset=None, config=None, iterations=None, batch_size=None, lr=None, seed=None, workers=None, set=vec![], resume="no", force=false, device=None, threads=None))]
#[allow(clippy::too_many_arguments)]
fn pretrain<'py>(
    py: Python<'py>,
    data: PathBuf,
    out: PathBuf,
    preset: Option<String>,
    config: Option<PathBuf>,
    iterations: Option<usize>,
    batch_size: Option<usize>,
    lr: Option<f64>,
    seed: Option<u64>,
    workers: Option<usize>,
    set: Vec<String>,
    resume: &str,
    force: bool,
    device: Option<String>,
    threads: Option<usize>,
) -> PyResult<Bound<'py, PyDict>> {
    let mut req = PretrainRequest::new(&data, &out);
    (req.preset, req.config, req.iterations, req.batch_size, req.lr) =
        (preset, config, iterations, batch_size, lr);
    (req.seed, req.workers, req.set, req.resume) = (seed, workers, set, resume_of(resume)?);
    (req.force, req.device, req.threads) = (force, device, threads);
    let done = run_interruptible(py, move || colorproxy_run::pretrain::run(req))?;
    let d = PyDict::new(py);
    if let Some(s) = done {
        d.set_item("iterations", s.iterations_done)?;
        d.set_item("seconds", s.seconds)?;
        d.set_item("skipped_images", s.skipped_images)?;
        d.set_item("final_loss", s.final_loss)?;
    }
    Ok(d)
}

/// Fine-tuning for classification or segmentation (`colorproxy finetune`).
#[pyfunction]
#[pyo3(signature = (task, data, out, init="random", preset=None, config=None, classes=None, max_iterations=None, batch_size=None, lr=None, seed=None, workers=None, set=vec![], freeze_until=None, color=false, train_split="train", eval_split="val", resume="no", force=false, device=None, skip_bad=false))]
#[allow(clippy::too_many_arguments)]
fn finetune(
    py: Python<'_>,
    task: &str,
    data: PathBuf,
    out: PathBuf,
    init: &str,
    preset: Option<String>,
    config: Option<PathBuf>,
    classes: Option<PathBuf>,
    max_iterations: Option<usize>,
    batch_size: Option<usize>,
    lr: Option<f64>,
    seed: Option<u64>,
    workers: Option<usize>,
    set: Vec<String>,
    freeze_until: Option<String>,
    color: bool,
    train_split: &str,
    eval_split: &str,
    resume: &str,
    force: bool,
    device: Option<String>,
    skip_bad: bool,
) -> PyResult<()> {
    let mut r = FinetuneRequest::new(task_of(task)?, &data, &out);
    r.init = init.to_string();
    (r.preset, r.config, r.classes, r.max_iterations) = (preset, config, classes, max_iterations);
    (r.batch_size, r.lr, r.seed, r.workers, r.set) = (batch_size, lr, seed, workers, set);
    (r.freeze_until, r.color, r.train_split, r.eval_split) =
        (freeze_until, color, train_split.to_string(), eval_split.to_string());
    (r.resume, r.force, r.device, r.skip_bad) = (resume_of(resume)?, force, device, skip_bad);
    run_interruptible(py, move || colorproxy_run::finetune::finetune(r))
}

/// Scores a fine-tuned network (`colorproxy eval`), writing results.json and report.html to `report`.
#[pyfunction]
#[pyo3(signature = (task, checkpoint, data, report, split="val", config=None, device=None, skip_bad=false))]
#[allow(clippy::too_many_arguments)]
fn evaluate(
    py: Python<'_>,
    task: &str,
    checkpoint: PathBuf,
    data: PathBuf,
    report: PathBuf,
    split: &str,
    config: Option<PathBuf>,
    device: Option<String>,
    skip_bad: bool,
) -> PyResult<()> {
    let req = EvalRequest {
        task: task_of(task)?,
        checkpoint,
        config,
        data,
        split: split.to_string(),
        json: false,
        save_predictions: None,
        report: Some(report),
        skip_bad,
        device,
    };
    run_interruptible(py, move || colorproxy_run::evaluate::eval(req))
}

/// The torchvision state dict of a checkpoint (what `colorproxy export` writes): `(arch,
/// num_classes, in_channels, tensors, notes)`.
#[pyfunction]
#[pyo3(signature = (checkpoint, rgb=false, config=None, seed=0))]
#[allow(clippy::type_complexity)]
fn export_torchvision<'py>(
    py: Python<'py>,
    checkpoint: PathBuf,
    rgb: bool,
    config: Option<PathBuf>,
    seed: u64,
) -> PyResult<(String, i64, i64, Bound<'py, PyDict>, Vec<String>)> {
    use colorproxy_nn::torchvision::{export_torchvision, load_network, ExportOptions};
    let ex = py
        .allow_threads(|| -> colorproxy_run::Result<_> {
            let mut net = load_network(&checkpoint, config.as_deref(), None, tch::Device::Cpu)?;
            let arch = net.model.arch.clone();
            let ex = export_torchvision(&mut net, ExportOptions { rgb, seed })
                .map_err(|e| RunError::msg(format!("exporting {}: {e}", checkpoint.display())))?;
            Ok((arch, ex))
        })
        .map_err(py_err)?;
    let (arch, ex) = ex;
    let d = tensor_dict(py, ex.tensors)?;
    Ok((arch, ex.num_classes, ex.in_channels, d, ex.notes))
}

/// The gray mean subtracted from the network's input, `(R+G+B)/765 - GRAY_MEAN`.
#[pyfunction]
fn gray_mean() -> f64 {
    f64::from(colorproxy_nn::transfer::GRAY_MEAN)
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // Python owns SIGINT (KeyboardInterrupt); runs are stopped through the interrupt flag.
    colorproxy_run::progress::host_owns_signals();
    m.add("ColorproxyError", m.py().get_type::<ColorproxyError>())?;
    m.add_function(wrap_pyfunction!(targets_file, m)?)?;
    m.add_function(wrap_pyfunction!(targets_rgb, m)?)?;
    m.add_function(wrap_pyfunction!(pretrain, m)?)?;
    m.add_function(wrap_pyfunction!(finetune, m)?)?;
    m.add_function(wrap_pyfunction!(evaluate, m)?)?;
    m.add_function(wrap_pyfunction!(export_torchvision, m)?)?;
    m.add_function(wrap_pyfunction!(gray_mean, m)?)?;
    m.add_class::<Loader>()?;
    Ok(())
}
