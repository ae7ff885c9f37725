//! Labelled data of the transfer tasks, without libtorch: a split of a VOC devkit (multi-label
//! classification or segmentation) or of single-label class folders, as a [`LabelledSet`].
use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::image_folder::ImageFolder;
use crate::voc::{VocClassification, VocSegmentation};
use crate::{decode_file, DataError, DecodeLimits, RgbImage8};

/// The downstream task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    Cls,
    Seg,
}

/// A labelled transfer set: VOC sets are decoded once into memory; single-label class folders
/// (which can be ImageNet-sized) keep file paths and decode images when used.
pub struct LabelledSet {
    pub ids: Vec<String>,
    /// Decoded images (VOC sets); empty when `files` is used.
    pub images: Vec<RgbImage8>,
    /// Image files decoded on use (single-label folders); empty for VOC sets.
    pub files: Vec<PathBuf>,
    /// Segmentation: class-index masks `[H * W]` (255 = void).
    pub masks: Vec<Vec<u8>>,
    /// VOC classification: per class +1 / -1 / 0 (difficult).
    pub labels: Vec<Vec<i8>>,
    /// Single-label classification: the class index of each image.
    pub targets: Vec<usize>,
    /// The object classes: class folder names (sorted) or a VOC set's class list (without
    /// background).
    pub class_names: Vec<String>,
    /// Single-label class folders (softmax classification) rather than a VOC devkit.
    pub single_label: bool,
    /// What to do with a file that fails to decode when it is used.
    pub on_bad: OnBad,
    /// Malformed samples skipped (at load time, or files that failed to decode on use).
    pub skipped: AtomicUsize,
    /// Files known not to decode (not tried again).
    bad: std::sync::Mutex<std::collections::BTreeSet<usize>>,
    /// "skipped `<file>`: `<reason>`" lines not yet reported (see [`Self::take_skip_notes`]).
    notes: std::sync::Mutex<Vec<String>>,
}

impl LabelledSet {
    fn empty(on_bad: OnBad) -> Self {
        Self {
            ids: vec![],
            images: vec![],
            files: vec![],
            masks: vec![],
            labels: vec![],
            targets: vec![],
            class_names: vec![],
            single_label: false,
            on_bad,
            skipped: AtomicUsize::new(0),
            bad: Default::default(),
            notes: Default::default(),
        }
    }

    /// Image `i`, or `None` when it fails to decode and the set skips bad files (each bad file
    /// counted once in `skipped` and not decoded again).
    pub fn usable_image(&self, i: usize) -> Result<Option<Cow<'_, RgbImage8>>, DataError> {
        let known_bad = || self.bad.lock().map(|b| b.contains(&i)).unwrap_or(false);
        if self.on_bad == OnBad::Skip && known_bad() {
            return Ok(None);
        }
        match self.image(i) {
            Ok(img) => Ok(Some(img)),
            Err(e) if self.on_bad == OnBad::Skip => {
                if self.bad.lock().map(|mut b| b.insert(i)).unwrap_or(false) {
                    self.skipped.fetch_add(1, Ordering::Relaxed);
                    if let Ok(mut n) = self.notes.lock() {
                        n.push(format!("skipped {e}"));
                    }
                }
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// The skip notes gathered since the last call (each bad file named once, with its reason).
    pub fn take_skip_notes(&self) -> Vec<String> {
        self.notes.lock().map(|mut n| std::mem::take(&mut *n)).unwrap_or_default()
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Image `i`, decoded now if the set keeps files.
    pub fn image(&self, i: usize) -> Result<Cow<'_, RgbImage8>, DataError> {
        if let Some(img) = self.images.get(i) {
            return Ok(Cow::Borrowed(img));
        }
        let path = &self.files[i];
        let limits = DecodeLimits { min_side: 1, ..DecodeLimits::default() };
        decode_file(path, &limits)
            .map(Cow::Owned)
            .map_err(|e| DataError::Malformed { path: path.clone(), msg: e.to_string() })
    }

    /// Applies a label-space variant (Table 4) to a single-label set: keeps the subsampled
    /// images and gives them their new labels and class names. Returns what was done.
    pub fn relabel(
        &mut self,
        space: &crate::label_space::LabelSpace,
    ) -> Result<crate::label_space::Relabelled, DataError> {
        if !self.single_label {
            return Err(DataError::BadConfig(
                "label-space variants need single-label class folders (DATA/<split>/<class>/...)".into(),
            ));
        }
        let r = space.apply(&self.targets, &self.class_names)?;
        self.ids = r.keep.iter().map(|&i| self.ids[i].clone()).collect();
        if !self.files.is_empty() {
            self.files = r.keep.iter().map(|&i| self.files[i].clone()).collect();
        }
        if !self.images.is_empty() {
            self.images = r.keep.iter().map(|&i| self.images[i].clone()).collect();
        }
        self.targets = r.targets.clone();
        self.class_names = r.class_names.clone();
        Ok(r)
    }

    /// Matches the set to a trained network's classes. Class folders: targets renumbered to
    /// `classes` by folder name (a folder the network does not know, or a network without class
    /// folders, is an error). A VOC set: its class list must be the network's (an empty
    /// `classes`: VOC's 20, as networks saved before class lists).
    pub fn align_classes(&mut self, classes: &[String]) -> Result<(), DataError> {
        if self.single_label && classes.is_empty() {
            return Err(DataError::Labels(
                "the network is a VOC (multi-label) classifier; the data are single-label class folders"
                    .into(),
            ));
        }
        let voc20: Vec<String>;
        let classes = if classes.is_empty() {
            voc20 = crate::voc::VOC_CLASSES.map(String::from).to_vec();
            &voc20[..]
        } else {
            classes
        };
        if self.class_names.as_slice() == classes {
            return Ok(());
        }
        if !self.single_label {
            return Err(DataError::Labels(format!(
                "the data's classes ({}) differ from the network's ({})",
                self.class_names.join(", "),
                classes.join(", ")
            )));
        }
        let map: Vec<usize> = self
            .class_names
            .iter()
            .map(|n| {
                classes.iter().position(|c| c == n).ok_or_else(|| {
                    DataError::Labels(format!(
                        "class folder {n:?} is not one of the network's {} classes",
                        classes.len()
                    ))
                })
            })
            .collect::<Result<_, _>>()?;
        for t in &mut self.targets {
            *t = map[*t];
        }
        self.class_names = classes.to_vec();
        Ok(())
    }
}

/// Whether bad samples stop the run or are skipped (and counted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnBad {
    Skip,
    Stop,
}

/// Loads a split for `task`. Segmentation: a VOC devkit (`ImageSets/Segmentation/<split>.txt`).
/// Classification: a VOC devkit (`ImageSets/Main` present) or single-label class folders
/// `root/<split>/<class>/**/<image>` (torchvision's `ImageFolder` layout). VOC images are decoded
/// once (VOC sets fit in memory); class-folder images are decoded when used.
pub fn load_split(
    task: Task,
    root: &Path,
    split: &str,
    on_bad: OnBad,
    log: &mut dyn FnMut(&str),
) -> Result<LabelledSet, DataError> {
    load_split_with(task, root, split, None, on_bad, log)
}

/// [`load_split`] with the object classes of a VOC set given (`classes`, e.g. from `--classes`
/// or a trained network); `None` reads them from the set ([`crate::voc::class_list`]).
pub fn load_split_with(
    task: Task,
    root: &Path,
    split: &str,
    classes: Option<&[String]>,
    on_bad: OnBad,
    log: &mut dyn FnMut(&str),
) -> Result<LabelledSet, DataError> {
    let mut set = LabelledSet::empty(on_bad);
    let voc_classes = |split: &str| -> Result<(Vec<String>, String), DataError> {
        match classes {
            Some(c) if !c.is_empty() => Ok((c.to_vec(), "the given class list".into())),
            _ => crate::voc::class_list(root, None, split),
        }
    };
    match task {
        Task::Seg => {
            let (names, source) = voc_classes(split)?;
            let voc = VocSegmentation::open_with(root, split, names.len(), &source)?;
            set.class_names = names;
            let loaded: Vec<_> = (0..voc.ids.len()).into_par_iter().map(|i| voc.load(i)).collect();
            for (i, r) in loaded.into_iter().enumerate() {
                match r {
                    Ok((img, mask)) => {
                        set.ids.push(voc.ids[i].clone());
                        set.images.push(img);
                        set.masks.push(mask);
                    }
                    Err(e) if on_bad == OnBad::Skip => {
                        set.skipped.fetch_add(1, Ordering::Relaxed);
                        log(&format!("skipped: {e}"))
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        Task::Cls if !root.join("ImageSets/Main").is_dir() => {
            let dir = root.join(split);
            if !dir.is_dir() {
                return Err(DataError::Labels(format!(
                    "{}: neither a VOC devkit (no ImageSets/Main) nor class folders ({} is not a folder)",
                    root.display(),
                    dir.display()
                )));
            }
            let folders = ImageFolder::open(&dir)?;
            for (path, c) in folders.files {
                let id = path.strip_prefix(&dir).unwrap_or(&path).to_string_lossy().into_owned();
                set.ids.push(id);
                set.files.push(path);
                set.targets.push(c);
            }
            set.class_names = folders.classes;
            set.single_label = true;
            log(&format!(
                "{}: {} images in {} class folders",
                dir.display(),
                set.len(),
                set.class_names.len()
            ));
        }
        Task::Cls => {
            let (names, source) = voc_classes(split)?;
            let (voc, bad) =
                VocClassification::open_skipping(root, split, &names, &source, on_bad == OnBad::Skip)?;
            for e in &bad {
                set.skipped.fetch_add(1, Ordering::Relaxed);
                log(&format!("skipped: {e}"));
            }
            set.class_names = names;
            let limits = DecodeLimits { min_side: 1, ..DecodeLimits::default() };
            let loaded: Vec<_> = (0..voc.ids.len())
                .into_par_iter()
                .map(|i| decode_file(&voc.image_path(i), &limits))
                .collect();
            for (i, r) in loaded.into_iter().enumerate() {
                match r {
                    Ok(img) => {
                        set.ids.push(voc.ids[i].clone());
                        set.images.push(img);
                        set.labels.push(voc.labels[i].clone());
                    }
                    Err(e) if on_bad == OnBad::Skip => {
                        set.skipped.fetch_add(1, Ordering::Relaxed);
                        log(&format!("skipped {}: {e}", voc.image_path(i).display()))
                    }
                    Err(e) => {
                        return Err(DataError::Malformed { path: voc.image_path(i), msg: e.to_string() });
                    }
                }
            }
        }
    }
    let skipped = set.skipped.load(Ordering::Relaxed);
    if skipped > 0 {
        log(&format!("{split}: skipped {skipped} malformed samples, kept {}", set.len()));
    }
    if set.is_empty() {
        return Err(DataError::Labels(format!("{}: split {split:?} has no usable images", root.display())));
    }
    Ok(set)
}
