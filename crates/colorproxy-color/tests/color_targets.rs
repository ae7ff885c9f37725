//! Colour targets against independent references: Python's colorsys (committed fixture, see
//! tools/make_colorsys_fixture.py), published CIE L*a*b* values of the sRGB primaries, and a
//! brute-force window loop for the summed-area-table histograms.
use colorproxy_color::{bin_index, hue_chroma, srgb_to_lab, HueChromaTargets, RgbView, TargetConfig};
use proptest::prelude::*;

#[test]
fn hue_and_chroma_match_python_colorsys() {
    let text = include_str!("fixtures/colorsys_hue_chroma.csv");
    let mut n = 0;
    for line in text.lines().skip(1) {
        let v: Vec<f64> = line.split(',').map(|s| s.parse().unwrap()).collect();
        let (h, c) = hue_chroma((v[0] / 255.0) as f32, (v[1] / 255.0) as f32, (v[2] / 255.0) as f32);
        // Hue is circular: 0.99999 and 0.0 are the same hue.
        let dh = (h as f64 - v[3]).abs();
        assert!(dh.min(1.0 - dh) < 1e-5, "hue of {line}: got {h}");
        assert!((c as f64 - v[4]).abs() < 1e-6, "chroma of {line}: got {c}");
        // Bins agree too, except within float rounding of a bin edge.
        let edge = (v[3] * 32.0 - (v[3] * 32.0).round()).abs() < 1e-4;
        if !edge {
            assert_eq!(bin_index(h, 32), ((v[3] * 32.0).floor() as usize).min(31), "{line}");
        }
        n += 1;
    }
    assert_eq!(n, 512);
}

#[test]
fn lab_matches_published_values() {
    // CIE L*a*b* (D65) of sRGB colours, as published in standard conversion tables
    // (Lindbloom / EasyRGB): (r, g, b) -> (L, a, b).
    let cases: [([f32; 3], [f32; 3]); 8] = [
        ([1.0, 0.0, 0.0], [53.2408, 80.0925, 67.2032]),
        ([0.0, 1.0, 0.0], [87.7347, -86.1827, 83.1793]),
        ([0.0, 0.0, 1.0], [32.2970, 79.1875, -107.8602]),
        ([1.0, 1.0, 0.0], [97.1393, -21.5537, 94.4780]),
        ([0.0, 1.0, 1.0], [91.1132, -48.0875, -14.1312]),
        ([1.0, 0.0, 1.0], [60.3242, 98.2343, -60.8249]),
        ([1.0, 1.0, 1.0], [100.0, 0.0, 0.0]),
        ([0.0, 0.0, 0.0], [0.0, 0.0, 0.0]),
    ];
    for (rgb, want) in cases {
        let lab = srgb_to_lab(rgb[0], rgb[1], rgb[2]);
        for (got, want) in [lab.l, lab.a, lab.b].iter().zip(want) {
            assert!((got - want).abs() < 0.02, "{rgb:?}: got {lab:?}, want {want:?}");
        }
    }
    // Mid gray 128/255 has L* = 53.585 and no chroma.
    let g = srgb_to_lab(128.0 / 255.0, 128.0 / 255.0, 128.0 / 255.0);
    assert!((g.l - 53.585).abs() < 0.01 && g.a.abs() < 0.01 && g.b.abs() < 0.01, "{g:?}");
}

#[test]
fn loss_weights_follow_the_authors_formulas() {
    let cfg = TargetConfig::default();
    // Hand-computed: hue weight = 5 * chroma; chroma weight = min(1, 3g, 3(1-g)).
    assert!((cfg.hue_weight(0.2) - 1.0).abs() < 1e-6);
    assert!((cfg.chroma_weight(0.1) - 0.3).abs() < 1e-6);
    assert!((cfg.chroma_weight(0.5) - 1.0).abs() < 1e-6);
    assert!((cfg.chroma_weight(0.9) - 0.3).abs() < 1e-6);
    assert_eq!(cfg.chroma_weight(0.0), 0.0);
    assert_eq!(cfg.chroma_weight(1.0), 0.0);
}

/// The histograms by a plain loop over the clipped window.
fn brute_force(img: &RgbView<'_>, y: usize, x: usize, cfg: &TargetConfig) -> (Vec<f32>, Vec<f32>) {
    let r = cfg.window as i64 / 2;
    let mut hh = vec![0f32; cfg.hue_bins];
    let mut ch = vec![0f32; cfg.chroma_bins];
    for yy in y as i64 - r..=y as i64 + r {
        for xx in x as i64 - r..=x as i64 + r {
            if yy < 0 || xx < 0 || yy >= img.height as i64 || xx >= img.width as i64 {
                continue;
            }
            let [pr, pg, pb] = img.pixel(yy as usize, xx as usize);
            let (h, c) = hue_chroma(pr, pg, pb);
            hh[bin_index(h, cfg.hue_bins)] += 1.0;
            ch[bin_index(c, cfg.chroma_bins)] += 1.0;
        }
    }
    let (sh, sc): (f32, f32) = (hh.iter().sum(), ch.iter().sum());
    hh.iter_mut().for_each(|v| *v /= sh);
    ch.iter_mut().for_each(|v| *v /= sc);
    (hh, ch)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn summed_area_histograms_equal_brute_force(
        h in 1usize..24, w in 1usize..24, seed in any::<u64>(), window in prop::sample::select(vec![1usize, 3, 7, 9]),
        npts in 1usize..12,
    ) {
        let mut s = seed | 1;
        let mut next = || { s ^= s << 13; s ^= s >> 7; s ^= s << 17; s };
        // Few distinct values so windows often share bins.
        let data: Vec<f32> = (0..h * w * 3).map(|_| (next() % 6) as f32 / 5.0).collect();
        let pts: Vec<(usize, usize)> = (0..npts).map(|_| ((next() as usize) % h, (next() as usize) % w)).collect();
        let cfg = TargetConfig { window, ..TargetConfig::default() };
        let t = HueChromaTargets::new(cfg.clone()).unwrap();
        let img = RgbView::new(&data, h, w).unwrap();
        let got = t.compute(img, &pts).unwrap();
        for (p, g) in pts.iter().zip(&got) {
            let (hh, ch) = brute_force(&img, p.0, p.1, &cfg);
            for (a, b) in g.hue_hist.iter().zip(&hh) { prop_assert!((a - b).abs() < 1e-6); }
            for (a, b) in g.chroma_hist.iter().zip(&ch) { prop_assert!((a - b).abs() < 1e-6); }
            prop_assert!((g.hue_hist.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        }
    }
}

#[test]
fn window_is_clipped_at_corners_and_points_outside_are_errors() {
    // 3x3 image, all pure red except a blue corner; 7x7 window at (0,0) sees the whole image.
    let mut data = vec![0f32; 27];
    for i in 0..9 {
        data[i * 3] = 1.0;
    }
    data[0] = 0.0;
    data[2] = 1.0; // (0,0) is blue
    let img = RgbView::new(&data, 3, 3).unwrap();
    let t = HueChromaTargets::new(TargetConfig::default()).unwrap();
    let p = &t.compute(img, &[(0, 0)]).unwrap()[0];
    // Hand-computed: 8 red pixels (hue 0 -> bin 0), 1 blue (hue 2/3 -> bin 21); all chroma 1 -> bin 31.
    assert!((p.hue_hist[0] - 8.0 / 9.0).abs() < 1e-6);
    assert!((p.hue_hist[21] - 1.0 / 9.0).abs() < 1e-6);
    assert!((p.chroma_hist[31] - 1.0).abs() < 1e-6);
    assert!((p.hue_weight - 5.0).abs() < 1e-6);
    assert!((p.gray - 1.0 / 3.0).abs() < 1e-6);
    assert!(t.compute(img, &[(3, 0)]).is_err());
    assert!(RgbView::new(&data, 3, 4).is_err());
}

/// Round trip: one-hot histograms at a pixel's true hue and chroma bins reconstruct the pixel to
/// within the bins' quantisation (no fading: a one-hot hue has a full mean resultant anyway).
pub fn round_trip_error(rgb: [f32; 3]) -> f32 {
    use colorproxy_color::reconstruct::{pixel_from_hists, ChromaEstimate, ReconstructOptions};
    let (h, c) = hue_chroma(rgb[0], rgb[1], rgb[2]);
    let mut hp = vec![0f32; 32];
    let mut cp = vec![0f32; 32];
    hp[bin_index(h, 32)] = 1.0;
    cp[bin_index(c, 32)] = 1.0;
    let l = (rgb[0] + rgb[1] + rgb[2]) / 3.0;
    let opts = ReconstructOptions {
        chroma: ChromaEstimate::Median,
        chromatic_fading: false,
        fading_threshold: 0.03,
    };
    let out = pixel_from_hists(&hp, &cp, l, &opts);
    // The output keeps the gray exactly.
    assert!(((out[0] + out[1] + out[2]) / 3.0 - l).abs() < 1e-5);
    out.iter().zip(rgb).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max)
}

#[test]
fn one_hot_histograms_reconstruct_pixels_within_bin_quantisation() {
    // Bin widths are 1/32: hue error up to 1/64 of the circle moves a channel by at most
    // 6 * C / 64 <= 0.094 C, chroma error up to 1/64. Bound: 1/64 + 6/64 * C + clipping slack.
    let text = include_str!("fixtures/colorsys_hue_chroma.csv");
    let mut worst = 0f32;
    for line in text.lines().skip(1) {
        let v: Vec<f32> = line.split(',').map(|s| s.parse().unwrap()).collect();
        let rgb = [v[0] / 255.0, v[1] / 255.0, v[2] / 255.0];
        let (_, c) = hue_chroma(rgb[0], rgb[1], rgb[2]);
        let err = round_trip_error(rgb);
        assert!(err <= 1.0 / 64.0 + 6.0 / 64.0 * c + 1.0 / 64.0 + 1e-4, "{rgb:?}: error {err}");
        worst = worst.max(err);
    }
    assert!(worst < 0.13, "worst {worst}");
    // Exact hue and chroma (no binning) reconstruct exactly.
    for line in text.lines().skip(1).take(100) {
        let v: Vec<f32> = line.split(',').map(|s| s.parse().unwrap()).collect();
        let rgb = [v[0] / 255.0, v[1] / 255.0, v[2] / 255.0];
        let (h, c) = hue_chroma(rgb[0], rgb[1], rgb[2]);
        let out = colorproxy_color::reconstruct::hcl_to_rgb(h, c, (rgb[0] + rgb[1] + rgb[2]) / 3.0);
        for (a, b) in out.iter().zip(rgb) {
            assert!((a - b).abs() < 1e-5, "{rgb:?} -> {out:?}");
        }
    }
    // The fading: a uniform hue histogram removes all colour.
    use colorproxy_color::reconstruct::{pixel_from_hists, ReconstructOptions};
    let out = pixel_from_hists(
        &[1.0 / 32.0; 32],
        &{
            let mut c = [0f32; 32];
            c[20] = 1.0;
            c
        },
        0.5,
        &ReconstructOptions::default(),
    );
    assert!(out.iter().all(|&x| (x - 0.5).abs() < 1e-5), "{out:?}");
}
