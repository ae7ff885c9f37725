//! `colorproxy analyse ...`: the paper's analyses of the representation (section 6.5).
//! `shift`: feature shift between two networks (Fig. 3).
use anyhow::{bail, Context};
use colorproxy_data::decode::{decode_file, DecodeLimits};
use colorproxy_data::source::ImageSource;
use colorproxy_nn::feature_shift::ShiftAccumulator;
use colorproxy_nn::parse_device;
use colorproxy_nn::torchvision::{load_network, network_input};
use colorproxy_nn::transfer::GRAY_MEAN;

use crate::cli::ShiftArgs;
use crate::progress;
use crate::report::plot::{write_range_chart, RangeChart};

pub fn shift(a: ShiftArgs) -> anyhow::Result<()> {
    if a.out.join("shift.json").exists() && !a.force {
        bail!("{} holds a shift analysis (pass --force to replace it)", a.out.display());
    }
    if a.size < 32 || !a.size.is_multiple_of(32) {
        bail!("--size {}: expected a multiple of 32 (at least 32)", a.size);
    }
    let device = parse_device(a.device.as_deref())?;
    let before = load_network(&a.before, a.before_config.as_deref(), a.arch.as_deref(), device)
        .with_context(|| format!("--before {}", a.before.display()))?;
    let after = load_network(&a.after, a.after_config.as_deref(), a.arch.as_deref(), device)
        .with_context(|| format!("--after {}", a.after.display()))?;
    if before.model.arch != after.model.arch {
        bail!(
            "--before is a {} and --after a {}: the same architecture is needed",
            before.model.arch,
            after.model.arch
        );
    }
    let channels = before.in_channels().min(after.in_channels());
    let source = ImageSource::open(&a.data)?;
    let files: Vec<_> = source.files.iter().take(a.images).collect();
    if files.is_empty() {
        bail!("{}: no images", a.data.display());
    }
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let mut acc = ShiftAccumulator::new(a.positions, a.seed);
    let (pb, mut used, mut skipped) = (progress::bar(files.len() as u64, "shift"), 0usize, 0usize);
    for f in &files {
        pb.inc(1);
        let img = match decode_file(f, &DecodeLimits::default()) {
            Ok(img) => img,
            Err(e) => {
                progress::note(&pb, &format!("skipped {}: {e}", f.display()));
                skipped += 1;
                continue;
            }
        };
        let crop = crate::cmd_export::centre_crop(&img, a.size);
        let x = network_input(&[&crop], channels, GRAY_MEAN, device);
        acc.add(&before.backbone, &after.backbone, &x)?;
        used += 1;
    }
    pb.finish_and_clear();
    if used < 2 {
        bail!("{}: {used} usable images; correlations need at least 2", a.data.display());
    }
    let layers = acc.finish();
    let json = serde_json::json!({
        "before": a.before, "after": a.after, "arch": before.model.arch, "data": a.data,
        "images": used, "skipped": skipped, "positions_per_image": a.positions, "size": a.size, "seed": a.seed,
        "activations": "pre-ReLU (normalised convolution outputs), eval mode",
        "layers": layers,
    });
    let p = a.out.join("shift.json");
    std::fs::write(&p, serde_json::to_string_pretty(&json)?)
        .with_context(|| format!("writing {}", p.display()))?;
    let mut csv = String::from("layer,channel,correlation\n");
    for l in &layers {
        for (c, r) in l.correlations.iter().enumerate() {
            csv.push_str(&format!("{},{c},{}\n", l.layer, r.map(|v| format!("{v:.6}")).unwrap_or_default()));
        }
    }
    std::fs::write(a.out.join("shift.csv"), csv).context("writing shift.csv")?;
    let chart = RangeChart {
        title: format!("feature shift ({}): correlation of each channel before / after", before.model.arch),
        y_label: "correlation (median, IQR over channels)".into(),
        items: layers.iter().map(|l| (l.layer.clone(), l.q1, l.median, l.q3)).collect(),
        y_range: (layers.iter().map(|l| l.q1).fold(0.0f64, f64::min).max(-1.0), 1.05),
    };
    write_range_chart(&chart, 900, 420, &a.out.join("shift.png"))?;
    println!("layer      median   q1      q3      (Pearson r per channel over {used} images x positions; quartiles over channels)");
    for l in &layers {
        println!("{:<10} {:>6.3}  {:>6.3}  {:>6.3}", l.layer, l.median, l.q1, l.q3);
    }
    println!("wrote {}/shift.{{json,csv,png,svg}}", a.out.display());
    Ok(())
}
