//! `colorproxy colorize`: colour images with a pretrained network, and `--eval` how well.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use colorproxy_color::reconstruct::{ChromaEstimate, ReconstructOptions};
use colorproxy_data::{decode_file, DecodeLimits, ImageSource, RgbImage8};
use colorproxy_nn::colorize::{gray_rgb, psnr_rmse, ColorizeOptions, Colorizer};
use colorproxy_nn::{parse_device, PretrainConfig};
use image::RgbImage;

use crate::cli::ColorizeArgs;
use colorproxy_run::progress;

fn to_image(w: usize, h: usize, data: Vec<u8>) -> RgbImage {
    RgbImage::from_raw(w as u32, h as u32, data).expect("buffer matches size")
}

pub fn run(a: ColorizeArgs) -> anyhow::Result<()> {
    let config = PretrainConfig::of_checkpoint(&a.checkpoint, a.config.as_deref())?;
    let device = parse_device(a.device.device.as_deref())?;
    let chroma = match a.chroma.as_str() {
        "median" => ChromaEstimate::Median,
        "mode" => ChromaEstimate::Mode,
        "expectation" => ChromaEstimate::Expectation,
        o => bail!("--chroma {o:?}: expected median, mode or expectation"),
    };
    let mut options = ColorizeOptions::for_config(&config);
    options.reconstruct =
        ReconstructOptions { chroma, chromatic_fading: !a.no_fading, ..ReconstructOptions::default() };
    if let Some(s) = a.short_side {
        options.short_side = s;
        options.max_side = 2 * s;
    }
    if let Some(m) = a.max_side {
        options.max_side = m;
    }
    if options.short_side == 0 || options.max_side == 0 {
        bail!("--short-side and --max-side must be positive");
    }
    let colorizer = Colorizer::load(&a.checkpoint, config, device, options)?;
    let input_is_dir = a.input.is_dir();
    let files = if input_is_dir {
        let src = ImageSource::open(&a.input)?;
        for (d, why) in &src.skipped_dirs {
            eprintln!("skipped folder {}: {why}", d.display());
        }
        src.files
    } else {
        vec![a.input.clone()]
    };
    if a.output.is_none() && !a.eval {
        bail!("give --out FILE|DIR (or --eval)");
    }
    let targets = match &a.output {
        Some(out) => plan_outputs(&files, &a.input, out, input_is_dir)?,
        None => vec![],
    };
    if let (Some(out), true) = (&a.output, input_is_dir) {
        std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    }
    let limits = DecodeLimits { min_side: 1, ..DecodeLimits::default() };
    let pb = progress::bar(files.len() as u64, "colorize");
    let (mut n, mut skipped) = (0usize, 0usize);
    let (mut psnr, mut rmse, mut psnr_g, mut rmse_g) = (0.0, 0.0, 0.0, 0.0);
    for (k, f) in files.iter().enumerate() {
        pb.inc(1);
        let img: RgbImage8 = match decode_file(f, &limits) {
            Ok(i) => i,
            Err(e) => {
                progress::note(&pb, &format!("skipped {}: {e}", f.display()));
                skipped += 1;
                continue;
            }
        };
        let out = colorizer.colorize(&img);
        n += 1;
        if a.eval {
            let (p, r) = psnr_rmse(&out.rgb, &img.data);
            let (pg, rg) = psnr_rmse(&gray_rgb(&img), &img.data);
            psnr += p;
            rmse += r;
            psnr_g += pg;
            rmse_g += rg;
        }
        let Some(target) = targets.get(k).cloned() else { continue };
        if let Some(dir) = target.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let (w, h) = (out.width, out.height);
        if a.side_by_side {
            let colour_input = img.mean_chroma() > 0.0;
            let panels = if colour_input { 3 } else { 2 };
            let mut canvas = RgbImage::new((w * panels) as u32, h as u32);
            image::imageops::replace(&mut canvas, &to_image(w, h, gray_rgb(&img)), 0, 0);
            image::imageops::replace(&mut canvas, &to_image(w, h, out.rgb.clone()), w as i64, 0);
            if colour_input {
                image::imageops::replace(&mut canvas, &to_image(w, h, img.data.clone()), 2 * w as i64, 0);
            }
            canvas.save(&target).with_context(|| format!("writing {}", target.display()))?;
        } else {
            to_image(w, h, out.rgb.clone())
                .save(&target)
                .with_context(|| format!("writing {}", target.display()))?;
        }
        if a.uncertainty {
            let ent: Vec<u8> =
                out.hue_entropy.iter().map(|&e| (e.clamp(0.0, 1.0) * 255.0).round() as u8).collect();
            let p = target.with_file_name(format!(
                "{}.hue-entropy.png",
                target.file_stem().map(|s| s.to_string_lossy()).unwrap_or_default()
            ));
            image::GrayImage::from_raw(w as u32, h as u32, ent)
                .expect("buffer matches size")
                .save(&p)
                .with_context(|| format!("writing {}", p.display()))?;
        }
    }
    pb.finish_and_clear();
    if a.eval {
        let k = n.max(1) as f64;
        let res = serde_json::json!({
            "images": n, "skipped": skipped,
            "psnr": psnr / k, "rmse": rmse / k, "psnr_gray": psnr_g / k, "rmse_gray": rmse_g / k,
        });
        if a.json {
            println!("{res}");
        } else {
            println!(
                "{n} images: PSNR {:.2} dB (gray {:.2} dB), RMSE {:.2} (gray {:.2}) in 8-bit units",
                psnr / k,
                psnr_g / k,
                rmse / k,
                rmse_g / k
            );
        }
    } else {
        eprintln!("colorized {n} image(s), {skipped} skipped");
    }
    if n == 0 {
        bail!("no image could be colorized ({skipped} skipped, reasons above)");
    }
    Ok(())
}

/// `paths` with every repeated one after the first given a `-2`, `-3`, ... suffix before its
/// extension (none equal to another path of the list), e.g. `a.webp.png` from both `a.webp` (which
/// clashed with `a.jpg`) and `a.webp.jpg`.
fn unique_names(paths: Vec<PathBuf>) -> Vec<PathBuf> {
    let mut taken: std::collections::HashSet<PathBuf> = std::collections::HashSet::new();
    let all: std::collections::HashSet<PathBuf> = paths.iter().cloned().collect();
    let mut out = Vec::with_capacity(paths.len());
    for p in paths {
        let mut q = p.clone();
        let mut k = 2;
        while taken.contains(&q) {
            let stem = p.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            q = p.with_file_name(format!("{stem}-{k}.png"));
            if all.contains(&q) {
                q = p.clone(); // keep looking: another input's own name
            }
            k += 1;
        }
        taken.insert(q.clone());
        out.push(q);
    }
    out
}

/// The output file of every input: `OUT/<relative path>.png` for a folder (`<name>.<ext>.png`
/// where two inputs would share a name, e.g. `a.jpg` and `a.png`), `OUT` for one file. An output
/// that would overwrite an input is refused before anything is written.
fn plan_outputs(
    files: &[PathBuf],
    input: &Path,
    out: &Path,
    input_is_dir: bool,
) -> anyhow::Result<Vec<PathBuf>> {
    let targets: Vec<PathBuf> = if input_is_dir {
        let rel: Vec<&Path> = files.iter().map(|f| f.strip_prefix(input).unwrap_or(f)).collect();
        let plain: Vec<PathBuf> = rel.iter().map(|r| out.join(r).with_extension("png")).collect();
        let mut count = std::collections::HashMap::new();
        for t in &plain {
            *count.entry(t.clone()).or_insert(0usize) += 1;
        }
        let named: Vec<PathBuf> = plain
            .iter()
            .zip(&rel)
            .map(|(t, r)| {
                if count[t] > 1 {
                    let mut name = out.join(r).into_os_string();
                    name.push(".png");
                    PathBuf::from(name)
                } else {
                    t.clone()
                }
            })
            .collect();
        unique_names(named)
    } else {
        vec![out.to_owned()]
    };
    let absolute = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_owned());
    if input_is_dir {
        let (i, o) = (std::fs::canonicalize(input).unwrap_or_else(|_| absolute(input)), absolute(out));
        let o = std::fs::canonicalize(&o).unwrap_or(o);
        if o.starts_with(&i) {
            bail!(
                "{}: the output folder is inside the input folder (outputs could overwrite or mix with the inputs); choose another --out",
                out.display()
            );
        }
    }
    let inputs: std::collections::HashSet<PathBuf> =
        files.iter().map(|f| std::fs::canonicalize(f).unwrap_or_else(|_| absolute(f))).collect();
    for t in &targets {
        let t_abs = match (t.parent().and_then(|p| std::fs::canonicalize(p).ok()), t.file_name()) {
            (Some(dir), Some(name)) => dir.join(name),
            _ => absolute(t),
        };
        if inputs.contains(&t_abs) {
            bail!("{}: the output would overwrite an input image; choose another --out", t.display());
        }
    }
    Ok(targets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_input_gets_its_own_output() {
        let (input, out) = (Path::new("/in"), Path::new("/out"));
        let names = ["a.jpg", "a.webp", "a.webp.jpg", "b.png", "c/a.jpg"];
        let files: Vec<PathBuf> = names.iter().map(|n| input.join(n)).collect();
        let t = plan_outputs(&files, input, out, true).unwrap();
        let got: Vec<String> = t.iter().map(|p| p.strip_prefix(out).unwrap().display().to_string()).collect();
        // a.jpg and a.webp clash on a.png: both keep their extension; a.webp.jpg's own name,
        // a.webp.png, is then taken by a.webp and it gets a suffix.
        assert_eq!(got, ["a.jpg.png", "a.webp.png", "a.webp-2.png", "b.png", "c/a.png"]);
    }
}
