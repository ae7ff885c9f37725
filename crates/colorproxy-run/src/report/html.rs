//! Static HTML reports next to a run (no server, no network, no scripts): headings, text,
//! tables, pictures (relative links to the PNGs beside the page), the config. Every text is
//! escaped.
use std::path::Path;

use crate::Context;

const STYLE: &str = "body{font-family:'DejaVu Sans',sans-serif;max-width:980px;margin:1.5em auto;padding:0 1em;color:#222}\
h1{font-size:1.6em}h2{font-size:1.25em;margin-top:1.6em;border-bottom:1px solid #ddd}\
table{border-collapse:collapse;margin:.6em 0}td,th{border:1px solid #ccc;padding:3px 10px;text-align:right}\
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}tr.ref td{color:#777;font-style:italic}\
img{max-width:100%;border:1px solid #eee}.sw{display:inline-block;width:.9em;height:.9em;margin-right:.3em;vertical-align:middle;border:1px solid #999}\
.legend span.item{margin-right:1em;white-space:nowrap}pre{background:#f7f7f7;padding:.6em;overflow:auto;font-size:.85em}\
.figs{display:flex;flex-wrap:wrap;gap:1%}.figs figure{width:49%;margin:0}figcaption{text-align:center;font-size:.9em}\
.bar{display:inline-block;height:.7em;background:#3b6fd1;vertical-align:middle;margin-left:.4em}";

/// `&`, `<`, `>`, `"` escaped.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A table cell: text, a score with a bar of its value (0-1), or an HTML fragment.
pub enum Cell {
    Text(String),
    Score(Option<f64>),
}

impl From<&str> for Cell {
    fn from(s: &str) -> Self {
        Cell::Text(s.into())
    }
}

impl From<String> for Cell {
    fn from(s: String) -> Self {
        Cell::Text(s)
    }
}

impl From<f64> for Cell {
    fn from(v: f64) -> Self {
        Cell::Score(Some(v))
    }
}

impl Cell {
    fn html(&self) -> String {
        match self {
            Cell::Text(s) => esc(s),
            Cell::Score(Some(v)) if v.is_finite() => format!(
                "{v:.3}<span class=\"bar\" style=\"width:{:.0}px\"></span>",
                (v.clamp(0.0, 1.0) * 60.0).round()
            ),
            Cell::Score(_) => "-".into(),
        }
    }
}

/// An HTML page under construction.
pub struct Page {
    title: String,
    body: String,
}

impl Page {
    pub fn new(title: &str) -> Self {
        Self { title: title.into(), body: format!("<h1>{}</h1>\n", esc(title)) }
    }

    pub fn h2(&mut self, text: &str) {
        self.body.push_str(&format!("<h2>{}</h2>\n", esc(text)));
    }

    pub fn p(&mut self, text: &str) {
        self.body.push_str(&format!("<p>{}</p>\n", esc(text)));
    }

    /// A table; rows whose first cell starts with "reference" are set apart (grey, italic).
    pub fn table(&mut self, header: &[&str], rows: Vec<Vec<Cell>>) {
        let mut t = String::from("<table><tr>");
        for h in header {
            t.push_str(&format!("<th>{}</th>", esc(h)));
        }
        t.push_str("</tr>\n");
        for row in rows {
            let reference = matches!(row.first(), Some(Cell::Text(s)) if s.starts_with("reference"));
            t.push_str(if reference { "<tr class=\"ref\">" } else { "<tr>" });
            for c in &row {
                t.push_str(&format!("<td>{}</td>", c.html()));
            }
            t.push_str("</tr>\n");
        }
        t.push_str("</table>\n");
        self.body.push_str(&t);
    }

    /// A picture beside the page (`src` relative to it).
    pub fn img(&mut self, src: &str, alt: &str) {
        self.body.push_str(&format!("<p><img src=\"{}\" alt=\"{}\"></p>\n", esc(src), esc(alt)));
    }

    /// Pictures side by side, two per row, each with a caption.
    pub fn figures(&mut self, items: &[(String, String)]) {
        let mut s = String::from("<div class=\"figs\">");
        for (src, caption) in items {
            s.push_str(&format!(
                "<figure><img src=\"{}\" alt=\"{}\"><figcaption>{}</figcaption></figure>",
                esc(src),
                esc(caption),
                esc(caption)
            ));
        }
        s.push_str("</div>\n");
        self.body.push_str(&s);
    }

    /// Colour swatches with names (a segmentation legend).
    pub fn legend(&mut self, items: &[([u8; 3], String)]) {
        let mut s = String::from("<p class=\"legend\">");
        for ([r, g, b], name) in items {
            s.push_str(&format!(
                "<span class=\"item\"><span class=\"sw\" style=\"background:rgb({r},{g},{b})\"></span>{}</span>",
                esc(name)
            ));
        }
        s.push_str("</p>\n");
        self.body.push_str(&s);
    }

    /// Preformatted text (a config file) under `summary`, unfolded when `open`.
    pub fn details(&mut self, summary: &str, text: &str, open: bool) {
        self.body.push_str(&format!(
            "<details{}><summary>{}</summary><pre>{}</pre></details>\n",
            if open { " open" } else { "" },
            esc(summary),
            esc(text)
        ));
    }

    pub fn write(&self, path: &Path) -> crate::Result<()> {
        let html = format!(
            "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style></head>\n<body>\n{}</body></html>\n",
            esc(&self.title),
            self.body
        );
        std::fs::write(path, html).with_context(|| format!("writing {}", path.display()))
    }
}
