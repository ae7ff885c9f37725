//! SGD with momentum (PyTorch semantics: `buf = m * buf + (g + wd * w)`, `w -= lr * buf`), weight
//! decay on weights only, biases at `bias_lr_mult` x the learning rate. The momentum buffers are
//! part of the checkpoint, so a resumed run continues exactly.
use std::collections::BTreeMap;

use tch::Tensor;

use crate::config::OptimConfig;

/// One trainable parameter.
struct Param {
    name: String,
    tensor: Tensor,
    is_bias: bool,
    momentum: Option<Tensor>,
}

/// The optimiser over a set of named parameters.
pub struct Sgd {
    params: Vec<Param>,
    pub config: OptimConfig,
}

impl Sgd {
    /// `named`: trainable parameters by name (sorted for a fixed order).
    pub fn new(named: BTreeMap<String, Tensor>, config: OptimConfig) -> Self {
        let params = named
            .into_iter()
            .map(|(name, tensor)| Param { is_bias: name.ends_with(".bias"), name, tensor, momentum: None })
            .collect();
        Self { params, config }
    }

    /// The parameters, sorted by name (shallow handles).
    pub fn parameters(&self) -> Vec<(String, Tensor)> {
        self.params.iter().map(|p| (p.name.clone(), p.tensor.shallow_clone())).collect()
    }

    pub fn zero_grad(&mut self) {
        for p in &mut self.params {
            p.tensor.zero_grad();
        }
    }

    /// One update at learning rate `lr`.
    pub fn step(&mut self, lr: f64) {
        let c = &self.config;
        tch::no_grad(|| {
            for p in &mut self.params {
                let g = p.tensor.grad();
                if !g.defined() {
                    continue;
                }
                let (lr_p, wd) = if p.is_bias { (lr * c.bias_lr_mult, 0.0) } else { (lr, c.weight_decay) };
                let d = if wd != 0.0 { g + &p.tensor * wd } else { g };
                let buf = match p.momentum.take() {
                    Some(mut b) => {
                        let _ = b.g_mul_scalar_(c.momentum).g_add_(&d);
                        b
                    }
                    None => d.copy(),
                };
                let _ = p.tensor.g_sub_(&(&buf * lr_p));
                p.momentum = Some(buf);
            }
        });
    }

    /// Momentum buffers by parameter name (for checkpoints).
    pub fn state(&self) -> Vec<(String, Tensor)> {
        self.params
            .iter()
            .filter_map(|p| p.momentum.as_ref().map(|m| (format!("momentum.{}", p.name), m.shallow_clone())))
            .collect()
    }

    /// Restores momentum buffers saved by [`Sgd::state`]; unknown names are an error.
    pub fn load_state(&mut self, state: Vec<(String, Tensor)>) -> Result<(), String> {
        for (name, t) in state {
            let Some(pname) = name.strip_prefix("momentum.") else {
                continue;
            };
            let p = self
                .params
                .iter_mut()
                .find(|p| p.name == pname)
                .ok_or_else(|| format!("optimiser state names unknown parameter {pname:?}"))?;
            if t.size() != p.tensor.size() {
                return Err(format!(
                    "optimiser state for {pname:?} has shape {:?}, parameter {:?}",
                    t.size(),
                    p.tensor.size()
                ));
            }
            p.momentum = Some(t.to_device(p.tensor.device()).to_kind(p.tensor.kind()));
        }
        Ok(())
    }
}
