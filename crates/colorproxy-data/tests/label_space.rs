//! Label-space transforms (Table 4) are exact, and the spread over seeds uses Student's t.
use colorproxy_data::label_space::{buckets_from_file, label_noise, random_buckets, subsample_per_class};
use colorproxy_data::spread::{spread, t_975};

fn targets() -> Vec<usize> {
    // 5 classes with 3, 10, 7, 1 and 12 images, interleaved.
    let counts = [3usize, 10, 7, 1, 12];
    let mut v: Vec<usize> = counts.iter().enumerate().flat_map(|(c, &n)| std::iter::repeat_n(c, n)).collect();
    v.rotate_left(5);
    v
}

#[test]
fn subsampling_keeps_exactly_min_count_per_class() {
    let t = targets();
    for per in [1usize, 4, 20] {
        let keep = subsample_per_class(&t, per, 9);
        for (c, n) in [3usize, 10, 7, 1, 12].iter().enumerate() {
            let got = keep.iter().filter(|&&i| t[i] == c).count();
            assert_eq!(got, (*n).min(per), "class {c}, {per} per class");
        }
        assert!(keep.windows(2).all(|w| w[0] < w[1]), "sorted, no repeats");
        assert_eq!(keep, subsample_per_class(&t, per, 9), "fixed by the seed");
    }
    assert_ne!(subsample_per_class(&t, 4, 1), subsample_per_class(&t, 4, 2));
}

#[test]
fn label_noise_changes_exactly_the_fraction_and_never_to_the_true_label() {
    let t = targets();
    for (fraction, want) in [(0.0, 0usize), (0.25, 8), (0.5, 17), (1.0, 33)] {
        let noisy = label_noise(&t, 5, fraction, 3).unwrap();
        let changed: Vec<usize> = (0..t.len()).filter(|&i| noisy[i] != t[i]).collect();
        // Every drawn image changes (another class, never the true one), so the changed count
        // is exactly round(fraction * n).
        assert_eq!(changed.len(), want, "fraction {fraction}");
        assert!(noisy.iter().all(|&l| l < 5));
    }
    // Over many draws every other class appears as a noisy label of class 0.
    let many: Vec<usize> = vec![0; 400];
    let noisy = label_noise(&many, 5, 1.0, 4).unwrap();
    for c in 1..5 {
        assert!(noisy.iter().filter(|&&l| l == c).count() > 60, "class {c}");
    }
    assert!(label_noise(&t, 5, 1.5, 0).is_err());
}

#[test]
fn random_buckets_partition_the_classes_into_the_requested_count() {
    for (classes, k) in [(20usize, 1usize), (20, 5), (20, 20), (1000, 7)] {
        let map = random_buckets(classes, k, 11).unwrap();
        assert_eq!(map.len(), classes);
        let mut used: Vec<usize> = map.clone();
        used.sort_unstable();
        used.dedup();
        assert_eq!(
            used,
            (0..k).collect::<Vec<_>>(),
            "{classes} classes into {k}: every bucket used, no other"
        );
    }
    assert!(random_buckets(5, 6, 0).is_err() && random_buckets(5, 0, 0).is_err());
}

#[test]
fn a_mapping_file_must_map_every_class_and_only_known_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let classes: Vec<String> = ["cat", "dog", "car", "bus"].iter().map(|s| s.to_string()).collect();
    let file = tmp.path().join("map.txt");
    std::fs::write(
        &file,
        "# WordNet-style\ncat animal\ndog\tanimal\n\ncar vehicle  # a comment\nbus vehicle\n",
    )
    .unwrap();
    let (map, names) = buckets_from_file(&file, &classes).unwrap();
    assert_eq!(names, ["animal", "vehicle"]);
    assert_eq!(map, [0, 0, 1, 1]);
    std::fs::write(&file, "cat animal\ndog animal\ncar vehicle\n").unwrap();
    let e = buckets_from_file(&file, &classes).unwrap_err().to_string();
    assert!(e.contains("\"bus\"") && e.contains("no bucket") && e.contains("map.txt"), "{e}");
    std::fs::write(&file, "cat animal\ndog animal\ncar vehicle\nbus vehicle\nzebra animal\n").unwrap();
    let e = buckets_from_file(&file, &classes).unwrap_err().to_string();
    assert!(e.contains("\"zebra\"") && e.contains("line 5") && e.contains("unknown class"), "{e}");
}

#[test]
fn the_95_percent_interval_uses_students_t() {
    // Hand-computed: mean 0.6, s = 0.1, t(0.975, 2) = 4.303, half-width 4.303 * 0.1 / sqrt(3).
    let s = spread(&[0.5, 0.6, 0.7]);
    assert!((s.mean - 0.6).abs() < 1e-12 && (s.std - 0.1).abs() < 1e-12);
    assert!((s.ci95 - 0.248_434).abs() < 1e-5, "{}", s.ci95);
    // Two seeds: t(0.975, 1) = 12.706; values 1 and 3: s = sqrt(2), half-width 12.706.
    let s = spread(&[1.0, 3.0]);
    assert!((s.ci95 - 12.706).abs() < 1e-9, "{}", s.ci95);
    // The expansion beyond the table: t(0.975, 40) = 2.0211, t(0.975, 120) = 1.9799.
    assert!((t_975(40) - 2.0211).abs() < 2e-4 && (t_975(120) - 1.9799).abs() < 1e-4);
    assert!(spread(&[0.3]).ci95.is_nan());
}
