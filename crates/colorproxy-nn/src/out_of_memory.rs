//! Out of memory as a message, not a panic: libtorch's allocation failures (CPU `can't allocate
//! memory`, CUDA `out of memory`) reach Rust as panics of tch's infallible calls; [`guard`] turns
//! them into [`NnError::OutOfMemory`] (what ran out, the batch, the flag to lower), and
//! [`quiet_panic_hook`] keeps the panic's backtrace off the terminal for them.
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};

use crate::NnError;

/// Whether a libtorch error message is an allocation failure.
pub fn is_oom_message(msg: &str) -> bool {
    ["can't allocate memory", "out of memory", "Cannot allocate memory", "std::bad_alloc"]
        .iter()
        .any(|p| msg.contains(p))
}

/// The text of a panic's payload.
pub fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

/// The first line of libtorch's message that says what failed (without tch's wrapping and the
/// C++ backtrace).
fn detail(msg: &str) -> String {
    let line = msg.lines().find(|l| is_oom_message(l)).unwrap_or(msg).trim();
    let line = line.trim_start_matches("called `Result::unwrap()` on an `Err` value: Torch(\"");
    let line = line.strip_suffix("\")").unwrap_or(line);
    // tch's Debug form escapes the C++ message's newlines; the backtrace follows the first one.
    let line = line.split("\\n").next().unwrap_or(line);
    let line = line.split(" (Triggered internally").next().unwrap_or(line);
    line.split("Exception raised from").next().unwrap_or(line).trim().to_string()
}

/// What a step was doing when memory ran out, for [`NnError::OutOfMemory`].
#[derive(Debug, Clone)]
pub struct StepMemory {
    /// E.g. `cpu`, `cuda:0`.
    pub device: String,
    /// E.g. `in pretraining step 12`.
    pub during: String,
    /// Images per process.
    pub batch: usize,
    /// The crop side in pixels (0: not a setting of the run).
    pub crop: usize,
}

impl StepMemory {
    /// What a step on `device` at `batch` images of `crop` pixels was doing (`during`).
    pub fn new(device: tch::Device, during: String, batch: usize, crop: usize) -> Self {
        let device = match device {
            tch::Device::Cuda(i) => format!("cuda:{i}"),
            other => format!("{other:?}").to_lowercase(),
        };
        Self { device, during, batch, crop }
    }

    fn error(&self, msg: &str) -> NnError {
        NnError::OutOfMemory {
            device: self.device.clone(),
            during: self.during.clone(),
            batch: self.batch,
            crop: self.crop,
            detail: detail(msg),
        }
    }
}

/// Runs `f` (a training or measuring step); an allocation failure inside it, raised by libtorch
/// as an error or a panic, becomes [`NnError::OutOfMemory`]. Other panics go on unwinding.
pub fn guard<T>(
    what: impl FnOnce() -> StepMemory,
    f: impl FnOnce() -> Result<T, NnError>,
) -> Result<T, NnError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Err(e)) if is_oom_message(&e.to_string()) => Err(what().error(&e.to_string())),
        Ok(r) => r,
        Err(p) => {
            let msg = panic_message(p.as_ref());
            if is_oom_message(&msg) {
                Err(what().error(&msg))
            } else {
                resume_unwind(p)
            }
        }
    }
}

/// Installs a panic hook that stays silent for allocation failures (they are reported by
/// [`guard`] as errors) and leaves every other panic to the previous hook.
pub fn quiet_panic_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !is_oom_message(&panic_message(info.payload())) {
            previous(info);
        }
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libtorch_allocation_failures_are_recognised_and_trimmed() {
        let cpu = "called `Result::unwrap()` on an `Err` value: Torch(\"DefaultCPUAllocator: can't allocate memory: \
                   you tried to allocate 23592960000 bytes. Error code 12 (Cannot allocate memory)\\nException raised from \
                   malloc at /pytorch/c10/core/impl/alloc_cpu.cpp:124\")";
        assert!(is_oom_message(cpu));
        assert_eq!(
            detail(cpu),
            "DefaultCPUAllocator: can't allocate memory: you tried to allocate 23592960000 bytes. Error code 12 (Cannot allocate memory)"
        );
        assert!(is_oom_message("CUDA out of memory. Tried to allocate 2.00 GiB"));
        assert!(!is_oom_message("shape '[2, 3]' is invalid for input of size 5"));
    }

    #[test]
    fn guard_turns_an_allocation_panic_into_an_error_and_passes_others_on() {
        let what = || StepMemory { device: "cpu".into(), during: "in step 3".into(), batch: 64, crop: 176 };
        let e = guard(what, || -> Result<(), NnError> {
            panic!("DefaultCPUAllocator: can't allocate memory: 9 bytes")
        })
        .unwrap_err();
        let m = e.to_string();
        assert!(m.contains("out of memory on cpu in step 3 at 64 images per process"), "{m}");
        assert!(
            m.contains("--batch-size 32") && m.contains("data.augment.crop = 176") && m.contains("intact"),
            "{m}"
        );
        let other = std::panic::catch_unwind(|| {
            guard(what, || -> Result<(), NnError> { panic!("index out of range") })
        });
        assert!(other.is_err());
    }
}
