//! Top activations (Fig. 5): the receptive-field boxes equal the input pixels a unit depends on,
//! for each architecture: found by forward NaN propagation (a NaN at an input pixel reaches exactly
//! the units whose value it can change) and by back-propagating the unit's gradient to the input
//! (the nonzero extent over several inputs: one input's gradient follows only the max-pooling
//! argmaxes); a hand-set filter that detects a planted pattern finds the images that carry it.
use colorproxy_nn::backbone::Backbone;
use colorproxy_nn::config::ModelConfig;
use colorproxy_nn::top_activations::{patch_box, TopActivations};
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

fn network(arch: &str) -> (VarStore, Backbone) {
    let model = ModelConfig {
        arch: arch.into(),
        width: 1.0 / 16.0,
        fc_channels: 8,
        hypercolumn: Vec::new(),
        ..ModelConfig::default()
    };
    let vs = VarStore::new(Device::Cpu);
    let mut b = Backbone::new(&vs.root(), &model).unwrap();
    colorproxy_nn::init::initialize(&vs, &model, 5);
    b.set_use_bn(false);
    (vs, b)
}

#[test]
fn receptive_field_boxes_are_the_pixels_a_unit_depends_on() {
    let side = 448i64;
    let cases = [
        ("vgg16", vec!["conv1_2", "conv3_3", "conv5_3", "fc7"]),
        ("alexnet", vec!["conv1", "conv2", "conv5", "fc6"]),
        ("resnet18", vec!["conv1", "layer1", "layer3"]),
    ];
    for (arch, layers) in cases {
        let (_vs, net) = network(arch);
        let spec = net.spec();
        tch::manual_seed(1);
        let base = Tensor::rand([1, 1, side, side], (Kind::Float, Device::Cpu));
        for layer in layers {
            let rf = spec.receptive_field(layer).unwrap();
            let probe = net.pre_activations(&base);
            let t = &probe.iter().find(|t| t.name == layer).unwrap().features;
            let (h, w) = (t.size()[2], t.size()[3]);
            let (uy, ux) = (h / 2, w / 2);
            let (x0, y0, x1, y1) = patch_box(&rf, uy, ux, side, side);
            assert!(x0 > 0 && y0 > 0 && x1 < side - 1 && y1 < side - 1, "{arch} {layer}: box clipped");
            assert_eq!((x1 - x0 + 1, y1 - y0 + 1), (rf.size, rf.size), "{arch} {layer}");
            let (cy, cx) = ((y0 + y1) / 2, (x0 + x1) / 2);
            // (pixel, expected to reach the unit): each edge of the box and one pixel beyond it.
            let probes = [
                ((cy, x0), true),
                ((cy, x0 - 1), false),
                ((cy, x1), true),
                ((cy, x1 + 1), false),
                ((y0, cx), true),
                ((y0 - 1, cx), false),
                ((y1, cx), true),
                ((y1 + 1, cx), false),
            ];
            let x = base.repeat([probes.len() as i64, 1, 1, 1]);
            for (k, ((py, px), _)) in probes.iter().enumerate() {
                let _ = x.get(k as i64).get(0).get(*py).get(*px).fill_(f64::NAN);
            }
            let out = net.pre_activations(&x);
            let f = &out.iter().find(|t| t.name == layer).unwrap().features;
            for (k, ((py, px), inside)) in probes.iter().enumerate() {
                let reached =
                    f.get(k as i64).narrow(1, uy, 1).narrow(2, ux, 1).isnan().any().int64_value(&[]) != 0;
                assert_eq!(
                    reached, *inside,
                    "{arch} {layer}: pixel ({py}, {px}), box x {x0}..{x1}, y {y0}..{y1}"
                );
            }
        }
    }
}

#[test]
fn receptive_field_boxes_are_the_extent_of_the_units_input_gradient() {
    let side = 448i64;
    for (arch, layers) in [
        ("vgg16", ["conv2_2", "conv4_3"]),
        ("alexnet", ["conv2", "conv5"]),
        ("resnet18", ["layer1", "layer2"]),
    ] {
        let (vs, net) = network(arch);
        // Positive weights and inputs: every ReLU passes, so the gradient reaches every input
        // pixel on a path through the max-pooling argmaxes.
        tch::no_grad(|| {
            for (_, mut v) in vs.variables() {
                let a = v.abs();
                v.copy_(&a);
            }
        });
        let spec = net.spec();
        for layer in layers {
            let rf = spec.receptive_field(layer).unwrap();
            tch::manual_seed(3);
            let x =
                (Tensor::rand([24, 1, side, side], (Kind::Float, Device::Cpu)) + 0.1).set_requires_grad(true);
            let taps = net.pre_activations_with_grad(&x);
            let f = &taps.iter().find(|t| t.name == layer).unwrap().features;
            let (h, w) = (f.size()[2], f.size()[3]);
            let (uy, ux) = (h / 2, w / 2);
            f.narrow(2, uy, 1).narrow(3, ux, 1).sum(Kind::Float).backward();
            // The union over the inputs of the pixels with a nonzero gradient.
            let support = x.grad().abs().sum_dim_intlist([0i64, 1].as_slice(), false, Kind::Float).gt(0.0);
            let rows = support.any_dim(1, false).nonzero();
            let cols = support.any_dim(0, false).nonzero();
            let extent = |t: &Tensor| (t.min().int64_value(&[]), t.max().int64_value(&[]));
            let ((gy0, gy1), (gx0, gx1)) = (extent(&rows), extent(&cols));
            let (x0, y0, x1, y1) = patch_box(&rf, uy, ux, side, side);
            assert_eq!((gx0, gy0, gx1, gy1), (x0, y0, x1, y1), "{arch} {layer}: gradient extent vs box");
        }
    }
}

#[test]
fn a_filter_for_a_planted_pattern_finds_the_images_that_carry_it() {
    let (vs, net) = network("vgg16");
    // conv1_1 channel 2 detects a bright plus sign: the pattern minus its mean.
    let pattern = Tensor::from_slice(&[0.0f32, 1.0, 0.0, 1.0, 1.0, 1.0, 0.0, 1.0, 0.0]).reshape([3, 3]);
    let filter = &pattern - pattern.mean(Kind::Float);
    tch::no_grad(|| {
        let vars = vs.variables();
        vars["features.0.weight"].get(2).get(0).copy_(&filter);
        let _ = vars["features.0.bias"].get(2).fill_(0.0);
    });
    let mut top = TopActivations::new("conv1_1", vec![2], 3);
    tch::manual_seed(2);
    let planted = [(1usize, (10i64, 40i64)), (4, (50, 7)), (7, (33, 33))];
    for image in 0..9 {
        let x = Tensor::rand([1, 1, 64, 64], (Kind::Float, Device::Cpu)) * 0.2;
        if let Some((_, (py, px))) = planted.iter().find(|(i, _)| *i == image) {
            let patch = &pattern * 3.0 + 0.1;
            x.get(0).get(0).narrow(0, py - 1, 3).narrow(1, px - 1, 3).copy_(&patch);
        }
        top.add(&net, image, &x).unwrap();
    }
    let rf = net.spec().receptive_field("conv1_1").unwrap();
    let mut found: Vec<usize> = top.results()[0].iter().map(|u| u.image).collect();
    found.sort();
    assert_eq!(found, [1, 4, 7]);
    for u in &top.results()[0] {
        let (_, (py, px)) = planted.iter().find(|(i, _)| *i == u.image).unwrap();
        let (x0, y0, x1, y1) = patch_box(&rf, u.y, u.x, 64, 64);
        assert!(
            (x0..=x1).contains(px) && (y0..=y1).contains(py),
            "image {}: box misses the pattern",
            u.image
        );
        assert_eq!((u.y, u.x), (*py, *px), "the unit centred on the pattern responds most");
    }
}
