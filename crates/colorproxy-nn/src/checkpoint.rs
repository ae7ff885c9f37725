//! Checkpoints: model weights and optimiser state as safetensors, training state as JSON, each
//! written atomically (temporary file + rename).
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use colorproxy_data::DataPosition;
use serde::{Deserialize, Serialize};
use tch::{nn, Device, Tensor};

use crate::NnError;

fn file_err(path: &Path, e: impl std::fmt::Display) -> NnError {
    NnError::File { path: path.to_owned(), msg: e.to_string() }
}

/// `dir/.name.tmp.ext` for an atomic write of `dir/name`.
fn tmp_path(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let ext = path.extension().map(|e| e.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp.{ext}"))
}

fn commit(tmp: &Path, path: &Path) -> Result<(), NnError> {
    std::fs::rename(tmp, path).map_err(|e| file_err(path, e))
}

/// Writes named tensors (moved to CPU) as safetensors, atomically.
pub fn write_tensors(path: &Path, named: &[(String, Tensor)]) -> Result<(), NnError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| file_err(dir, e))?;
    }
    let tmp = tmp_path(path);
    let cpu: Vec<(String, Tensor)> =
        named.iter().map(|(n, t)| (n.clone(), t.to_device(Device::Cpu).contiguous())).collect();
    Tensor::write_safetensors(&cpu, &tmp).map_err(|e| file_err(&tmp, e))?;
    commit(&tmp, path)
}

/// Reads a safetensors file.
pub fn read_tensors(path: &Path) -> Result<Vec<(String, Tensor)>, NnError> {
    if !path.is_file() {
        return Err(file_err(path, "no such checkpoint file"));
    }
    Tensor::read_safetensors(path)
        .map_err(|e| file_err(path, format!("not a readable safetensors file: {e}")))
}

/// All variables of a VarStore, sorted by name.
pub fn named_variables(vs: &nn::VarStore) -> Vec<(String, Tensor)> {
    let map: BTreeMap<String, Tensor> = vs.variables().into_iter().collect();
    map.into_iter().collect()
}

/// Saves every variable of `vs` to `path` atomically.
pub fn save_weights(vs: &nn::VarStore, path: &Path) -> Result<(), NnError> {
    write_tensors(path, &named_variables(vs))
}

/// Loads every variable of `vs` from `path`; a missing name or a shape mismatch is an error that
/// names both.
pub fn load_weights(vs: &mut nn::VarStore, path: &Path) -> Result<(), NnError> {
    let file: BTreeMap<String, Tensor> = read_tensors(path)?.into_iter().collect();
    tch::no_grad(|| {
        for (name, mut var) in vs.variables() {
            let src = file.get(&name).ok_or_else(|| {
                file_err(
                    path,
                    format!(
                        "has no tensor {name:?} (is it a checkpoint of the same architecture and width?)"
                    ),
                )
            })?;
            if src.size() != var.size() {
                return Err(file_err(
                    path,
                    format!(
                        "tensor {name:?} has shape {:?}, the network expects {:?}",
                        src.size(),
                        var.size()
                    ),
                ));
            }
            var.copy_(&src.to_kind(var.kind()));
        }
        Ok(())
    })
}

/// Training state saved beside the weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Iterations completed.
    pub iteration: usize,
    /// The next batch of the data stream.
    pub data: DataPosition,
    pub seed: u64,
    /// Images skipped so far (unreadable etc.).
    pub skipped_images: usize,
}

/// Writes JSON atomically.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), NnError> {
    let tmp = tmp_path(path);
    let text = serde_json::to_string_pretty(value).map_err(|e| file_err(path, e))?;
    std::fs::write(&tmp, text).map_err(|e| file_err(&tmp, e))?;
    commit(&tmp, path)
}

pub fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, NnError> {
    let text = std::fs::read_to_string(path).map_err(|e| file_err(path, e))?;
    serde_json::from_str(&text).map_err(|e| file_err(path, format!("invalid JSON: {e}")))
}

/// Checks that a checkpoint's `parts` (weights, optimiser state) were written no later than its
/// `marker` (the state file, written last): a run killed between replacing the parts and the
/// marker leaves a newer part beside an older marker, which must not be resumed silently.
pub fn check_complete(parts: &[PathBuf], marker: &Path) -> Result<(), NnError> {
    let mtime = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).map_err(|e| file_err(p, e));
    let m = mtime(marker)?;
    for p in parts {
        if mtime(p)? > m {
            return Err(file_err(
                p,
                format!("is newer than {}: the last checkpoint was not completed", marker.display()),
            ));
        }
    }
    Ok(())
}

/// Writes a run's resumable checkpoint `paths.checkpoints()/last.*`: weights, optimiser state
/// (with `iteration`), then the state file, which is written last and marks it complete.
pub fn save_resumable<S: Serialize>(
    paths: &crate::run_dir::RunPaths,
    vs: &nn::VarStore,
    sgd: &crate::optim::Sgd,
    iteration: usize,
    state: &S,
) -> Result<(), NnError> {
    save_weights(vs, &paths.last_weights())?;
    let mut opt = sgd.state();
    opt.push(("iteration".into(), Tensor::from(iteration as i64)));
    write_tensors(&paths.last_optim(), &opt)?;
    write_json(&paths.last_state(), state)
}

/// Reads back what [`save_resumable`] wrote: checks the checkpoint is complete and its parts agree
/// on the iteration (`iteration` reads it from the state), loads the weights into `vs` and the
/// momentum buffers into `sgd`, and returns the state.
pub fn load_resumable<S: for<'de> Deserialize<'de>>(
    paths: &crate::run_dir::RunPaths,
    vs: &mut nn::VarStore,
    sgd: &mut crate::optim::Sgd,
    iteration: impl Fn(&S) -> usize,
) -> Result<S, NnError> {
    check_complete(&[paths.last_weights(), paths.last_optim()], &paths.last_state())?;
    let state: S = read_json(&paths.last_state())?;
    load_weights(vs, &paths.last_weights())?;
    let opt = read_tensors(&paths.last_optim())?;
    let it = opt.iter().find(|(n, _)| n == "iteration").map(|(_, t)| t.int64_value(&[]) as usize);
    if it != Some(iteration(&state)) {
        return Err(file_err(
            &paths.last_optim(),
            format!(
                "is from iteration {it:?}, the state file from {}: incomplete checkpoint",
                iteration(&state)
            ),
        ));
    }
    sgd.load_state(opt).map_err(|m| file_err(&paths.last_optim(), m))?;
    Ok(state)
}
