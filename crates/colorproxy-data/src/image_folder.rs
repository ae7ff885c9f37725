//! Single-label image folders (torchvision's `ImageFolder` layout): `ROOT/<class>/**/<image>`.
use std::path::{Path, PathBuf};

use crate::DataError;

/// Single-label image folders: `ROOT/<class>/**/<image>`, classes sorted by name.
#[derive(Debug, Clone)]
pub struct ImageFolder {
    pub classes: Vec<String>,
    pub files: Vec<(PathBuf, usize)>,
}

impl ImageFolder {
    pub fn open(root: &Path) -> Result<Self, DataError> {
        let mut classes: Vec<String> = std::fs::read_dir(root)
            .map_err(|e| DataError::Io { path: root.to_owned(), source: e })?
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_dir())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        classes.sort();
        let mut files = Vec::new();
        for (c, name) in classes.iter().enumerate() {
            if let Ok(src) = crate::ImageSource::from_dir(&root.join(name)) {
                files.extend(src.files.into_iter().map(|f| (f, c)));
            }
        }
        if files.is_empty() {
            return Err(DataError::NoImages { path: root.to_owned(), exts: "class-folder".into() });
        }
        Ok(Self { classes, files })
    }
}
