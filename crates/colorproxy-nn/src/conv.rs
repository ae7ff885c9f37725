//! The convolution every backbone is built from (Caffe "xavier" init, optional bfloat16, the
//! pad-with-bias edge fix) and the TF32 switch.
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};

use tch::nn::{self, Init};
use tch::Tensor;

/// Caffe's "xavier" filler, as the authors use: uniform in `±sqrt(3 / fan_in)`.
pub fn xavier(fan_in: i64) -> Init {
    let a = (3.0 / fan_in as f64).sqrt();
    Init::Uniform { lo: -a, up: a }
}

static ALLOW_TF32: AtomicBool = AtomicBool::new(true);

thread_local! {
    /// (multiply-accumulates, output elements) of the convolutions and linear layers run on this
    /// thread while [`count_macs`] is active.
    static MACS: Cell<Option<(u64, u64)>> = const { Cell::new(None) };
}

/// Runs `f` and counts the multiply-accumulates of every convolution and linear layer it runs on
/// this thread (one output element of a `[out, in, k, k]` convolution: `in x k x k`) and their
/// output elements. Returns `(f's result, MACs, output elements)`.
pub fn count_macs<R>(f: impl FnOnce() -> R) -> (R, u64, u64) {
    let before = MACS.with(|m| m.replace(Some((0, 0))));
    let r = f();
    let (n, out) = MACS.with(|m| m.replace(before)).unwrap_or((0, 0));
    (r, n, out)
}

/// Adds a layer's `outputs` elements of `per_output` multiply-accumulates each to the active
/// count (if any).
pub(crate) fn add_macs(outputs: u64, per_output: u64) {
    MACS.with(|m| {
        if let Some((c, o)) = m.get() {
            m.set(Some((c + outputs * per_output, o + outputs)));
        }
    });
}

/// Whether cuDNN convolutions may use TF32 on GPUs that have it (PyTorch's default: yes). The
/// CPU/GPU parity check turns it off to compare float32 with float32.
pub fn set_allow_tf32(allow: bool) {
    ALLOW_TF32.store(allow, Ordering::Relaxed);
}

/// A convolution with Xavier-initialised weight `[out, in, k, k]` and zero bias. With `bf16`, the
/// convolution itself runs in bfloat16 (inputs and weights cast, output cast back to float32).
#[derive(Debug)]
pub struct Conv {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
    pub stride: i64,
    pub padding: i64,
    pub bf16: bool,
}

impl Conv {
    pub fn new(p: nn::Path, cin: i64, cout: i64, k: i64, stride: i64, padding: i64, bias: bool) -> Self {
        let weight = p.var("weight", &[cout, cin, k, k], xavier(cin * k * k));
        let bias = bias.then(|| p.var("bias", &[cout], Init::Const(0.0)));
        Self { weight, bias, stride, padding, bf16: false }
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        self.forward_padded(x, self.padding)
    }

    /// The convolution with the border filled per channel with `fill` (`[1, C, 1, 1]`) instead
    /// of zeros: the paper's "pad with the bias" edge fix (footnote 3), where `fill` is the ReLU
    /// of the previous layer's (absorbed) bias. Same as adding the authors' precomputed border
    /// correction to the zero-padded convolution.
    pub fn forward_fill_padded(&self, x: &Tensor, fill: &Tensor) -> Tensor {
        let p = self.padding;
        let xp = (x - fill).constant_pad_nd([p, p, p, p]) + fill;
        self.forward_padded(&xp, 0)
    }

    fn forward_padded(&self, x: &Tensor, padding: i64) -> Tensor {
        let conv = |x: &Tensor, w: &Tensor, b: Option<&Tensor>| {
            x.internal_convolution(
                w,
                b,
                [self.stride, self.stride],
                [padding, padding],
                [1, 1],
                false,
                [0, 0],
                1,
                false,
                false,
                true,
                ALLOW_TF32.load(Ordering::Relaxed),
            )
        };
        let y = if self.bf16 {
            let k = tch::Kind::BFloat16;
            let b = self.bias.as_ref().map(|b| b.to_kind(k));
            conv(&x.to_kind(k), &self.weight.to_kind(k), b.as_ref()).to_kind(x.kind())
        } else {
            conv(x, &self.weight, self.bias.as_ref())
        };
        let w = self.weight.size();
        add_macs(y.numel() as u64, (w[1] * w[2] * w[3]) as u64);
        y
    }

    pub fn out_channels(&self) -> i64 {
        self.weight.size()[0]
    }
}
