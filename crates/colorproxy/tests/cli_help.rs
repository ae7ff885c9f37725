//! The command line as a user meets it: every flag of every subcommand has a help text (read
//! from `--help`, walking the subcommand tree), and the old spellings of renamed flags still parse.
use std::process::Command;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_colorproxy"));
    c.env("CI", "1");
    c
}

fn help(path: &[String]) -> String {
    let o = bin().args(path).arg("--help").output().unwrap();
    assert!(o.status.success(), "{path:?} --help: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap()
}

/// The subcommands listed under `Commands:` of a help text.
fn subcommands(text: &str) -> Vec<String> {
    let mut out = vec![];
    let mut inside = false;
    for l in text.lines() {
        if l.starts_with("Commands:") {
            inside = true;
            continue;
        }
        if inside {
            if l.trim().is_empty() || !l.starts_with("  ") {
                break;
            }
            let name = l.split_whitespace().next().unwrap_or("");
            if name != "help" {
                out.push(name.to_string());
            }
        }
    }
    out
}

/// A help text less clap's bracketed additions (`[default: ..]`, `[possible values: ..]`,
/// `[aliases: ..]`): a default alone is not a help text.
fn described(text: &str) -> bool {
    let mut rest = text.to_string();
    for tag in ["[default: ", "[possible values: ", "[aliases: ", "[env: "] {
        while let Some(i) = rest.find(tag) {
            let end = rest[i..].find(']').map_or(rest.len(), |j| i + j + 1);
            rest.replace_range(i..end, "");
        }
    }
    !rest.trim().is_empty()
}

/// The options of a help text that have no description: neither on their line nor on the
/// following line(s).
fn undocumented(text: &str) -> Vec<String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = vec![];
    for (i, l) in lines.iter().enumerate() {
        let t = l.trim_start();
        // Options (`-x`, `--xyz`), not the `- value: text` lines of possible values.
        if !t.starts_with('-') || t.starts_with("- ") || l.len() == t.len() {
            continue;
        }
        let flag = t.split([' ', ',']).find(|w| w.starts_with("--")).unwrap_or(t).to_string();
        if flag == "--help" || flag == "--version" {
            continue;
        }
        // Same line: the flag, its value, then two or more spaces and the text.
        let rest = t.split_once("  ").map(|(_, r)| r.trim()).unwrap_or("");
        let next = lines.get(i + 1).map(|n| n.trim()).unwrap_or("");
        let next_is_text = !next.is_empty() && (!next.starts_with('-') || next.starts_with("- "));
        if !(described(rest) || (next_is_text && described(next))) {
            out.push(flag);
        }
    }
    out
}

#[test]
fn every_flag_of_every_subcommand_has_a_help_text() {
    let mut stack: Vec<Vec<String>> = vec![vec![]];
    let (mut seen, mut missing) = (0, vec![]);
    while let Some(path) = stack.pop() {
        let text = help(&path);
        seen += 1;
        for f in undocumented(&text) {
            missing.push(format!("{} {f}", path.join(" ")));
        }
        for s in subcommands(&text) {
            let mut p = path.clone();
            p.push(s);
            stack.push(p);
        }
    }
    assert!(seen > 25, "only {seen} help texts walked");
    assert!(missing.is_empty(), "flags without help text: {missing:?}");
    // The check can fail: a flag line without text is caught.
    assert_eq!(undocumented("Options:\n      --foo <FOO>\n      --bar  Bar.\n"), ["--foo"]);
    // ... and so is one whose only text is its default, on its line or the next.
    assert_eq!(
        undocumented(
            "Options:\n      --seed <SEED>  [default: 0]\n      --split <SPLIT>\n          [default: val]\n      \
             --k <K>  Neighbours [default: 20]\n"
        ),
        ["--seed", "--split"]
    );
}

#[test]
fn old_flag_spellings_still_parse() {
    // Each command gets an input that does not exist: the command's own error (exit 1) proves the
    // flags parsed; clap's usage error (exit 2) would mean a spelling is gone.
    let cases: [&[&str]; 6] = [
        &[
            "colorize",
            "--checkpoint",
            "/nonexistent.safetensors",
            "--input",
            "/nonexistent",
            "--output",
            "/tmp/x.png",
        ],
        &[
            "export",
            "--checkpoint",
            "/nonexistent.safetensors",
            "--rgb",
            "--out",
            "/tmp/x.safetensors",
            "--config",
            "/nonexistent.toml",
        ],
        &[
            "eval",
            "seg",
            "--checkpoint",
            "/nonexistent.safetensors",
            "--config",
            "/nonexistent.toml",
            "--data",
            "/nonexistent",
        ],
        &[
            "finetune",
            "seg",
            "--init",
            "random",
            "--data",
            "/nonexistent",
            "--out",
            "/tmp/cp-x",
            "--max-iterations",
            "3",
        ],
        &["bench", "data", "--images", "/nonexistent", "--no-reference"],
        &[
            "analyse",
            "top",
            "--checkpoint",
            "/nonexistent.safetensors",
            "--layer",
            "fc7",
            "--data",
            "/nonexistent",
            "--out",
            "/tmp/cp-y",
            "--images",
            "3",
        ],
    ];
    for args in cases {
        let o = bin().args(args).output().unwrap();
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
    }
}

#[test]
fn the_readme_stays_a_user_guide_within_300_lines() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let n = readme.lines().count();
    assert!(n <= 300, "README.md has {n} lines: move details to docs/ (its limit as a user guide is 300)");
    // Its first section gives the two set-up commands.
    assert!(readme.contains("scripts/quickstart.sh") && readme.contains("scripts/test.sh"));
}
