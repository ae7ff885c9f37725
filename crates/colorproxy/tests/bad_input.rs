//! Hostile but realistic input, through the real binary with its output redirected (no terminal):
//! every case is skipped and named, or a clear error naming the file; nothing panics or aborts.
//! The table of cases in docs/reference.md ("Bad input") lists the same cases and outcomes.
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::{Command, Output};

use colorproxy_nn::PretrainConfig;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_colorproxy"));
    c.env("CI", "1").env("OMP_NUM_THREADS", "1");
    c
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn png(w: u32, h: u32, seed: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x * 3 + seed) as u8, (y * 2 + seed * 7) as u8, ((x ^ y) + seed) as u8])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

fn jpeg(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x * 7) as u8, (y * 5) as u8, ((x * y) % 251) as u8])
    });
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90).encode_image(&img).unwrap();
    out
}

/// 200 bytes of xorshift garbage in the middle of the JPEG's entropy-coded data (a seed the
/// strict decoder detects; see the data crate's strict_decode test).
fn garbled_jpeg() -> Vec<u8> {
    let mut j = jpeg(160, 120);
    let sos = j.windows(2).position(|w| w == [0xFF, 0xDA]).unwrap();
    let s = sos + 2 + u16::from_be_bytes([j[sos + 2], j[sos + 3]]) as usize;
    let mid = s + (j.len() - s) / 3;
    let mut x = 1u64.wrapping_mul(0x9E3779B97F4A7C15) | 1;
    for b in j[mid..mid + 200].iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    j
}

/// A PNG whose IDAT data has a flipped byte (CRC mismatch).
fn garbled_png() -> Vec<u8> {
    let mut p = png(120, 100, 3);
    let idat = p.windows(4).position(|w| w == b"IDAT").unwrap();
    p[idat + 40] ^= 0x55;
    p
}

/// A 16-bit RGB PNG and a CMYK JPEG: unusual but valid.
fn png16() -> Vec<u8> {
    let img = image::ImageBuffer::<image::Rgb<u16>, Vec<u16>>::from_fn(100, 90, |x, y| {
        image::Rgb([(x * 600) as u16, (y * 700) as u16, 30000])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

fn cmyk_jpeg() -> Vec<u8> {
    let mut out = Vec::new();
    let px: Vec<u8> = (0..110 * 90 * 4).map(|i| (i * 13 % 256) as u8).collect();
    jpeg_encoder::Encoder::new(&mut out, 90).encode(&px, 110, 90, jpeg_encoder::ColorType::Cmyk).unwrap();
    out
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut c = 0xffff_ffffu32;
    for &b in bytes {
        c ^= b as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 { 0xedb8_8320 ^ (c >> 1) } else { c >> 1 };
        }
    }
    !c
}

/// A PNG header claiming 100000 x 100000 pixels (a decompression bomb), with valid CRCs.
fn bomb_png() -> Vec<u8> {
    let mut p = png(8, 8, 1);
    p[16..20].copy_from_slice(&100_000u32.to_be_bytes());
    p[20..24].copy_from_slice(&100_000u32.to_be_bytes());
    let crc = crc32(&p[12..29]);
    p[29..33].copy_from_slice(&crc.to_be_bytes());
    p
}

#[test]
fn bad_images_are_skipped_and_named_when_output_is_redirected() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("images");
    std::fs::create_dir_all(d.join("sub")).unwrap();
    for i in 0..4 {
        std::fs::write(d.join(format!("good{i}.png")), png(120, 100, i)).unwrap();
    }
    let j = jpeg(160, 120);
    std::fs::write(d.join("truncated.jpg"), &j[..j.len() * 6 / 10]).unwrap();
    std::fs::write(d.join("garbled.jpg"), garbled_jpeg()).unwrap();
    let p = png(120, 100, 9);
    std::fs::write(d.join("truncated.png"), &p[..p.len() / 2]).unwrap();
    std::fs::write(d.join("garbled.png"), garbled_png()).unwrap();
    std::fs::write(d.join("empty.jpg"), b"").unwrap();
    std::fs::write(d.join("text.jpg"), b"hello, not an image").unwrap();
    std::fs::write(d.join("bomb.png"), bomb_png()).unwrap();
    std::fs::write(d.join("sub/cmyk.jpg"), cmyk_jpeg()).unwrap();
    std::fs::write(d.join("sub/deep16.png"), png16()).unwrap();
    std::fs::write(d.join(std::ffi::OsStr::from_bytes(b"caf\xe9.png")), png(120, 100, 5)).unwrap();
    std::os::unix::fs::symlink(&d, d.join("sub/loop")).unwrap();
    let bad =
        ["truncated.jpg", "garbled.jpg", "truncated.png", "garbled.png", "empty.jpg", "text.jpg", "bomb.png"];

    // data check: the usable images counted once (the symlink cycle is not followed), every bad
    // one listed with its reason.
    let o = bin().args(["data", "check", "--json"]).arg(&d).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["decoded"], 7, "{v}");
    assert_eq!(v["skipped"], bad.len(), "{v}");
    let listed = v["skipped_by_reason"].to_string();
    for b in bad {
        assert!(listed.contains(b), "{b} not listed: {listed}");
    }
    for (name, kind) in [
        ("truncated.jpg", "corrupt"),
        ("garbled.jpg", "corrupt"),
        ("garbled.png", "corrupt"),
        ("bomb.png", "too-large"),
    ] {
        let files = v["skipped_by_reason"][kind].to_string();
        assert!(files.contains(name), "{name} should be {kind}: {listed}");
    }

    // pretrain with output redirected: every skipped file named on stderr with its reason, and
    // the cycle reported.
    let mut cfg = PretrainConfig::preset("cpu-small").unwrap();
    cfg.iterations = 6;
    cfg.model.width = 1.0 / 16.0;
    cfg.model.fc_channels = 16;
    cfg.model.head_hidden = 16;
    cfg.data.batch_size = 8;
    let cfg_path = tmp.path().join("cfg.toml");
    std::fs::write(&cfg_path, cfg.to_toml()).unwrap();
    let o = bin()
        .args(["pretrain", "--config"])
        .arg(&cfg_path)
        .arg("--data")
        .arg(&d)
        .arg("--out")
        .arg(tmp.path().join("run"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("skipped folder") && err.contains("loop"), "{err}");
    let named = bad.iter().filter(|b| err.contains(&format!("{b}: "))).count();
    assert!(named >= 4, "only {named} bad files named in:\n{err}");
    for line in err.lines().filter(|l| l.starts_with("skipped ") && !l.starts_with("skipped folder")) {
        assert!(bad.iter().any(|b| line.contains(b)), "a good file was skipped: {line}");
    }

    // colorize: names collide (a.jpg, a.png), an output that would overwrite an input is refused,
    // a bad file is named and a run that produced nothing exits non-zero.
    let run = tmp.path().join("run");
    let ck = run.join("checkpoints/last.safetensors");
    let c = tmp.path().join("colorize");
    std::fs::create_dir_all(&c).unwrap();
    std::fs::write(c.join("a.jpg"), jpeg(80, 64)).unwrap();
    std::fs::write(c.join("a.png"), png(80, 64, 2)).unwrap();
    let out = tmp.path().join("colorized");
    let o = colorize(&ck, &c, &out);
    assert!(o.status.success(), "{}", text(&o));
    assert!(out.join("a.jpg.png").is_file() && out.join("a.png.png").is_file(), "{}", text(&o));
    let before = std::fs::read(c.join("a.png")).unwrap();
    let o = colorize(&ck, &c, &c);
    assert!(!o.status.success() && text(&o).contains("inside the input folder"), "{}", text(&o));
    let o = colorize(&ck, c.join("a.png"), c.join("a.png"));
    assert!(!o.status.success() && text(&o).contains("overwrite an input"), "{}", text(&o));
    assert_eq!(std::fs::read(c.join("a.png")).unwrap(), before);
    let o = colorize(&ck, d.join("truncated.jpg"), tmp.path().join("x.png"));
    assert!(!o.status.success() && text(&o).contains("truncated.jpg: corrupt"), "{}", text(&o));

    // A checkpoint with NaN weights is refused by name, not colorized to black.
    let mut t: Vec<(String, tch::Tensor)> = tch::Tensor::read_safetensors(&ck).unwrap();
    t[0].1 = t[0].1.full_like(f64::NAN);
    let nan_run = tmp.path().join("nan/checkpoints");
    std::fs::create_dir_all(&nan_run).unwrap();
    std::fs::copy(run.join("config.toml"), tmp.path().join("nan/config.toml")).unwrap();
    tch::Tensor::write_safetensors(&t, nan_run.join("w.safetensors")).unwrap();
    let o = bin()
        .args(["colorize", "--checkpoint"])
        .arg(nan_run.join("w.safetensors"))
        .arg("--input")
        .arg(c.join("a.png"))
        .arg("--output")
        .arg(tmp.path().join("y.png"))
        .output()
        .unwrap();
    assert!(!o.status.success() && text(&o).contains("NaN"), "{}", text(&o));
}

/// `colorize --checkpoint CK --input IN --output OUT`.
fn colorize(ck: impl AsRef<Path>, input: impl AsRef<Path>, output: impl AsRef<Path>) -> Output {
    let mut c = bin();
    c.args(["colorize", "--checkpoint"]).arg(ck.as_ref()).arg("--input").arg(input.as_ref());
    c.arg("--output").arg(output.as_ref()).output().unwrap()
}

fn expect_error(args: &[&str], paths: &[&Path], needles: &[&str]) {
    let mut c = bin();
    c.args(args).args(paths);
    let o = c.output().unwrap();
    assert!(!o.status.success(), "{args:?} succeeded: {}", text(&o));
    assert_eq!(o.status.code(), Some(1), "{args:?}: {:?} {}", o.status, text(&o));
    for n in needles {
        assert!(text(&o).contains(n), "{args:?}: no {n:?} in {}", text(&o));
    }
}

#[test]
fn bad_configs_and_labels_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::create_dir_all(d.join("images")).unwrap();
    for i in 0..3 {
        std::fs::write(d.join(format!("images/{i}.png")), png(120, 100, i)).unwrap();
    }
    // Configs: empty, negative learning rate, absurd histogram size.
    std::fs::write(d.join("empty.toml"), "").unwrap();
    let mut cfg = PretrainConfig::preset("cpu-small").unwrap();
    cfg.optim.lr = -0.1;
    std::fs::write(d.join("neg.toml"), cfg.to_toml()).unwrap();
    std::fs::write(d.join("bins.toml"), "hue_bins = 100000000\n").unwrap();
    let out = d.join("run");
    expect_error(
        &["pretrain", "--data"],
        &[&d.join("images"), Path::new("--out"), &out, Path::new("--config"), &d.join("empty.toml")],
        &["empty.toml", "empty"],
    );
    expect_error(
        &["pretrain", "--data"],
        &[&d.join("images"), Path::new("--out"), &out, Path::new("--config"), &d.join("neg.toml")],
        &["neg.toml", "lr"],
    );
    assert!(!out.join("config.toml").exists(), "a rejected config must not touch the run folder");
    expect_error(
        &["targets", "--point", "4,4", "--image"],
        &[&d.join("images/0.png"), Path::new("--config"), &d.join("bins.toml")],
        &["bins.toml", "hue_bins"],
    );

    // VOC classification: an annotation that is not XML, an empty class list file.
    let voc = d.join("voc");
    std::fs::create_dir_all(voc.join("ImageSets/Main")).unwrap();
    std::fs::create_dir_all(voc.join("Annotations")).unwrap();
    std::fs::create_dir_all(voc.join("JPEGImages")).unwrap();
    std::fs::write(voc.join("ImageSets/Main/train.txt"), "a\nb\n").unwrap();
    std::fs::write(
        voc.join("Annotations/a.xml"),
        "<annotation><object><name>cat</name></object></annotation>",
    )
    .unwrap();
    std::fs::write(voc.join("Annotations/b.xml"), "<annotation><object><name>dog</name>").unwrap();
    for id in ["a", "b"] {
        std::fs::write(voc.join(format!("JPEGImages/{id}.jpg")), jpeg(100, 80)).unwrap();
    }
    let ft = ["finetune", "cls", "--init", "random", "--data"];
    expect_error(&ft, &[&voc, Path::new("--out"), &d.join("ft")], &["b.xml", "not valid XML"]);
    for c in colorproxy_data::voc::VOC_CLASSES {
        let body = if c == "dog" { String::new() } else { "a -1\nb -1\n".to_string() };
        std::fs::write(voc.join(format!("ImageSets/Main/{c}_train.txt")), body).unwrap();
    }
    expect_error(&ft, &[&voc, Path::new("--out"), &d.join("ft")], &["dog_train.txt", "empty"]);
}
