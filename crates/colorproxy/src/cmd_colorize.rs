//! `colorproxy colorize`: colour images with a pretrained network, and `--eval` how well.

use anyhow::{bail, Context};
use colorproxy_color::reconstruct::{ChromaEstimate, ReconstructOptions};
use colorproxy_data::{decode_file, DecodeLimits, ImageSource, RgbImage8};
use colorproxy_nn::colorize::{gray_rgb, psnr_rmse, ColorizeOptions, Colorizer};
use colorproxy_nn::{parse_device, PretrainConfig};
use image::RgbImage;

use crate::cli::ColorizeArgs;
use crate::progress;

fn to_image(w: usize, h: usize, data: Vec<u8>) -> RgbImage {
    RgbImage::from_raw(w as u32, h as u32, data).expect("buffer matches size")
}

pub fn run(a: ColorizeArgs) -> anyhow::Result<()> {
    let config = PretrainConfig::of_checkpoint(&a.checkpoint, a.config.as_deref())?;
    let device = parse_device(a.device.as_deref())?;
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
    let files = if input_is_dir { ImageSource::open(&a.input)?.files } else { vec![a.input.clone()] };
    if a.output.is_none() && !a.eval {
        bail!("give --output FILE|DIR (or --eval)");
    }
    if let Some(out) = &a.output {
        if input_is_dir {
            std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
        }
    }
    let limits = DecodeLimits { min_side: 1, ..DecodeLimits::default() };
    let pb = progress::bar(files.len() as u64, "colorize");
    let (mut n, mut skipped) = (0usize, 0usize);
    let (mut psnr, mut rmse, mut psnr_g, mut rmse_g) = (0.0, 0.0, 0.0, 0.0);
    for f in &files {
        pb.inc(1);
        let img: RgbImage8 = match decode_file(f, &limits) {
            Ok(i) => i,
            Err(e) => {
                pb.println(format!("skipped {}: {e}", f.display()));
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
        let Some(out_path) = &a.output else { continue };
        let target = if input_is_dir {
            let rel = f.strip_prefix(&a.input).unwrap_or(f);
            out_path.join(rel).with_extension("png")
        } else {
            out_path.clone()
        };
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
    Ok(())
}
