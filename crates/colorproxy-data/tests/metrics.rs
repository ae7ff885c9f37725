//! Metrics against independent references: scikit-learn and the VOC devkit formula (committed
//! fixture, tools/make_ap_fixture.py) and hand-computed segmentation masks.
use colorproxy_data::metrics::{
    average_precision, average_precision_voc07, top_k_accuracy, ConfusionMatrix, VOID,
};

#[test]
fn average_precision_matches_sklearn_and_the_voc07_devkit() {
    let text = include_str!("fixtures/ap_cases.json");
    let v: serde_json::Value = serde_json::from_str(text).unwrap();
    let cases = v["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 12);
    for (i, c) in cases.iter().enumerate() {
        let scores: Vec<f32> =
            c["scores"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect();
        let labels: Vec<i8> =
            c["labels"].as_array().unwrap().iter().map(|x| x.as_i64().unwrap() as i8).collect();
        let ap = average_precision(&scores, &labels).unwrap();
        let voc = average_precision_voc07(&scores, &labels).unwrap();
        let (want_ap, want_voc) = (c["sklearn_ap"].as_f64().unwrap(), c["voc07_ap"].as_f64().unwrap());
        assert!((ap - want_ap).abs() < 1e-9, "case {i}: AP {ap} vs sklearn {want_ap}");
        assert!((voc - want_voc).abs() < 1e-9, "case {i}: VOC07 AP {voc} vs devkit {want_voc}");
    }
    // Hand-computed: scores 0.9 (+), 0.8 (-), 0.7 (+): AP = 1/2 * 1 + 1/2 * 2/3.
    let ap = average_precision(&[0.9, 0.8, 0.7], &[1, -1, 1]).unwrap();
    assert!((ap - (0.5 + 1.0 / 3.0)).abs() < 1e-12);
    // A difficult example between them changes nothing.
    assert_eq!(average_precision(&[0.9, 0.85, 0.8, 0.7], &[1, 0, -1, 1]).unwrap(), ap);
    assert_eq!(average_precision(&[0.1, 0.2], &[-1, -1]), None);
}

#[test]
fn miou_on_hand_built_masks_with_void() {
    // 3 classes; 4x3 image, ground truth with two void pixels.
    #[rustfmt::skip]
    let gt: Vec<u8> = vec![
        0, 0, 1, 1,
        0, 2, 2, VOID,
        0, 2, 2, VOID,
    ];
    #[rustfmt::skip]
    let pred: Vec<u8> = vec![
        0, 1, 1, 1,
        0, 2, 0, 2,
        0, 2, 2, 1,
    ];
    let mut cm = ConfusionMatrix::new(3);
    cm.add(&gt, &pred).unwrap();
    let r = cm.report();
    // Class 0: gt {0,1,4,8}, pred {0,4,6,8}: tp 3, union 5. Class 1: gt {2,3}, pred {1,2,3}
    // (11 is void): tp 2, union 3. Class 2: gt {5,6,9,10}, pred {5,9,10} (7 void): tp 3, union 4.
    let want = [3.0 / 5.0, 2.0 / 3.0, 3.0 / 4.0];
    for (g, w) in r.per_class_iou.iter().zip(want) {
        assert!((g.unwrap() - w).abs() < 1e-12);
    }
    assert!((r.miou - want.iter().sum::<f64>() / 3.0).abs() < 1e-12);
    assert!((r.pixel_accuracy - 8.0 / 10.0).abs() < 1e-12);
    // Accumulated over the split: a second image where only class 0 appears; a class absent from
    // both ground truth and prediction (class 3 of 4) is left out of the mean.
    let mut cm = ConfusionMatrix::new(4);
    cm.add(&gt, &pred).unwrap();
    cm.add(&[0, 0], &[0, 0]).unwrap();
    let r = cm.report();
    assert_eq!(r.per_class_iou[3], None);
    let want = [5.0 / 7.0, 2.0 / 3.0, 3.0 / 4.0];
    assert!((r.miou - want.iter().sum::<f64>() / 3.0).abs() < 1e-12);
    assert!(cm.add(&[5], &[0]).is_err());
    assert!(cm.add(&[0, 1], &[0]).is_err());
}

#[test]
fn top_k_accuracy_by_hand() {
    let scores = vec![vec![0.1, 0.7, 0.2], vec![0.5, 0.3, 0.2], vec![0.2, 0.3, 0.5]];
    let labels = [1, 1, 0];
    assert!((top_k_accuracy(&scores, &labels, 1) - 1.0 / 3.0).abs() < 1e-12);
    assert!((top_k_accuracy(&scores, &labels, 2) - 2.0 / 3.0).abs() < 1e-12);
    assert!((top_k_accuracy(&scores, &labels, 3) - 1.0).abs() < 1e-12);
}
