//! Feature shift (Fig. 3): a network against itself gives 1 for every channel; against a copy
//! with one channel's filter negated, -1 for that channel and 1 elsewhere; against an
//! independently initialised network, correlations centred near 0.
use colorproxy_nn::backbone::Backbone;
use colorproxy_nn::config::ModelConfig;
use colorproxy_nn::feature_shift::{quantile, ShiftAccumulator};
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

fn network(arch: &str, seed: u64) -> (VarStore, Backbone) {
    let model = ModelConfig {
        arch: arch.into(),
        width: 0.125,
        fc_channels: 32,
        hypercolumn: Vec::new(),
        ..ModelConfig::default()
    };
    let vs = VarStore::new(Device::Cpu);
    let mut b = Backbone::new(&vs.root(), &model).unwrap();
    colorproxy_nn::init::initialize(&vs, &model, seed);
    // As after BN absorption (transfer): plain convolutions.
    b.set_use_bn(false);
    (vs, b)
}

fn shift(a: &Backbone, b: &Backbone, seed: i64) -> Vec<colorproxy_nn::feature_shift::LayerShift> {
    tch::manual_seed(seed);
    let mut acc = ShiftAccumulator::new(32, 1);
    for _ in 0..4 {
        let x = Tensor::rand([2, 1, 64, 64], (Kind::Float, Device::Cpu)) - 0.5;
        acc.add(a, b, &x).unwrap();
    }
    acc.finish()
}

#[test]
fn a_network_against_itself_correlates_one_everywhere() {
    for arch in ["vgg16", "alexnet", "resnet18"] {
        let (_vs, net) = network(arch, 3);
        for l in shift(&net, &net, 0) {
            assert!(l.samples > 0, "{arch} {}", l.layer);
            for (c, r) in l.correlations.iter().enumerate() {
                if let Some(r) = r {
                    assert!((r - 1.0).abs() < 1e-9, "{arch} {} channel {c}: {r}", l.layer);
                }
            }
        }
    }
}

#[test]
fn a_negated_filter_gives_minus_one_for_its_channel_only() {
    let (vs, net) = network("vgg16", 3);
    let (copy_vs, copy) = network("vgg16", 3);
    // fc7 (the top layer, so nothing downstream changes): negate output channel 5.
    tch::no_grad(|| {
        let vars = copy_vs.variables();
        for name in ["classifier.3.weight", "classifier.3.bias"] {
            let t = vars[name].shallow_clone();
            let row = t.get(5) * -1.0;
            t.get(5).copy_(&row);
        }
    });
    let _ = vs;
    for l in shift(&net, &copy, 1) {
        for (c, r) in l.correlations.iter().enumerate() {
            let Some(r) = r else { continue };
            let want = if l.layer == "fc7" && c == 5 { -1.0 } else { 1.0 };
            assert!((r - want).abs() < 1e-9, "{} channel {c}: {r}, expected {want}", l.layer);
        }
        if l.layer == "fc7" {
            assert!(l.correlations[5].is_some(), "fc7 channel 5 constant");
        }
    }
}

#[test]
fn independent_networks_correlate_near_zero() {
    let (_a, a) = network("vgg16", 3);
    let (_b, b) = network("vgg16", 4);
    let layers = shift(&a, &b, 2);
    let all: Vec<f64> = layers.iter().flat_map(|l| l.correlations.iter().flatten().copied()).collect();
    let mut sorted = all.clone();
    sorted.sort_by(f64::total_cmp);
    let median = quantile(&sorted, 0.5);
    assert!(median.abs() < 0.1, "median {median}");
    // Not all zero either: spread on both sides.
    assert!(
        quantile(&sorted, 0.1) < -0.05 && quantile(&sorted, 0.9) > 0.05,
        "{:?}",
        (quantile(&sorted, 0.1), quantile(&sorted, 0.9))
    );
    for l in &layers {
        assert!(l.median.abs() < 0.35, "{}: median {}", l.layer, l.median);
    }
}

#[test]
fn quantiles_interpolate_between_order_statistics() {
    let v = [1.0, 2.0, 3.0, 4.0];
    assert_eq!(quantile(&v, 0.5), 2.5);
    assert_eq!(quantile(&v, 0.25), 1.75);
    assert_eq!(quantile(&v, 0.0), 1.0);
    assert_eq!(quantile(&v, 1.0), 4.0);
    assert!(quantile(&[], 0.5).is_nan());
}
