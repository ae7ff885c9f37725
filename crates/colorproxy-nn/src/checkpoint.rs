//! Checkpoints: model weights and optimiser state as safetensors, training state as JSON.
//!
//! A run's resumable checkpoint is a *generation*, the folder `checkpoints/gen-<iteration>`:
//! `weights.safetensors`, `optim.safetensors` (which also holds the iteration), `state.json` and
//! `manifest.json` (a random id shared by the set, the iteration, and each file's size and xxh3
//! hash). A generation is written into a uniquely named temporary folder, every file fsynced, the
//! manifest last, then the folder is renamed into place and the parent folder fsynced; only then is
//! the previous generation removed. `--resume` takes the newest generation whose manifest verifies
//! and falls back to the one before; files of two generations are never mixed, and modification
//! times are never consulted (a copied run resumes). `checkpoints/last.safetensors` is a copy of the
//! newest generation's weights, for `colorize`, `finetune --init` and other readers.
use std::collections::BTreeMap;
use std::path::Path;

use colorproxy_data::DataPosition;
use serde::{Deserialize, Serialize};
use tch::{nn, Device, Tensor};

use crate::atomic_io::{fault_point, file_err, fsync_dir, tmp_path, with_space_hint, write_synced};
pub use crate::atomic_io::{read_json, write_atomic, write_json};
pub use crate::run_dir::generations;
use crate::run_dir::RunPaths;
use crate::NnError;

/// Named tensors (moved to CPU) as safetensors bytes.
fn safetensors_bytes(named: &[(String, Tensor)], scratch: &Path) -> Result<Vec<u8>, NnError> {
    let cpu: Vec<(String, Tensor)> =
        named.iter().map(|(n, t)| (n.clone(), t.to_device(Device::Cpu).contiguous())).collect();
    let written = Tensor::write_safetensors(&cpu, scratch).map_err(|e| file_err(scratch, e));
    let bytes = written.and_then(|_| std::fs::read(scratch).map_err(|e| file_err(scratch, e)));
    let _ = std::fs::remove_file(scratch);
    bytes.map_err(|e| with_space_hint(e, tensor_bytes(&cpu)))
}

/// The bytes of the tensors' data (about the size of their safetensors file).
fn tensor_bytes(named: &[(String, Tensor)]) -> u64 {
    named.iter().map(|(_, t)| (t.numel() * t.kind().elt_size_in_bytes()) as u64).sum()
}

/// Writes named tensors (moved to CPU) as safetensors, atomically.
pub fn write_tensors(path: &Path, named: &[(String, Tensor)]) -> Result<(), NnError> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| file_err(dir, e))?;
    let bytes = safetensors_bytes(named, &tmp_path(path))?;
    write_atomic(path, &bytes)
}

/// Reads a safetensors file.
pub fn read_tensors(path: &Path) -> Result<Vec<(String, Tensor)>, NnError> {
    if !path.is_file() {
        return Err(file_err(path, "no such checkpoint file"));
    }
    let pickle = path
        .extension()
        .is_some_and(|e| ["pth", "pt", "bin", "tar"].iter().any(|x| e.eq_ignore_ascii_case(x)));
    Tensor::read_safetensors(path).map_err(|e| {
        let hint = if pickle {
            "; PyTorch's pickle files are not read: convert with python -c \"import torch; from safetensors.torch \
             import save_file; sd = torch.load('IN.pth', map_location='cpu'); save_file({k: v.contiguous() for k, v in \
             sd.items()}, 'OUT.safetensors')\""
        } else {
            ""
        };
        file_err(path, format!("not a readable safetensors file: {e}{hint}"))
    })
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

/// Loads every variable of `vs` from `path`; a missing name, a shape mismatch or a non-finite
/// value is an error that names the tensor.
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
            check_finite(path, &name, src)?;
            var.copy_(&src.to_kind(var.kind()));
        }
        Ok(())
    })
}

/// A tensor with NaN or infinite values is an error naming it (a diverged run's weights).
pub fn check_finite(path: &Path, name: &str, t: &Tensor) -> Result<(), NnError> {
    if t.is_floating_point() && t.numel() > 0 && !bool::try_from(t.isfinite().all()).unwrap_or(false) {
        return Err(file_err(
            path,
            format!("tensor {name:?} holds NaN or infinite values (a diverged run?)"),
        ));
    }
    Ok(())
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

/// The manifest of a generation, written last: it names the set's files with their sizes and
/// hashes, so a set is complete and unmixed exactly when its manifest verifies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Random id shared by the files of the set (also in `state.json` as `checkpoint_id`).
    pub id: String,
    pub iteration: usize,
    /// File name -> (bytes, xxh3-64 hash as hex).
    pub files: BTreeMap<String, (u64, String)>,
}

const WEIGHTS: &str = "weights.safetensors";
const OPTIM: &str = "optim.safetensors";
const STATE: &str = "state.json";
const MANIFEST: &str = "manifest.json";

fn hash_hex(bytes: &[u8]) -> String {
    format!("{:016x}", xxhash_rust::xxh3::xxh3_64(bytes))
}

fn new_id() -> String {
    let t =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("{:016x}", xxhash_rust::xxh3::xxh3_64(format!("{t}-{}", std::process::id()).as_bytes()))
}

/// Checks a generation folder against its manifest; returns the manifest.
pub fn verify_generation(dir: &Path) -> Result<Manifest, NnError> {
    let m: Manifest = read_json(&dir.join(MANIFEST))?;
    for (name, (size, hash)) in &m.files {
        let p = dir.join(name);
        let bytes = std::fs::read(&p).map_err(|e| file_err(&p, e))?;
        if bytes.len() as u64 != *size || hash_hex(&bytes) != *hash {
            return Err(file_err(
                &p,
                format!("does not match the manifest of checkpoint {} (torn or corrupt)", m.id),
            ));
        }
    }
    for name in [WEIGHTS, OPTIM, STATE] {
        if !m.files.contains_key(name) {
            return Err(file_err(&dir.join(MANIFEST), format!("lists no {name}")));
        }
    }
    Ok(m)
}

/// Writes a run's resumable checkpoint as a new generation (see the module docs); keeps the
/// previous generation until the new one is durable, then removes older ones.
pub fn save_resumable<S: Serialize>(
    paths: &RunPaths,
    vs: &nn::VarStore,
    sgd: &crate::optim::Sgd,
    iteration: usize,
    state: &S,
) -> Result<(), NnError> {
    let ck = paths.checkpoints();
    std::fs::create_dir_all(&ck).map_err(|e| file_err(&ck, e))?;
    let tmp = tmp_path(&ck.join(format!("gen-{iteration}")));
    std::fs::create_dir(&tmp).map_err(|e| file_err(&tmp, e))?;
    fault_point();
    // A failed write (a full disk) removes its temporary generation: nothing is left behind, and
    // the previous generation, still in place, is what a rerun resumes from.
    let placed = write_generation(paths, vs, sgd, iteration, state, &tmp);
    if let Err(e) = placed {
        let _ = std::fs::remove_dir_all(&tmp);
        let needed = 2 * tensor_bytes(&named_variables(vs)) + tensor_bytes(&sgd.state());
        return Err(with_space_hint(e, needed));
    }
    for (it, old) in generations(paths) {
        if it != iteration {
            std::fs::remove_dir_all(&old).map_err(|e| file_err(&old, e))?;
            fault_point();
        }
    }
    Ok(())
}

/// The files of a generation, written into `tmp` and renamed into place (see [`save_resumable`]).
fn write_generation<S: Serialize>(
    paths: &RunPaths,
    vs: &nn::VarStore,
    sgd: &crate::optim::Sgd,
    iteration: usize,
    state: &S,
    tmp: &Path,
) -> Result<(), NnError> {
    let ck = paths.checkpoints();
    let id = new_id();
    let weights = safetensors_bytes(&named_variables(vs), &tmp.join(".w.tmp"))?;
    let mut opt = sgd.state();
    opt.push(("iteration".into(), Tensor::from(iteration as i64)));
    let optim = safetensors_bytes(&opt, &tmp.join(".o.tmp"))?;
    let mut state_json = serde_json::to_value(state).map_err(|e| file_err(tmp, e))?;
    if let Some(o) = state_json.as_object_mut() {
        o.insert("checkpoint_id".into(), id.clone().into());
    }
    let state_bytes = serde_json::to_vec_pretty(&state_json).map_err(|e| file_err(tmp, e))?;
    let mut files = BTreeMap::new();
    for (name, bytes) in [(WEIGHTS, &weights), (OPTIM, &optim), (STATE, &state_bytes)] {
        write_synced(&tmp.join(name), bytes)?;
        files.insert(name.to_string(), (bytes.len() as u64, hash_hex(bytes)));
    }
    let manifest = Manifest { id, iteration, files };
    let mbytes = serde_json::to_vec_pretty(&manifest).map_err(|e| file_err(tmp, e))?;
    write_synced(&tmp.join(MANIFEST), &mbytes)?;
    fsync_dir(tmp)?;
    let dest = ck.join(format!("gen-{iteration}"));
    if dest.exists() {
        // Only after an interrupted write of this same iteration: replace it.
        std::fs::remove_dir_all(&dest).map_err(|e| file_err(&dest, e))?;
    }
    std::fs::rename(tmp, &dest).map_err(|e| file_err(&dest, e))?;
    fault_point();
    fsync_dir(&ck)?;
    write_atomic(&paths.last_weights(), &weights)
}

/// Reads back the newest complete generation (falling back to older ones; a skipped generation
/// is reported through `warn`): loads the weights into `vs`, the momentum buffers into `sgd`, and
/// returns the state. `iteration` reads the iteration from the state.
pub fn load_resumable<S: for<'de> Deserialize<'de>>(
    paths: &RunPaths,
    vs: &mut nn::VarStore,
    sgd: &mut crate::optim::Sgd,
    iteration: impl Fn(&S) -> usize,
    warn: &mut dyn FnMut(&str),
) -> Result<S, NnError> {
    let gens = generations(paths);
    if gens.is_empty() {
        return Err(file_err(&paths.checkpoints(), "no checkpoint to resume from"));
    }
    let mut last_err = None;
    for (_, dir) in gens {
        match load_generation(&dir, vs, sgd, &iteration) {
            Ok(s) => {
                // A run killed between placing a generation and updating last.safetensors: bring
                // the copy up to date.
                let w = std::fs::read(dir.join(WEIGHTS)).map_err(|e| file_err(&dir, e))?;
                if std::fs::read(paths.last_weights()).ok().as_deref() != Some(&w[..]) {
                    write_atomic(&paths.last_weights(), &w)?;
                }
                return Ok(s);
            }
            Err(e) => {
                warn(&format!("skipping incomplete checkpoint: {e}"));
                last_err = Some(e);
            }
        }
    }
    Err(last_err.expect("at least one generation was tried"))
}

fn load_generation<S: for<'de> Deserialize<'de>>(
    dir: &Path,
    vs: &mut nn::VarStore,
    sgd: &mut crate::optim::Sgd,
    iteration: &impl Fn(&S) -> usize,
) -> Result<S, NnError> {
    let m = verify_generation(dir)?;
    let state: S = read_json(&dir.join(STATE))?;
    if iteration(&state) != m.iteration {
        return Err(file_err(
            &dir.join(STATE),
            format!("is from iteration {}, the manifest from {}", iteration(&state), m.iteration),
        ));
    }
    let opt = read_tensors(&dir.join(OPTIM))?;
    let it = opt.iter().find(|(n, _)| n == "iteration").map(|(_, t)| t.int64_value(&[]) as usize);
    if it != Some(m.iteration) {
        return Err(file_err(
            &dir.join(OPTIM),
            format!("is from iteration {it:?}, the manifest from {}", m.iteration),
        ));
    }
    load_weights(vs, &dir.join(WEIGHTS))?;
    sgd.load_state(opt).map_err(|msg| file_err(&dir.join(OPTIM), msg))?;
    Ok(state)
}
