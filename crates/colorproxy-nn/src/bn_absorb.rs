//! BN absorption: folding the parameter-free BN of pretraining into the preceding convolution
//! for transfer (VGG-16, AlexNet), so the network computes in eval mode what it computed with BN
//! and then trains without it: `sigma = sqrt(var + eps)`, `W <- W / sigma`,
//! `b <- (b - mean) / sigma` per output channel.
use crate::bn::ParamFreeBatchNorm;
use crate::conv::Conv;
use tch::Tensor;

/// Absorbs each parameter-free BN into its convolution (see [`Vgg16::absorb_bn`]).
pub(crate) fn absorb_layers<'a>(layers: impl Iterator<Item = (&'a mut Conv, &'a ParamFreeBatchNorm)>) {
    tch::no_grad(|| {
        for (conv, bn) in layers {
            let sigma = (&bn.running_var + bn.eps).sqrt();
            let w = &conv.weight / sigma.view([-1, 1, 1, 1]);
            conv.weight.copy_(&w);
            if let Some(b) = conv.bias.as_mut() {
                let nb = (&*b - &bn.running_mean) / &sigma;
                b.copy_(&nb);
            }
        }
    });
}

/// `bn(x)` while the network uses its BN, `x` once BN has been absorbed.
pub(crate) fn norm_unless_absorbed(use_bn: bool, bn: &ParamFreeBatchNorm, x: Tensor, train: bool) -> Tensor {
    if use_bn {
        bn.forward(&x, train)
    } else {
        x
    }
}
