//! `colorproxy data ...`.
use colorproxy_data::{check_images, DecodeLimits, ImageSource};

use crate::cli::DataCheckArgs;
use colorproxy_run::progress;

pub fn check(a: DataCheckArgs) -> anyhow::Result<()> {
    let src = ImageSource::open(&a.dir)?;
    let limits = DecodeLimits { min_side: a.min_side, ..DecodeLimits::default() };
    let pb = progress::bar(src.len() as u64, "check");
    let rep = check_images(&src, &limits, a.achromatic_threshold, &|| pb.inc(1));
    pb.finish_and_clear();
    if a.json {
        println!("{}", serde_json::to_string_pretty(&rep)?);
        return Ok(());
    }
    println!("{}: {} files, {} decode, {} skipped", a.dir.display(), rep.files, rep.decoded, rep.skipped);
    // Folders not listed (a link back to an ancestor, a folder reached twice): their images are
    // counted once, under the first path.
    for (d, why) in &src.skipped_dirs {
        println!("  skipped folder {}: {why}", d.display());
    }
    for (kind, files) in &rep.skipped_by_reason {
        println!("  skipped ({kind}): {}", files.len());
        for f in files.iter().take(20) {
            println!("    {}: {}", f.file.display(), f.reason);
        }
        if files.len() > 20 {
            println!("    ... and {} more (use --json for all)", files.len() - 20);
        }
    }
    let s = &rep.short_side;
    let l = &rep.long_side;
    println!(
        "  shorter side px: min {} / p25 {} / median {} / p75 {} / max {}",
        s.min, s.p25, s.median, s.p75, s.max
    );
    println!(
        "  longer side px:  min {} / p25 {} / median {} / p75 {} / max {}",
        l.min, l.p25, l.median, l.p75, l.max
    );
    println!(
        "  achromatic (mean chroma < {}): {} ({:.1}%)",
        rep.achromatic_threshold,
        rep.achromatic,
        100.0 * rep.achromatic_share
    );
    Ok(())
}
