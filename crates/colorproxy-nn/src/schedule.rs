//! The learning-rate schedule of pretraining and fine-tuning: a step schedule, the base rate
//! multiplied by `gamma` at each drop (the paper's x0.1 steps).

/// The learning rate at `iteration` (0-based): `base * gamma^k`, where `k` counts the drops at or
/// before `iteration`.
pub fn step_lr(base: f64, gamma: f64, drops: &[usize], iteration: usize) -> f64 {
    let k = drops.iter().filter(|&&d| iteration >= d).count();
    base * gamma.powi(k as i32)
}
