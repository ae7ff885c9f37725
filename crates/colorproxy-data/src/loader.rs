//! [`BatchLoader`]: builds batches ahead of the training step on worker threads, in order, through
//! a bounded queue.
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{bounded, Receiver};
use serde::{Deserialize, Serialize};

use crate::batch::{ColorBatch, PretrainData};
use crate::DataError;

/// Where the data stream is: the next batch to produce. Saved in checkpoints for exact resume.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct DataPosition {
    pub epoch: u64,
    pub batch: usize,
}

impl DataPosition {
    /// The position after this one, given the batches per epoch.
    pub fn next(self, per_epoch: usize) -> Self {
        if self.batch + 1 >= per_epoch {
            Self { epoch: self.epoch + 1, batch: 0 }
        } else {
            Self { epoch: self.epoch, batch: self.batch + 1 }
        }
    }
}

/// An iterator of `(position, batch)` from a start position, produced ahead by a background
/// thread that uses a rayon pool of `workers` threads. Dropping it stops the thread.
pub struct BatchLoader {
    rx: Option<Receiver<(DataPosition, Result<ColorBatch, DataError>)>>,
    handle: Option<JoinHandle<()>>,
}

impl BatchLoader {
    pub fn new(data: Arc<PretrainData>, start: DataPosition) -> Result<Self, DataError> {
        let workers = match data.pipeline.workers {
            0 => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            n => n,
        };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(workers)
            .thread_name(|i| format!("colorproxy-data-{i}"))
            .build()
            .map_err(|e| DataError::BadConfig(format!("cannot start data workers: {e}")))?;
        let (tx, rx) = bounded(data.pipeline.prefetch.max(1));
        let handle = std::thread::Builder::new()
            .name("colorproxy-loader".into())
            .spawn(move || {
                let per_epoch = data.batches_per_epoch();
                let mut pos = start;
                let mut order = data.epoch_order(pos.epoch);
                loop {
                    let batch = pool.install(|| data.batch(pos.epoch, pos.batch, &order));
                    let failed = batch.is_err();
                    if tx.send((pos, batch)).is_err() || failed {
                        return;
                    }
                    let next = pos.next(per_epoch);
                    if next.epoch != pos.epoch {
                        order = data.epoch_order(next.epoch);
                    }
                    pos = next;
                }
            })
            .map_err(|e| DataError::BadConfig(format!("cannot start loader thread: {e}")))?;
        Ok(Self { rx: Some(rx), handle: Some(handle) })
    }
}

impl Iterator for BatchLoader {
    type Item = (DataPosition, Result<ColorBatch, DataError>);
    fn next(&mut self) -> Option<Self::Item> {
        self.rx.as_ref()?.recv().ok()
    }
}

impl Drop for BatchLoader {
    fn drop(&mut self) {
        // Closing the receiver makes the producer's next send fail, ending its loop.
        self.rx.take();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
