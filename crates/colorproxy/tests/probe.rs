//! `analyse probe --random-init` probes the pretraining's own initial network: a pretraining whose
//! steps change nothing (learning rate 1e-30, BN statistics frozen with momentum 0) leaves exactly
//! its initial weights, and probing its checkpoint gives what `--random-init` with the same seed
//! gives, layer by layer; another seed gives another network.
mod common;

use common::{bin, text};

fn probe(ck: &std::path::Path, voc: &std::path::Path, extra: &[&str]) -> Vec<serde_json::Value> {
    let o = bin()
        .args(["analyse", "probe", "--checkpoint"])
        .arg(ck)
        .arg("--data")
        .arg(voc)
        .args(["--layer", "conv3_3,fc7", "--method", "knn", "--k", "3", "--size", "96", "--json"])
        .args(extra)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn random_init_probes_the_pretrainings_initial_network() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("d");
    let o = bin().args(["data", "generate", "--images", "240", "--out"]).arg(&d).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let pre = tmp.path().join("pre");
    let o = bin()
        .args(["pretrain", "--preset", "cpu-small", "--iterations", "2", "--seed", "3", "--lr", "1e-30"])
        .args(["--set", "model.bn_momentum=0.0", "--data"])
        .arg(d.join("unlabelled"))
        .arg("--out")
        .arg(&pre)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let ck = pre.join("checkpoints/last.safetensors");
    let voc = d.join("voc");
    let strip = |v: Vec<serde_json::Value>| -> Vec<serde_json::Value> {
        v.into_iter()
            .map(|mut r| {
                let o = r.as_object_mut().unwrap();
                o.remove("random_init");
                o.remove("seed");
                r
            })
            .collect()
    };
    let trained = strip(probe(&ck, &voc, &[]));
    let same = strip(probe(&ck, &voc, &["--random-init", "--seed", "3"]));
    let other = strip(probe(&ck, &voc, &["--random-init", "--seed", "4"]));
    assert_eq!(trained.len(), 2, "one result per layer: {trained:?}");
    assert_eq!(trained[0]["layer"], "conv3_3");
    assert_eq!(trained[1]["layer"], "fc7");
    assert_eq!(trained, same, "the untrained network of seed 3 is not the pretraining's start");
    for (a, b) in trained.iter().zip(&other) {
        assert_ne!(a["extra"], b["extra"], "seeds 3 and 4 gave the same network at {}", a["layer"]);
    }
    // --random-init needs a pretraining's config.
    let o = bin()
        .args(["analyse", "probe", "--random-init", "--arch", "vgg16", "--checkpoint"])
        .arg(&ck)
        .arg("--data")
        .arg(&voc)
        .output()
        .unwrap();
    assert!(!o.status.success() && text(&o).contains("--random-init"), "{}", text(&o));
}
