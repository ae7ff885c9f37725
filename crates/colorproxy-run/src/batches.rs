//! The pretraining batches outside a training loop: what `colorproxy data batches` writes and what
//! the Python package's `ColorizationLoader` yields. Same config resolution, same data stream
//! ([`PretrainConfig::pretrain_data`]) as `colorproxy pretrain`, so the same request gives the
//! batches that pretraining draws, bit for bit.
use std::path::PathBuf;
use std::sync::Arc;

use colorproxy_data::{BatchLoader, ColorBatch, DataPosition, ImageSource, PretrainData};
use colorproxy_nn::PretrainConfig;
use tch::Tensor;

use crate::request::PretrainRequest;
use crate::{bail, Context};

/// The batches of one process of a (possibly data-parallel) pretraining job.
pub struct BatchStream {
    /// The resolved config (as `pretrain` saves it).
    pub config: PretrainConfig,
    data: Arc<PretrainData>,
    /// `(rank, world_size)` of the job this process is part of.
    pub rank: (usize, usize),
}

impl BatchStream {
    /// Resolves `req` for a job of `world_size` processes (`batch_size` per process, the batch rule
    /// applied) and opens its data; `rank` selects this process's slots of each job batch.
    pub fn open(req: &PretrainRequest, rank: usize, world_size: usize) -> crate::Result<Self> {
        if world_size == 0 || rank >= world_size {
            bail!("rank {rank} is not in a job of {world_size} process(es)");
        }
        let config = crate::pretrain::resolve_config_for(req, world_size)?;
        let source = ImageSource::open(&req.data)?;
        let shard = (world_size > 1).then_some((rank, world_size));
        let data = Arc::new(config.pretrain_data(source, shard)?);
        Ok(Self { config, data, rank: (rank, world_size) })
    }

    /// Whole job batches per epoch (the last partial one is dropped, as in `pretrain`).
    pub fn batches_per_epoch(&self) -> usize {
        self.data.batches_per_epoch()
    }

    /// The images of the data set.
    pub fn images(&self) -> usize {
        self.data.source.len()
    }

    /// The batches from `start` on (crossing epochs), built ahead on the config's data workers.
    pub fn from(&self, start: DataPosition) -> crate::Result<BatchLoader> {
        Ok(BatchLoader::new(self.data.clone(), start)?)
    }
}

/// A batch as named tensors on the CPU (B images of this process, P points, K bins, S crop side):
/// `gray` `[B, 1, S, S]` float (the network's input, `(R+G+B)/3 - gray_mean`), `points` `[B, P, 2]`
/// int64 `(y, x)`, `hue_hist` / `chroma_hist` `[B, P, K]`, `hue_weight` / `chroma_weight` `[B, P]`,
/// `ab` `[B, P, 2]` (CIE a\*, b\* / `lab_ab_scale`).
pub fn batch_tensors(b: &ColorBatch) -> Vec<(&'static str, Tensor)> {
    let (n, p, s) = (b.batch as i64, b.points_per_image as i64, b.side as i64);
    vec![
        ("gray", Tensor::from_slice(&b.input).reshape([n, 1, s, s])),
        ("points", Tensor::from_slice(&b.points).reshape([n, p, 2])),
        ("hue_hist", Tensor::from_slice(&b.hue_hist).reshape([n, p, b.hue_bins as i64])),
        ("chroma_hist", Tensor::from_slice(&b.chroma_hist).reshape([n, p, b.chroma_bins as i64])),
        ("hue_weight", Tensor::from_slice(&b.hue_weight).reshape([n, p])),
        ("chroma_weight", Tensor::from_slice(&b.chroma_weight).reshape([n, p])),
        ("ab", Tensor::from_slice(&b.lab_ab).reshape([n, p, 2])),
    ]
}

/// `colorproxy data batches`: the first `count` batches of epoch `epoch` of a pretraining request,
/// written to `out` (safetensors, `{index}.{name}` as in [`batch_tensors`]) with the files of
/// each batch beside it (`out` with `.txt`, one line per image, batches separated by blank lines).
pub struct BatchesRequest {
    pub pretrain: PretrainRequest,
    pub count: usize,
    pub epoch: u64,
    pub rank: usize,
    pub world_size: usize,
    pub out: PathBuf,
}

pub fn write(a: BatchesRequest) -> crate::Result<()> {
    let stream = BatchStream::open(&a.pretrain, a.rank, a.world_size)?;
    let mut tensors = Vec::new();
    let mut files = String::new();
    let loader = stream.from(DataPosition { epoch: a.epoch, batch: 0 })?;
    for (i, (_, batch)) in loader.take(a.count).enumerate() {
        let batch = batch?;
        for (name, t) in batch_tensors(&batch) {
            tensors.push((format!("{i}.{name}"), t));
        }
        for f in &batch.files {
            files.push_str(&format!("{}\n", f.display()));
        }
        files.push('\n');
    }
    colorproxy_nn::checkpoint::write_tensors(&a.out, &tensors)?;
    let list = a.out.with_extension("txt");
    colorproxy_nn::checkpoint::write_atomic(&list, files.as_bytes())
        .with_context(|| format!("writing {}", list.display()))?;
    println!(
        "wrote {} ({} batches of {} images from {} of {}, epoch {}, seed {}, rank {} of {}) and {}",
        a.out.display(),
        a.count,
        stream.config.data.batch_size,
        stream.images(),
        a.pretrain.data.display(),
        a.epoch,
        stream.config.seed,
        a.rank,
        a.world_size,
        list.display()
    );
    Ok(())
}
