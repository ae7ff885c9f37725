//! The error of a run ([`RunError`]): the library crates' errors, file and format errors, and a
//! message with the context it happened in (`reading FILE: ...`), like `anyhow`'s chain but typed.
use std::fmt::Display;

/// What can stop a run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Nn(#[from] colorproxy_nn::NnError),
    #[error(transparent)]
    Data(#[from] colorproxy_data::DataError),
    #[error(transparent)]
    Dist(#[from] colorproxy_dist::DistError),
    #[error(transparent)]
    Color(#[from] colorproxy_color::ColorError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    #[error(transparent)]
    TomlRead(#[from] toml::de::Error),
    #[error(transparent)]
    TomlWrite(#[from] toml::ser::Error),
    #[error(transparent)]
    Image(#[from] image::ImageError),
    #[error(transparent)]
    Torch(#[from] tch::TchError),
    #[error(transparent)]
    ParseInt(#[from] std::num::ParseIntError),
    /// Invalid input or a failed check, in words.
    #[error("{0}")]
    Msg(String),
    /// The run was stopped by SIGINT/SIGTERM (or the host's interrupt) after writing its
    /// checkpoint; the binary exits with `code` (130 or 143).
    #[error("interrupted (the checkpoint is written)")]
    Interrupted { code: i32 },
    /// A drawing backend's error (plots), as text.
    #[error("drawing: {0}")]
    Draw(String),
    /// `source` happened while doing `context` (shown as `context: source`).
    #[error("{context}")]
    Context {
        context: String,
        #[source]
        source: Box<RunError>,
    },
}

pub type Result<T, E = RunError> = std::result::Result<T, E>;

impl RunError {
    pub fn msg(m: impl Display) -> Self {
        RunError::Msg(m.to_string())
    }

    /// A plotting backend's error.
    pub fn draw(e: impl Display) -> Self {
        RunError::Draw(e.to_string())
    }
}

/// Adds what was being done to an error: `result.context("reading x")?`.
pub trait Context<T> {
    fn context<C: Display>(self, context: C) -> Result<T>;
    fn with_context<C: Display, F: FnOnce() -> C>(self, f: F) -> Result<T>;
}

impl<T, E: Into<RunError>> Context<T> for std::result::Result<T, E> {
    fn context<C: Display>(self, context: C) -> Result<T> {
        self.map_err(|e| RunError::Context { context: context.to_string(), source: Box::new(e.into()) })
    }
    fn with_context<C: Display, F: FnOnce() -> C>(self, f: F) -> Result<T> {
        self.map_err(|e| RunError::Context { context: f().to_string(), source: Box::new(e.into()) })
    }
}

impl<T> Context<T> for Option<T> {
    fn context<C: Display>(self, context: C) -> Result<T> {
        self.ok_or_else(|| RunError::Msg(context.to_string()))
    }
    fn with_context<C: Display, F: FnOnce() -> C>(self, f: F) -> Result<T> {
        self.ok_or_else(|| RunError::Msg(f().to_string()))
    }
}

/// Returns a [`RunError::Msg`] from the enclosing function: `bail!("bad {x}")`.
#[macro_export]
macro_rules! bail {
    ($fmt:literal $($t:tt)*) => {
        return Err($crate::RunError::Msg(format!($fmt $($t)*)))
    };
    ($e:expr) => {
        return Err($crate::RunError::Msg(($e).to_string()))
    };
}

/// Returns a [`RunError::Msg`] unless the condition holds: `ensure!(ok, "bad {x}")`.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($t:tt)*) => {
        if !$cond {
            return Err($crate::RunError::Msg(format!($($t)*)));
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The chain reads like anyhow's `{:#}`: each context, then the cause.
    #[test]
    fn context_chain_names_every_step() {
        let e = std::fs::read("/nonexistent/x").context("reading x").context("loading").unwrap_err();
        let mut text = e.to_string();
        let mut s: Option<&dyn std::error::Error> = std::error::Error::source(&e);
        while let Some(c) = s {
            text.push_str(&format!(": {c}"));
            s = c.source();
        }
        assert!(text.starts_with("loading: reading x: "), "{text}");
        assert!(text.contains("No such file"), "{text}");
        let none: Option<u8> = None;
        assert_eq!(none.context("no value").unwrap_err().to_string(), "no value");
    }
}
