//! Gander: RWKV-7 ("Goose", x070) inference for the browser and natively.
//!
//! The crate is organised as the spec reads (`shared/docs/rwkv7-spec.md`):
//! - [`format`]: reading official `.pth` / `.safetensors` checkpoints and Gander's own weight file;
//! - [`model`]: the config inferred from shapes, typed weights, and the forward pass written once
//!   over the narrow [`backend::Backend`] trait;
//! - [`backend`]: the exact fp32 CPU backend (the project's numerical reference);
//! - [`state`]: the recurrent state and its versioned binary format;
//! - [`tokenizer`], [`sampler`], [`generate`]: text in, text out.
//!
//! Errors are one enum, [`Error`], with a stable [`Error::code`].

// No unwrap/expect/panic! in library code (CLI and JS inputs reach most of it): errors are
// values. `make test` enforces this with clippy; the two justified exceptions say why.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod backend;
#[cfg(not(target_arch = "wasm32"))]
pub mod cli;
pub mod error;
pub mod format;
pub mod generate;
pub mod model;
pub mod sampler;
pub mod state;
pub mod tokenizer;
#[cfg(target_arch = "wasm32")]
pub mod web;

pub use error::{Error, Result};
pub use model::{Config, Model};
pub use state::State;
