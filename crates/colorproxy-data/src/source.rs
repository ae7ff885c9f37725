//! Where images come from: a folder (recursive) or a file list.
use std::path::{Path, PathBuf};

use crate::DataError;

/// Extensions accepted when listing a folder (case-insensitive).
pub const IMAGE_EXTENSIONS: [&str; 7] = ["jpg", "jpeg", "png", "webp", "bmp", "tif", "tiff"];

/// A sorted list of image files.
#[derive(Debug, Clone)]
pub struct ImageSource {
    pub files: Vec<PathBuf>,
    /// Folders not entered (symbolic-link cycles, folders reached twice), with the reason.
    pub skipped_dirs: Vec<(PathBuf, String)>,
}

fn has_image_ext(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .map(|e| IMAGE_EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
        .unwrap_or(false)
}

/// Lists `dir` recursively. Every folder is entered once, by its canonical path: a symbolic link
/// back to an ancestor (a cycle) or to a folder already listed is skipped and reported in
/// `skipped`, so no image is counted twice.
fn walk(
    dir: &Path,
    out: &mut Vec<PathBuf>,
    seen: &mut std::collections::HashSet<PathBuf>,
    skipped: &mut Vec<(PathBuf, String)>,
) -> Result<(), DataError> {
    let canon = std::fs::canonicalize(dir).map_err(|e| DataError::Io { path: dir.to_owned(), source: e })?;
    if !seen.insert(canon.clone()) {
        skipped.push((
            dir.to_owned(),
            format!("links to {}, already listed (a cycle or a duplicate)", canon.display()),
        ));
        return Ok(());
    }
    let rd = std::fs::read_dir(dir).map_err(|e| DataError::Io { path: dir.to_owned(), source: e })?;
    for entry in rd {
        let entry = entry.map_err(|e| DataError::Io { path: dir.to_owned(), source: e })?;
        let p = entry.path();
        let ft = entry.file_type().map_err(|e| DataError::Io { path: p.clone(), source: e })?;
        if ft.is_dir() || (ft.is_symlink() && p.is_dir()) {
            walk(&p, out, seen, skipped)?;
        } else if has_image_ext(&p) {
            out.push(p);
        }
    }
    Ok(())
}

impl ImageSource {
    /// A folder, listed recursively (sorted), or a text file with one path per line (relative
    /// paths are relative to the list's folder; blank lines and `#` comments are ignored).
    pub fn open(path: &Path) -> Result<Self, DataError> {
        let meta = std::fs::metadata(path).map_err(|e| DataError::Io { path: path.to_owned(), source: e })?;
        if meta.is_dir() {
            Self::from_dir(path)
        } else if has_image_ext(path) {
            Err(DataError::Malformed {
                path: path.to_owned(),
                msg: "is an image; --data takes a folder of images (searched recursively) or a text \
                      file listing one image path per line"
                    .into(),
            })
        } else {
            Self::from_list(path)
        }
    }

    /// All image files under `dir`, recursively, sorted by path.
    pub fn from_dir(dir: &Path) -> Result<Self, DataError> {
        let (mut files, mut skipped_dirs) = (Vec::new(), Vec::new());
        walk(dir, &mut files, &mut Default::default(), &mut skipped_dirs)?;
        if files.is_empty() {
            return Err(DataError::NoImages { path: dir.to_owned(), exts: IMAGE_EXTENSIONS.join("/") });
        }
        files.sort();
        Ok(Self { files, skipped_dirs })
    }

    /// The files named in a list file, in order; a missing file is an error naming the line.
    pub fn from_list(list: &Path) -> Result<Self, DataError> {
        let bytes = std::fs::read(list).map_err(|e| DataError::Io { path: list.to_owned(), source: e })?;
        let text = String::from_utf8(bytes).map_err(|_| DataError::Malformed {
            path: list.to_owned(),
            msg: "is not a text file; --data takes a folder of images or a file list (one image path \
                  per line, UTF-8)"
                .into(),
        })?;
        let base = list.parent().unwrap_or(Path::new("."));
        let mut files = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let p = Path::new(line);
            let p = if p.is_absolute() { p.to_owned() } else { base.join(p) };
            if !p.is_file() {
                return Err(DataError::ListedMissing { path: list.to_owned(), line: i + 1, file: p });
            }
            files.push(p);
        }
        if files.is_empty() {
            return Err(DataError::NoImages { path: list.to_owned(), exts: "listed".into() });
        }
        Ok(Self { files, skipped_dirs: vec![] })
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}
