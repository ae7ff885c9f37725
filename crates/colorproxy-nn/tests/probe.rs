//! Probes on frozen features: kNN equals a brute-force computation (cosine similarity, weighted
//! votes); the linear probe separates linearly separable classes (single- and multi-label).
use colorproxy_data::metrics::{ap_report, top_k_accuracy};
use colorproxy_data::Rng;
use colorproxy_nn::probe::{knn, LinearProbe, ProbeLabels};
use tch::Tensor;

fn features(n: usize, d: usize, rng: &mut Rng) -> Vec<Vec<f32>> {
    (0..n).map(|_| (0..d).map(|_| rng.below(2001) as f32 / 1000.0 - 1.0).collect()).collect()
}

fn tensor(v: &[Vec<f32>]) -> Tensor {
    let flat: Vec<f32> = v.iter().flatten().copied().collect();
    Tensor::from_slice(&flat).reshape([v.len() as i64, v[0].len() as i64])
}

fn rows(t: &Tensor) -> Vec<Vec<f32>> {
    let n = t.size()[0];
    (0..n).map(|i| Vec::<f32>::try_from(t.get(i)).unwrap()).collect()
}

#[test]
fn knn_equals_brute_force() {
    let mut rng = Rng::derive(1, &[]);
    let (train, val) = (features(40, 6, &mut rng), features(9, 6, &mut rng));
    let classes = 4usize;
    let single: Vec<i64> = (0..40).map(|_| rng.below(classes as u64) as i64).collect();
    let multi: Vec<Vec<i8>> =
        (0..40).map(|_| (0..classes).map(|_| [-1i8, 0, 1][rng.below(3) as usize]).collect()).collect();
    let cos = |a: &[f32], b: &[f32]| -> f64 {
        let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
        let n = |v: &[f32]| v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
        dot / (n(a) * n(b))
    };
    for k in [1usize, 5, 40] {
        for labels in [ProbeLabels::Single(single.clone()), ProbeLabels::Multi(multi.clone())] {
            let got = rows(&knn(&tensor(&train), &labels, &tensor(&val), classes as i64, k).unwrap());
            for (m, v) in val.iter().enumerate() {
                let mut sims: Vec<(f64, usize)> =
                    train.iter().enumerate().map(|(i, t)| (cos(v, t), i)).collect();
                sims.sort_by(|a, b| b.0.total_cmp(&a.0));
                let mut want = vec![0.0f64; classes];
                for &(s, i) in &sims[..k] {
                    for (c, w) in want.iter_mut().enumerate() {
                        let y = match &labels {
                            ProbeLabels::Single(v) => (v[i] == c as i64) as i32 as f64,
                            ProbeLabels::Multi(v) => (v[i][c] > 0) as i32 as f64,
                        };
                        *w += s * y / k as f64;
                    }
                }
                for c in 0..classes {
                    assert!(
                        (got[m][c] as f64 - want[c]).abs() < 1e-5,
                        "k {k}, image {m}, class {c}: {} vs {}",
                        got[m][c],
                        want[c]
                    );
                }
            }
        }
    }
}

#[test]
fn a_linear_probe_separates_linearly_separable_classes() {
    let mut rng = Rng::derive(2, &[]);
    let (d, classes) = (10usize, 3usize);
    let w0 = features(classes, d, &mut rng);
    let score = |x: &[f32], c: usize| -> f32 { x.iter().zip(&w0[c]).map(|(a, b)| a * b).sum() };
    // Points whose best class wins by a margin.
    let mut draw = |n: usize| -> (Vec<Vec<f32>>, Vec<i64>) {
        let (mut xs, mut ys) = (Vec::new(), Vec::new());
        while xs.len() < n {
            let x = features(1, d, &mut rng).remove(0);
            let mut s: Vec<(f32, usize)> = (0..classes).map(|c| (score(&x, c), c)).collect();
            s.sort_by(|a, b| b.0.total_cmp(&a.0));
            if s[0].0 - s[1].0 > 0.3 {
                ys.push(s[0].1 as i64);
                xs.push(x);
            }
        }
        (xs, ys)
    };
    let ((tx, ty), (vx, vy)) = (draw(300), draw(150));
    let probe = LinearProbe::default();
    let scores = rows(
        &probe.fit_predict(&tensor(&tx), &ProbeLabels::Single(ty), &tensor(&vx), classes as i64).unwrap(),
    );
    let labels: Vec<usize> = vy.iter().map(|&y| y as usize).collect();
    let acc = top_k_accuracy(&scores, &labels, 1);
    assert!(acc >= 0.98, "single-label linear probe accuracy {acc}");
    // Multi-label: class c positive when its score is clearly above 0, negative when clearly
    // below, ignored near the boundary.
    let multi = |xs: &[Vec<f32>]| -> Vec<Vec<i8>> {
        xs.iter()
            .map(|x| {
                (0..classes)
                    .map(|c| match score(x, c) {
                        s if s > 0.2 => 1,
                        s if s < -0.2 => -1,
                        _ => 0,
                    })
                    .collect()
            })
            .collect()
    };
    let (tl, vl) = (multi(&tx), multi(&vx));
    let scores = rows(
        &probe.fit_predict(&tensor(&tx), &ProbeLabels::Multi(tl), &tensor(&vx), classes as i64).unwrap(),
    );
    let names: Vec<String> = (0..classes).map(|c| format!("c{c}")).collect();
    let map = ap_report(&scores, &vl, &names).map;
    assert!(map >= 0.98, "multi-label linear probe mAP {map}");
}
