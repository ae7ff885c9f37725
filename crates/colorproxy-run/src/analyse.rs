//! `colorproxy analyse ...`: the paper's analyses of the representation (section 6.5).
//! `shift`: feature shift between two networks (Fig. 3).
use crate::{bail, Context};
use colorproxy_nn::feature_shift::ShiftAccumulator;
use colorproxy_nn::parse_device;
use colorproxy_nn::torchvision::{load_network, network_input};
use colorproxy_nn::transfer::GRAY_MEAN;

use crate::images::for_each_centre_crop;
use crate::report::plot::{write_range_chart, RangeChart};
use crate::request::ShiftRequest;

pub fn shift(a: ShiftRequest) -> crate::Result<()> {
    if a.out.join("shift.json").exists() && !a.force {
        bail!("{} holds a shift analysis (pass --force to replace it)", a.out.display());
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
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let mut acc = ShiftAccumulator::new(a.positions, a.seed);
    let (used, skipped) = for_each_centre_crop(&a.data, a.images, a.size, "shift", |_, _, crop| {
        let x = network_input(&[&crop], channels, GRAY_MEAN, device);
        Ok(acc.add(&before.backbone, &after.backbone, &x)?)
    })?;
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

/// The network of `ck` as the analyses see it: BN absorbed (the same function in eval mode) and,
/// for VGG-16, the pad-with-bias edge fix on (the paper's choice for top activations).
fn analysed_network(
    ck: &std::path::Path,
    config: Option<&std::path::Path>,
    arch: Option<&str>,
    device: tch::Device,
) -> crate::Result<colorproxy_nn::torchvision::Network> {
    let mut net =
        load_network(ck, config, arch, device).with_context(|| format!("loading {}", ck.display()))?;
    if net.backbone.uses_bn() {
        net.backbone.absorb_bn();
    }
    if let colorproxy_nn::backbone::Backbone::Vgg16(v) = &mut net.backbone {
        v.pad_with_bias = true;
    }
    Ok(net)
}

/// Features to show: `--ids`, or `count` spread evenly over the layer's channels.
fn chosen_features(ids: &[i64], count: usize, channels: i64) -> Vec<i64> {
    if !ids.is_empty() {
        return ids.to_vec();
    }
    let k = (count as i64).clamp(1, channels);
    (0..k).map(|i| i * channels / k).collect()
}

/// The patches of one network's top units for one feature, in original colour.
fn patches(
    units: &[colorproxy_nn::top_activations::TopUnit],
    crops: &std::collections::BTreeMap<usize, colorproxy_data::RgbImage8>,
    rf: &colorproxy_nn::backbone::arch::ReceptiveField,
) -> Vec<image::RgbImage> {
    units
        .iter()
        .filter_map(|u| {
            let c = crops.get(&u.image)?;
            let (x0, y0, x1, y1) =
                colorproxy_nn::top_activations::patch_box(rf, u.y, u.x, c.width as i64, c.height as i64);
            let img = image::RgbImage::from_raw(c.width as u32, c.height as u32, c.data.clone())?;
            Some(
                image::imageops::crop_imm(
                    &img,
                    x0 as u32,
                    y0 as u32,
                    (x1 - x0 + 1) as u32,
                    (y1 - y0 + 1) as u32,
                )
                .to_image(),
            )
        })
        .collect()
}

pub fn top(a: crate::request::TopRequest) -> crate::Result<()> {
    use colorproxy_nn::top_activations::TopActivations;
    use std::collections::BTreeMap;
    if a.out.join("top.json").exists() && !a.force {
        bail!("{} holds a top-activations analysis (pass --force to replace it)", a.out.display());
    }
    let device = parse_device(a.device.as_deref())?;
    let net = analysed_network(&a.checkpoint, a.config.as_deref(), a.arch.as_deref(), device)?;
    let other = match &a.compare {
        Some(ck) => Some(analysed_network(ck, a.compare_config.as_deref(), a.arch.as_deref(), device)?),
        None => None,
    };
    let spec = net.backbone.spec();
    let rf = spec.receptive_field(&a.layer).with_context(|| {
        format!("layer {:?} is not a layer of {} ({})", a.layer, spec.name, spec.layer_names().join(", "))
    })?;
    let channels = net
        .backbone
        .tap_specs()
        .iter()
        .find(|t| t.0 == a.layer)
        .map(|t| t.1)
        .context("the layer has no tap")?;
    let features = chosen_features(&a.ids, a.features, channels);
    let mut tops = vec![TopActivations::new(&a.layer, features.clone(), a.top)];
    if other.is_some() {
        tops.push(TopActivations::new(&a.layer, features.clone(), a.top));
    }
    let mut shift = ShiftAccumulator::new(64, 0);
    let mut paths = Vec::new();
    let (used, skipped) = for_each_centre_crop(&a.data, a.images, a.size, "top", |i, path, crop| {
        let x = network_input(&[&crop], net.in_channels(), GRAY_MEAN, device);
        tops[0].add(&net.backbone, i, &x)?;
        if let Some(o) = &other {
            tops[1].add(&o.backbone, i, &x)?;
            shift.add(&net.backbone, &o.backbone, &x)?;
        }
        paths.push(path.to_owned());
        Ok(())
    })?;
    // The crops of the images that appear (decoded again: only those).
    let needed: std::collections::BTreeSet<usize> =
        tops.iter().flat_map(|t| t.results().iter().flatten().map(|u| u.image)).collect();
    let mut crops = BTreeMap::new();
    for i in needed {
        let img = colorproxy_data::decode_file(&paths[i], &colorproxy_data::DecodeLimits::default())
            .map_err(|e| crate::RunError::msg(format!("{}: {e}", paths[i].display())))?;
        crops.insert(i, crate::images::centre_crop(&img, a.size));
    }
    let correlations = other.as_ref().map(|_| {
        let layers = shift.finish();
        let l = layers.into_iter().find(|l| l.layer == a.layer);
        features.iter().map(|&f| l.as_ref().and_then(|l| l.correlations[f as usize])).collect::<Vec<_>>()
    });
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let mut page = crate::report::html::Page::new(&format!("Top activations: {} {}", spec.name, a.layer));
    page.p(&format!(
        "{} (layer {}, receptive field {} px). The {} strongest activations of each feature over {used} images \
         (centre crops of {} px; {skipped} skipped), at most one per image, each shown as the unit's receptive \
         field in the image's original colour (the network saw it in gray). Pre-ReLU values; BN absorbed; VGG-16 \
         pads with the bias.{}",
        a.checkpoint.display(),
        a.layer,
        rf.size,
        a.top,
        a.size,
        a.compare
            .as_ref()
            .map(|c| format!(" Second row: the same features in {}, with the correlation of the feature's activations in the two networks.", c.display()))
            .unwrap_or_default()
    ));
    let mut json_features = Vec::new();
    for (k, &f) in features.iter().enumerate() {
        let mut rows = vec![patches(&tops[0].results()[k], &crops, &rf)];
        if tops.len() > 1 {
            rows.push(patches(&tops[1].results()[k], &crops, &rf));
        }
        let file = format!("feature-{f}.png");
        crate::report::image_grid(&rows, a.cell)
            .save(a.out.join(&file))
            .with_context(|| format!("writing {file}"))?;
        let values = |t: &TopActivations| {
            t.results()[k].iter().map(|u| format!("{:.2}", u.value)).collect::<Vec<_>>().join(", ")
        };
        let r = correlations.as_ref().and_then(|c| c[k]);
        page.h2(&format!(
            "feature {f}{}",
            correlations
                .as_ref()
                .map(|_| format!(
                    " (correlation between the networks: {})",
                    r.map(|r| format!("{r:.2}")).unwrap_or("-".into())
                ))
                .unwrap_or_default()
        ));
        page.img(&file, &format!("top patches of feature {f}"));
        page.p(&format!("values: {}", values(&tops[0])));
        if tops.len() > 1 {
            page.p(&format!("second network: {}", values(&tops[1])));
        }
        let units = |t: &TopActivations| -> Vec<serde_json::Value> {
            t.results()[k]
                .iter()
                .map(|u| {
                    let (x0, y0, x1, y1) = colorproxy_nn::top_activations::patch_box(&rf, u.y, u.x, a.size as i64, a.size as i64);
                    serde_json::json!({"value": u.value, "image": paths[u.image], "y": u.y, "x": u.x, "box": [x0, y0, x1, y1]})
                })
                .collect()
        };
        json_features.push(serde_json::json!({
            "feature": f, "top": units(&tops[0]),
            "compare": (tops.len() > 1).then(|| units(&tops[1])), "correlation": r,
        }));
    }
    page.write(&a.out.join("index.html"))?;
    let json = serde_json::json!({
        "checkpoint": a.checkpoint, "compare": a.compare, "arch": spec.name, "layer": a.layer,
        "receptive_field": {"size": rf.size, "stride": rf.stride, "start": rf.start},
        "images": used, "skipped": skipped, "size": a.size, "features": json_features,
    });
    std::fs::write(a.out.join("top.json"), serde_json::to_string_pretty(&json)?)
        .context("writing top.json")?;
    println!(
        "wrote {}/index.html ({} features x {} patches), top.json",
        a.out.display(),
        features.len(),
        a.top
    );
    Ok(())
}

/// Globally pooled features `[N, C]` of each of `layers` (after ReLU) for the images of `set`,
/// centre crops of `size`: one forward pass per image for all layers.
fn pooled_features(
    net: &colorproxy_nn::torchvision::Network,
    set: &colorproxy_data::LabelledSet,
    layers: &[String],
    size: usize,
    what: &str,
) -> crate::Result<Vec<tch::Tensor>> {
    let pb = crate::progress::bar(set.len() as u64, what);
    let mut rows: Vec<Vec<tch::Tensor>> = layers.iter().map(|_| Vec::with_capacity(set.len())).collect();
    for i in 0..set.len() {
        pb.inc(1);
        let img = set.image(i)?;
        let crop = crate::images::centre_crop(&img, size);
        let x = network_input(&[&crop], net.in_channels(), GRAY_MEAN, net.vs.device());
        for (k, (_, f)) in net.features(&x, layers)?.into_iter().enumerate() {
            rows[k]
                .push(f.mean_dim([2i64, 3].as_slice(), false, tch::Kind::Float).to_device(tch::Device::Cpu));
        }
    }
    pb.finish_and_clear();
    Ok(rows.iter().map(|r| tch::Tensor::cat(r, 0)).collect())
}

/// The probe's labels of a labelled set.
fn probe_labels(set: &colorproxy_data::LabelledSet) -> colorproxy_nn::probe::ProbeLabels {
    use colorproxy_nn::probe::ProbeLabels;
    if set.single_label {
        ProbeLabels::Single(set.targets.iter().map(|&t| t as i64).collect())
    } else {
        ProbeLabels::Multi(set.labels.clone())
    }
}

pub fn probe(a: crate::request::ProbeRequest) -> crate::Result<()> {
    use colorproxy_nn::transfer::{load_split_with, OnBad, Task};
    crate::images::check_size(a.size)?;
    if a.layers.is_empty() {
        bail!("--layer: name at least one layer");
    }
    if a.random_init && a.arch.is_some() {
        bail!(
            "--random-init builds a colorization pretraining's network from its run config: not with --arch"
        );
    }
    let device = parse_device(a.device.as_deref())?;
    let net = match a.random_init {
        true => {
            colorproxy_nn::torchvision::untrained_network(&a.checkpoint, a.config.as_deref(), a.seed, device)?
        }
        false => load_network(&a.checkpoint, a.config.as_deref(), a.arch.as_deref(), device)?,
    };
    let mut say = |m: &str| eprintln!("{m}");
    let train = load_split_with(Task::Cls, &a.data, &a.train_split, None, OnBad::Skip, &mut say)?;
    let val = load_split_with(Task::Cls, &a.data, &a.split, Some(&train.class_names), OnBad::Skip, &mut say)?;
    let network = match a.random_init {
        true => format!("{} untrained (seed {})", a.checkpoint.display(), a.seed),
        false => a.checkpoint.display().to_string(),
    };
    let ft = pooled_features(&net, &train, &a.layers, a.size, "train features")?;
    let fv = pooled_features(&net, &val, &a.layers, a.size, "eval features")?;
    for (k, layer) in a.layers.iter().enumerate() {
        probe_layer(&a, (&ft[k], &fv[k]), (&train, &val), layer, &network)?;
    }
    Ok(())
}

/// One layer's probe on the pooled features of both splits: kNN or logistic regression, the score.
fn probe_layer(
    a: &crate::request::ProbeRequest,
    (ft, fv): (&tch::Tensor, &tch::Tensor),
    (train, val): (&colorproxy_data::LabelledSet, &colorproxy_data::LabelledSet),
    layer: &str,
    network: &str,
) -> crate::Result<()> {
    use colorproxy_nn::probe::{knn, LinearProbe};
    let classes = train.class_names.len() as i64;
    let (tl, vl) = (probe_labels(train), probe_labels(val));
    let scores = match a.method {
        crate::request::ProbeMethod::Knn => knn(ft, &tl, fv, classes, a.k)?,
        crate::request::ProbeMethod::Linear => {
            LinearProbe { seed: a.seed, ..LinearProbe::default() }.fit_predict(ft, &tl, fv, classes)?
        }
    };
    let rows: Vec<Vec<f32>> =
        (0..scores.size()[0]).map(|i| Vec::<f32>::try_from(scores.get(i)).unwrap_or_default()).collect();
    let (metric, value, extra) = match &vl {
        colorproxy_nn::probe::ProbeLabels::Single(y) => {
            let y: Vec<usize> = y.iter().map(|&v| v as usize).collect();
            let top5 = colorproxy_data::metrics::top_k_accuracy(&rows, &y, 5);
            (
                "top1",
                colorproxy_data::metrics::top_k_accuracy(&rows, &y, 1),
                serde_json::json!({"top5": top5}),
            )
        }
        colorproxy_nn::probe::ProbeLabels::Multi(l) => {
            let r = colorproxy_data::metrics::ap_report(&rows, l, &val.class_names);
            ("map", r.map, serde_json::json!({"map_voc07": r.map_voc07, "per_class": r.per_class}))
        }
    };
    let method = format!("{:?}", a.method).to_lowercase();
    if a.json {
        println!(
            "{}",
            serde_json::json!({"method": method, "k": a.k, "layer": layer, "metric": metric, "value": value,
                "random_init": a.random_init, "seed": a.seed,
                "train_images": train.len(), "eval_images": val.len(), "features": ft.size()[1], "extra": extra})
        );
    } else {
        println!(
            "{method} probe on {network} ({layer} pooled, {} features): {metric} {value:.4} on the {} split ({} images; trained on {} {})",
            ft.size()[1],
            a.split,
            val.len(),
            train.len(),
            a.train_split
        );
    }
    Ok(())
}
