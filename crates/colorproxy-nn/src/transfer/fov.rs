//! The +FoV blocks of segmentation transfer: on the backbone's top layer, 2x2 max-pool -> 3x3
//! conv -> ReLU, twice, each offered to the hypercolumn (`fov1` at stride 64, `fov2` at 128).
use tch::Tensor;

use crate::backbone::{Conv, Tap};

/// The +FoV blocks on top of fc7.
pub struct FovBlocks {
    pub conv8: Conv,
    pub conv9: Conv,
}

impl FovBlocks {
    /// `top`: the backbone's last layer (fc7; layer4 for ResNet).
    pub fn forward(&self, top: &Tensor) -> Vec<Tap> {
        let h = top.max_pool2d([2, 2], [2, 2], [0, 0], [1, 1], true);
        let f1 = self.conv8.forward(&h).relu();
        let h = f1.max_pool2d([2, 2], [2, 2], [0, 0], [1, 1], true);
        let f2 = self.conv9.forward(&h).relu();
        vec![Tap { name: "fov1", features: f1, scale: 64 }, Tap { name: "fov2", features: f2, scale: 128 }]
    }
}
