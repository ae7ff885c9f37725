//! The early-stopping protocol on scripted score sequences.
use colorproxy_nn::early_stop::{split_held_out, Decision, EarlyStopConfig, EarlyStopping};

fn run(cfg: EarlyStopConfig, scores: &[f64]) -> Vec<(usize, Decision)> {
    run_with(cfg, scores, None)
}

/// The decisions on a scripted score sequence (one score every `eval_every` iterations), with
/// an optional reference score.
fn run_with(cfg: EarlyStopConfig, scores: &[f64], reference: Option<f64>) -> Vec<(usize, Decision)> {
    let mut es = EarlyStopping::new(cfg.clone());
    if let Some(r) = reference {
        es.set_reference(r);
    }
    let mut out = Vec::new();
    for (k, &s) in scores.iter().enumerate() {
        let it = (k + 1) * cfg.eval_every;
        let d = es.observe(it, s);
        if d != Decision::Continue {
            out.push((it, d));
        }
        if d == Decision::Stop {
            break;
        }
    }
    out
}

#[test]
fn drops_exactly_when_the_windowed_score_plateaus_then_stops_at_the_second_plateau() {
    let cfg = EarlyStopConfig {
        eval_every: 10,
        window: 3,
        min_delta: 0.0,
        min_stage_iterations: 0,
        max_drops: 2,
        max_iterations: 10_000,
        reference_margin: 0.01,
    };
    // Windows (3 scores each) end at iterations 30, 60, 90, ...
    // Stage 1: window means 0.2, 0.4, 0.5, then 0.5 again (no improvement) -> drop at 120.
    // Stage 2: 0.6, 0.65, then 0.64 -> second plateau -> stop at 210.
    let s = [
        0.1, 0.2, 0.3, /* 0.2 */ 0.4, 0.4, 0.4, /* 0.4 */ 0.5, 0.5, 0.5, /* 0.5 */ 0.4, 0.6,
        0.5, /* 0.5 */
        0.6, 0.6, 0.6, /* 0.6 */ 0.65, 0.65, 0.65, /* 0.65 */ 0.64, 0.64, 0.64,
        /* 0.64 */ 0.9, 0.9, 0.9,
    ];
    assert_eq!(run(cfg.clone(), &s), vec![(120, Decision::DropLr), (210, Decision::Stop)]);
    let mut es = EarlyStopping::new(cfg.clone());
    for (k, &x) in s.iter().enumerate().take(21) {
        es.observe((k + 1) * 10, x);
    }
    assert_eq!(es.found.drops, vec![120]);
    assert_eq!(es.found.stop, 210);
    assert_eq!(es.found.windows.len(), 7);

    // A steadily improving score never drops.
    let rising: Vec<f64> = (0..60).map(|i| i as f64).collect();
    assert!(run(cfg.clone(), &rising).is_empty());

    // The minimum stage length postpones the drop to the first plateau after it.
    let cfg2 = EarlyStopConfig { min_stage_iterations: 150, ..cfg.clone() };
    let flat = [0.5; 30];
    // Windows end at 30 (0.5, best), 60 (no gain, stage 60 < 150), ..., 150 (no gain, 150 >= 150).
    assert_eq!(run(cfg2, &flat)[0], (150, Decision::DropLr));

    // max_drops 3: two drops, stop at the third plateau.
    let cfg3 = EarlyStopConfig { max_drops: 3, ..cfg };
    let d = run(cfg3, &[0.5; 30]);
    assert_eq!(d, vec![(60, Decision::DropLr), (120, Decision::DropLr), (180, Decision::Stop)]);
}

#[test]
fn held_out_split_is_deterministic_and_about_ten_percent() {
    let ids: Vec<String> = (0..1000).map(|i| format!("2008_{i:06}")).collect();
    let (a, b) = split_held_out(&ids, 0.1, 0);
    let (a2, b2) = split_held_out(&ids, 0.1, 0);
    assert_eq!((&a, &b), (&a2, &b2));
    assert!((70..130).contains(&b.len()), "{}", b.len());
    assert_eq!(a.len() + b.len(), 1000);
}

/// A run still at the trivial solution (held-out score at the majority-class reference) is not
/// stopped by plateaus: it goes on to `max_iterations`; once a window beats the reference by more
/// than the margin, plateaus count as usual.
#[test]
fn early_stopping_cannot_end_a_run_that_has_not_beaten_the_reference() {
    let cfg = EarlyStopConfig {
        eval_every: 10,
        window: 3,
        min_delta: 0.0,
        min_stage_iterations: 0,
        max_drops: 2,
        max_iterations: 600,
        reference_margin: 0.01,
    };
    let run = |scores: &[f64], reference: Option<f64>| run_with(cfg.clone(), scores, reference);
    // Flat at the reference 0.0822 (background everywhere): without the rule the run drops at 60
    // and stops at 120; with it, it runs to the cap.
    let flat = [0.0822; 60];
    assert_eq!(run(&flat, None), vec![(60, Decision::DropLr), (120, Decision::Stop)]);
    assert_eq!(run(&flat, Some(0.0822)), vec![(600, Decision::Stop)]);
    // Within the margin (0.0822 + 0.009) still counts as not beaten.
    assert_eq!(run(&[0.0912; 60], Some(0.0822)), vec![(600, Decision::Stop)]);
    // Rising above the reference after 90 iterations: plateaus count from then on.
    let mut rising = vec![0.0822; 9];
    rising.extend([0.3; 51]);
    assert_eq!(run(&rising, Some(0.0822)), vec![(150, Decision::DropLr), (210, Decision::Stop)]);
}
