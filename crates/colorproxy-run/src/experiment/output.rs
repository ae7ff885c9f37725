//! What an experiment writes from its finished runs: `results.csv` (one row per run and metric),
//! `tables.md` and `report.html` (mean, sample standard deviation and Student-t 95% interval over
//! seeds, every seed listed) and one plot per snapshot sweep (`sweep-<name>.png`: downstream
//! score against pretraining iterations above the pretraining loss with its learning-rate drops).
use std::path::Path;

use crate::Context;
use colorproxy_data::spread::spread;
use colorproxy_nn::run_dir::RunPaths;

use super::plan::Plan;
use super::recipe::Recipe;
use super::runner::{status, Status, DONE};
use crate::report::html::{Cell, Page};
use crate::report::plot::{write_charts, LineChart, Series};

const COLOURS: [(u8, u8, u8); 6] =
    [(31, 119, 180), (214, 39, 40), (44, 160, 44), (255, 127, 14), (148, 103, 189), (140, 86, 75)];

fn done(dir: &Path) -> Option<serde_json::Value> {
    serde_json::from_str(&std::fs::read_to_string(dir.join(DONE)).ok()?).ok()
}

/// The metric's name as people write it.
fn metric_name(m: &str) -> &str {
    match m {
        "miou" => "mIoU",
        "map" => "mAP",
        "top1" => "top-1",
        other => other,
    }
}

/// The scores over seeds of fine-tuning `name` from `init`: (seed, value, reference value).
fn scores(plan: &Plan, name: &str, init: &str) -> Vec<(u64, f64, Option<f64>)> {
    scores_of(plan, name, init, None)
}

/// [`scores`] of the main metric (`None`) or of an extra figure of the results (e.g. `top5`).
fn scores_of(plan: &Plan, name: &str, init: &str, metric: Option<&str>) -> Vec<(u64, f64, Option<f64>)> {
    plan.finetune
        .iter()
        .filter(|f| f.name == name && f.init == init)
        .filter_map(|f| {
            let d = done(&f.dir)?;
            let v = match metric {
                None => d["value"].as_f64()?,
                Some(m) => d["extra"][m].as_f64()?,
            };
            Some((f.seed, v, d["reference"][1].as_f64()))
        })
        .collect()
}

/// `mean ± std [lo, hi] (each seed)`; `planned` seeds that have not run are said.
fn cell(v: &[(u64, f64, Option<f64>)], planned: usize) -> TableCell {
    if v.is_empty() {
        return ("not run".into(), None);
    }
    let x: Vec<f64> = v.iter().map(|s| s.1).collect();
    let each = v.iter().map(|s| format!("{:.3}", s.1)).collect::<Vec<_>>().join(" / ");
    let s = spread(&x);
    let missing = if v.len() < planned { format!(", {} of {planned} seeds", v.len()) } else { String::new() };
    if s.n == 1 {
        return (format!("{:.3}{missing}", s.mean), Some(s.mean));
    }
    (
        format!(
            "{:.3} ± {:.3} [{:.3}, {:.3}] ({each}{missing})",
            s.mean,
            s.std,
            s.mean - s.ci95,
            s.mean + s.ci95
        ),
        Some(s.mean),
    )
}

/// The paired comparison of `a` with `b` over the seeds both have: per seed `a - b`, their mean ±
/// sample standard deviation and 95% interval (Student's t with n - 1 degrees of freedom; the
/// paired t interval), and whether the interval lies above or below 0.
fn paired_cell(a: &[(u64, f64, Option<f64>)], b: &[(u64, f64, Option<f64>)]) -> TableCell {
    let d: Vec<f64> = a
        .iter()
        .filter_map(|(s, va, _)| b.iter().find(|(t, _, _)| t == s).map(|(_, vb, _)| va - vb))
        .collect();
    if d.is_empty() {
        return ("-".into(), None);
    }
    let each = d.iter().map(|x| format!("{x:+.3}")).collect::<Vec<_>>().join(" / ");
    let s = spread(&d);
    if s.n == 1 {
        return (format!("{:+.3} (one seed)", s.mean), Some(s.mean));
    }
    let (lo, hi) = (s.mean - s.ci95, s.mean + s.ci95);
    let verdict = if lo > 0.0 {
        "above 0"
    } else if hi < 0.0 {
        "below 0"
    } else {
        "includes 0"
    };
    (format!("{:+.3} ± {:.3} [{lo:+.3}, {hi:+.3}] {verdict} ({each})", s.mean, s.std), Some(s.mean))
}

/// A row label: `random`, or the pretraining's label (with `, iteration N` for a snapshot).
fn init_label(r: &Recipe, init: &str) -> String {
    let (base, at) = init.split_once('@').map(|(b, a)| (b, Some(a))).unwrap_or((init, None));
    let name =
        r.pretrain.iter().find(|p| p.name == base).and_then(|p| p.label.clone()).unwrap_or(base.to_string());
    match at {
        Some(a) => format!("{name}, iteration {a}"),
        None => name,
    }
}

fn column_label(r: &Recipe, name: &str) -> String {
    r.finetune.iter().find(|f| f.name == name).and_then(|f| f.label.clone()).unwrap_or(name.to_string())
}

/// The metric of a fine-tuning's finished runs.
fn metric_of(plan: &Plan, name: &str) -> String {
    plan.finetune
        .iter()
        .filter(|f| f.name == name)
        .find_map(|f| done(&f.dir).and_then(|d| d["metric"].as_str().map(String::from)))
        .unwrap_or_default()
}

/// A table cell: its text and the mean it shows.
type TableCell = (String, Option<f64>);

struct Table {
    title: String,
    header: Vec<String>,
    rows: Vec<(String, Vec<TableCell>)>,
    note: String,
}

impl Table {
    fn markdown(&self) -> String {
        let mut md = format!(
            "## {}\n\n| {} |\n|{}\n",
            self.title,
            self.header.join(" | "),
            "---|".repeat(self.header.len())
        );
        for (label, cells) in &self.rows {
            md.push_str(&format!(
                "| {label} | {} |\n",
                cells.iter().map(|c| c.0.as_str()).collect::<Vec<_>>().join(" | ")
            ));
        }
        if !self.note.is_empty() {
            md.push_str(&format!("\n{}\n", self.note));
        }
        md
    }

    fn html(&self, page: &mut Page) {
        page.h2(&self.title);
        let rows = self
            .rows
            .iter()
            .map(|(label, cells)| {
                let mut row = vec![Cell::from(label.as_str())];
                row.extend(cells.iter().map(|c| Cell::from(c.0.as_str())));
                row
            })
            .collect();
        let header: Vec<&str> = self.header.iter().map(String::as_str).collect();
        page.table(&header, rows);
        if !self.note.is_empty() {
            page.p(&self.note);
        }
    }
}

fn seeds_of(r: &Recipe, name: &str) -> usize {
    r.finetune.iter().find(|f| f.name == name).and_then(|f| f.seeds.as_ref()).unwrap_or(&r.seeds).len()
}

/// The paper's value as published (`-` where it has none).
fn paper_value(v: f64) -> String {
    if v.is_nan() {
        "-".into()
    } else {
        format!("{v:.1}")
    }
}

/// A paper-shaped table: each cell the user's result (mean over seeds, as in other tables) beside
/// the paper's published value.
fn paper_table(r: &Recipe, plan: &Plan, t: &super::recipe::TableSpec) -> Table {
    let mut header = vec!["".to_string()];
    header.extend(t.columns.iter().cloned());
    let mut body = Vec::new();
    for row in &t.row {
        let cells = row
            .runs()
            .iter()
            .zip(row.metrics())
            .enumerate()
            .map(|(k, (run, metric))| {
                let ours = match run {
                    Some((f, i)) => cell(&scores_of(plan, f, i, metric), seeds_of(r, f)),
                    None => ("-".into(), None),
                };
                match row.paper.get(k) {
                    Some(&paper) => (format!("{}; paper {}", ours.0, paper_value(paper)), ours.1),
                    None => ours,
                }
            })
            .collect();
        body.push((row.label.clone(), cells));
    }
    let notes: Vec<String> =
        t.row.iter().filter(|r| !r.note.is_empty()).map(|r| format!("{}: {}", r.label, r.note)).collect();
    let with_paper = t.row.iter().any(|r| !r.paper.is_empty());
    let note = format!(
        "Each cell: the runs' mean ± sample standard deviation [95% interval, Student's t] over their seeds \
         (each seed in brackets){}. {} {}",
        if with_paper { ", then the paper's published value (in %)" } else { "" },
        notes.join(" "),
        t.note
    );
    Table { title: t.title.clone(), header, rows: body, note: note.trim().to_string() }
}

fn tables(r: &Recipe, plan: &Plan) -> Vec<Table> {
    let mut out = Vec::new();
    for t in &r.table {
        if !t.row.is_empty() {
            out.push(paper_table(r, plan, t));
            continue;
        }
        let rows: Vec<String> = t.rows.clone().unwrap_or_else(|| {
            let mut v: Vec<String> = Vec::new();
            for c in &t.columns {
                for i in &r.finetune.iter().find(|f| &f.name == c).map(|f| f.init.clone()).unwrap_or_default()
                {
                    if !v.contains(i) {
                        v.push(i.clone());
                    }
                }
            }
            v
        });
        let mut header = vec!["initialisation".to_string()];
        header.extend(
            t.columns
                .iter()
                .map(|c| format!("{} ({})", column_label(r, c), metric_name(&metric_of(plan, c)))),
        );
        let mut body = Vec::new();
        for init in &rows {
            let cells = t.columns.iter().map(|c| cell(&scores(plan, c, init), seeds_of(r, c))).collect();
            body.push((init_label(r, init), cells));
        }
        let refs: Vec<TableCell> = t
            .columns
            .iter()
            .map(|c| {
                let v: Vec<f64> = rows.iter().flat_map(|i| scores(plan, c, i)).filter_map(|s| s.2).collect();
                if v.is_empty() {
                    ("-".into(), None)
                } else {
                    let m = v.iter().sum::<f64>() / v.len() as f64;
                    (format!("{m:.3}"), Some(m))
                }
            })
            .collect();
        body.push(("reference (learned nothing: majority class / constant scorer)".into(), refs));
        let paired = rows.iter().any(|i| i == "random") && rows.len() > 1;
        if paired {
            for init in rows.iter().filter(|i| *i != "random") {
                let cells = t
                    .columns
                    .iter()
                    .map(|c| paired_cell(&scores(plan, c, init), &scores(plan, c, "random")))
                    .collect();
                body.push((format!("{} − random (paired, same seed)", init_label(r, init)), cells));
            }
        }
        let seeds = r.seeds.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(", ");
        let note = format!(
            "Mean ± sample standard deviation [95% interval, Student's t] over seeds {seeds} (each seed in brackets).{} {}",
            if paired {
                " Paired rows: per seed the difference from random init fine-tuned with the same seed, \
                 its mean ± standard deviation and 95% paired t interval."
            } else {
                ""
            },
            t.note
        );
        out.push(Table { title: t.title.clone(), header, rows: body, note: note.trim().to_string() });
    }
    for s in &r.sweep {
        let mut body = Vec::new();
        let n = seeds_of(r, &s.finetune);
        for p in &s.pretrain {
            for a in &s.at {
                let init = format!("{p}@{a}");
                let mut c = cell(&scores(plan, &s.finetune, &init), n);
                if let Some(v) = s.paper.get(&init) {
                    c.0 = format!("{}; paper {}", c.0, paper_value(*v));
                }
                body.push((init_label(r, &init), vec![c]));
            }
        }
        let random = scores(plan, &s.finetune, "random");
        if !random.is_empty() || s.paper.contains_key("random") {
            let mut c = cell(&random, n);
            if let Some(v) = s.paper.get("random") {
                c.0 = format!("{}; paper {}", c.0, paper_value(*v));
            }
            body.push(("random init".into(), vec![c]));
        }
        let metric = metric_name(&metric_of(plan, &s.finetune)).to_string();
        out.push(Table {
            title: s.title.clone(),
            header: vec![
                "pretraining snapshot".into(),
                format!("{} ({metric})", column_label(r, &s.finetune)),
            ],
            rows: body,
            note: format!("Plot: sweep-{}.png. {}", s.name, s.note).trim().to_string(),
        });
    }
    out
}

/// The plot of a sweep: score against pretraining iterations (mean over seeds; random init as
/// the reference line) above the pretraining loss with its learning-rate drops.
fn sweep_plot(r: &Recipe, plan: &Plan, s: &super::recipe::SweepSpec, out: &Path) -> crate::Result<()> {
    let metric = metric_name(&metric_of(plan, &s.finetune)).to_string();
    let mut score_series = Vec::new();
    let mut loss_series = Vec::new();
    let mut markers = Vec::new();
    for (k, p) in s.pretrain.iter().enumerate() {
        let c = COLOURS[k % COLOURS.len()];
        let pts: Vec<(f64, f64)> =
            s.at.iter()
                .filter_map(|a| {
                    let v: Vec<f64> =
                        scores(plan, &s.finetune, &format!("{p}@{a}")).iter().map(|x| x.1).collect();
                    (!v.is_empty()).then(|| (*a as f64, spread(&v).mean))
                })
                .collect();
        let label = init_label(r, p);
        score_series.push(Series::new(&label, c, pts));
        if let Some(pp) = plan.pretrain.iter().find(|x| &x.name == p) {
            if let Ok(m) = colorproxy_nn::pretrain::read_metrics(&RunPaths::new(&pp.dir).metrics()) {
                loss_series.push(Series::new(
                    &label,
                    c,
                    m.iter().map(|x| (x.iteration as f64, x.loss)).collect(),
                ));
                if markers.is_empty() {
                    markers =
                        m.windows(2).filter(|w| w[1].lr < w[0].lr).map(|w| w[0].iteration as f64).collect();
                }
            }
        }
    }
    let random: Vec<f64> = scores(plan, &s.finetune, "random").iter().map(|x| x.1).collect();
    let charts = [
        LineChart {
            title: format!("{metric} after fine-tuning from each snapshot (mean over seeds)"),
            x_label: "pretraining iterations".into(),
            y_label: metric.clone(),
            series: score_series,
            markers: markers.clone(),
            marker_label: "learning rate x0.1".into(),
            reference: (!random.is_empty()).then(|| (spread(&random).mean, "random init".to_string())),
        },
        LineChart {
            title: "colorization pretraining loss".into(),
            x_label: "pretraining iterations".into(),
            y_label: "loss".into(),
            series: loss_series,
            markers,
            marker_label: "learning rate x0.1".into(),
            reference: None,
        },
    ];
    write_charts(&charts, 760, 340, &out.join(format!("sweep-{}.png", s.name)))
}

/// Writes results.csv, tables.md, report.html and the sweep plots; returns tables.md.
pub fn write(r: &Recipe, plan: &Plan, out: &Path, seconds: f64) -> crate::Result<String> {
    let mut csv = String::from("run,kind,name,init,seed,metric,value\n");
    let mut run_seconds = 0.0;
    for p in &plan.pretrain {
        if let Some(d) = done(&p.dir) {
            let run = p.dir.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            run_seconds += d["seconds"].as_f64().unwrap_or(0.0);
            for m in ["final_loss", "iterations", "value", "seconds"] {
                if let Some(v) = d[m].as_f64() {
                    let m = if m == "value" { d["metric"].as_str().unwrap_or("value") } else { m };
                    let kind = format!("{:?}", p.kind).to_lowercase();
                    let seed = r.pretrain.iter().find(|s| s.name == p.name).map(|s| s.seed).unwrap_or(0);
                    csv.push_str(&format!("{run},pretrain-{kind},{},,{seed},{m},{v}\n", p.name));
                }
            }
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    for f in plan.finetune.iter().filter(|f| seen.insert(f.dir.clone())) {
        if let Some(d) = done(&f.dir) {
            let run = f.dir.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            run_seconds += d["seconds"].as_f64().unwrap_or(0.0);
            let mut rows = vec![(d["metric"].as_str().unwrap_or("value").to_string(), d["value"].as_f64())];
            if let Some(name) = d["reference"][0].as_str() {
                rows.push((format!("reference {name}"), d["reference"][1].as_f64()));
            }
            rows.push(("iterations".into(), d["iterations"].as_f64()));
            rows.push(("seconds".into(), d["seconds"].as_f64()));
            for (m, v) in rows {
                if let Some(v) = v {
                    let task = format!("{:?}", f.task).to_lowercase();
                    csv.push_str(&format!(
                        "{run},finetune-{task},{},{},{},{m},{v}\n",
                        f.name, f.init, f.seed
                    ));
                }
            }
        }
    }
    std::fs::write(out.join("results.csv"), csv).context("writing results.csv")?;
    let tables = tables(r, plan);
    let runs = plan.pretrain.len() + plan.finetune.len();
    let finished = plan
        .pretrain
        .iter()
        .map(|p| &p.dir)
        .chain(plan.finetune.iter().map(|f| &f.dir))
        .filter(|d| done(d).is_some())
        .count();
    let intro = format!(
        "{} {finished} of {runs} runs finished; their wall time {:.0} s in all (this invocation {:.0} s). Recipe: recipe.toml; every run's config, curves and report under runs/.",
        r.description.trim(),
        run_seconds,
        seconds
    );
    let mut md = format!("# {}\n\n{}\n\n", r.title, intro.trim());
    let mut page = Page::new(&r.title);
    page.p(intro.trim());
    for t in &tables {
        md.push_str(&t.markdown());
        md.push('\n');
        t.html(&mut page);
    }
    for s in &r.sweep {
        sweep_plot(r, plan, s, out)?;
        md.push_str(&format!("![{}](sweep-{}.png)\n\n", s.title, s.name));
        page.h2(&s.title);
        page.img(&format!("sweep-{}.png", s.name), &s.title);
    }
    page.h2("Runs");
    let rows = plan
        .pretrain
        .iter()
        .map(|p| (format!("pretrain {} ({:?})", p.name, p.kind).to_lowercase(), &p.dir))
        .chain(
            plan.finetune
                .iter()
                .map(|f| (format!("finetune {} from {}, seed {}", f.name, f.init, f.seed), &f.dir)),
        )
        .map(|(what, dir)| {
            let name = dir.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            let state = match status(dir) {
                Status::Done => "done".to_string(),
                Status::Partial(it) => format!("interrupted at {it}"),
                Status::Todo => "not run".to_string(),
            };
            vec![Cell::from(what), Cell::from(format!("runs/{name}")), Cell::from(state)]
        })
        .collect();
    page.table(&["run", "folder", "state"], rows);
    std::fs::write(out.join("tables.md"), &md).context("writing tables.md")?;
    page.write(&out.join("report.html"))?;
    Ok(md)
}

#[cfg(test)]
mod tests {
    use super::paired_cell;

    fn seeds(v: &[f64]) -> Vec<(u64, f64, Option<f64>)> {
        v.iter().enumerate().map(|(i, &x)| (i as u64, x, None)).collect()
    }

    #[test]
    fn paired_interval_by_hand() {
        // Differences 0.1, 0.2, 0.3: mean 0.2, s = 0.1, t(0.975, 2) = 4.303, half-width
        // 4.303 x 0.1 / sqrt(3) = 0.2484: [-0.048, +0.448].
        let (text, mean) = paired_cell(&seeds(&[0.6, 0.7, 0.8]), &seeds(&[0.5, 0.5, 0.5]));
        assert_eq!(text, "+0.200 ± 0.100 [-0.048, +0.448] includes 0 (+0.100 / +0.200 / +0.300)");
        assert!((mean.unwrap() - 0.2).abs() < 1e-12);
        // Five seeds, differences 0.05 ... 0.09: s = 0.01581, t(0.975, 4) = 2.776, half-width
        // 2.776 x 0.01581 / sqrt(5) = 0.0196: [0.050, 0.090].
        let a = seeds(&[0.55, 0.56, 0.57, 0.58, 0.59]);
        let (text, _) = paired_cell(&a, &seeds(&[0.5; 5]));
        assert!(text.starts_with("+0.070 ± 0.016 [+0.050, +0.090] above 0"), "{text}");
        // Only the seeds both have are paired; the sign follows a - b.
        let (text, _) = paired_cell(&seeds(&[0.4, 0.3]), &seeds(&[0.5, 0.5, 0.5]));
        assert!(text.contains("below 0") || text.contains("includes 0"), "{text}");
        assert!(text.ends_with("(-0.100 / -0.200)"), "{text}");
        assert_eq!(paired_cell(&[], &seeds(&[0.5])).0, "-");
    }
}
