//! Gander: RWKV-7 ("Goose", x070) inference for the browser and natively.
//!
//! The crate is organised as the spec reads (`docs/rwkv7-spec.md`):
//! - [`format`]: reading official `.pth` / `.safetensors` checkpoints and Gander's own weight file;
//! - [`config`]: the hyper-parameters inferred from tensor shapes, and the model's fingerprint;
//! - [`model`]: typed weights, and the forward pass written once
//!   over the narrow [`backend::Backend`] trait;
//! - [`backend`]: the exact fp32 CPU backend (the project's numerical reference);
//! - [`state`]: the recurrent state and its versioned binary format;
//! - [`tokenizer`], [`sampler`], [`generate`]: text in, text out;
//! - [`chat`]: the G1 chat template and the split of answers into reasoning and content;
//! - [`grammar`]: GBNF and JSON-schema constraints, as token masks for constrained decoding.
//!
//! Errors are one enum, [`Error`], with a stable [`Error::code`].

// No unwrap/expect/panic! in library code (CLI and JS inputs reach most of it): errors are
// values. `make test` enforces this with clippy; the two justified exceptions say why.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

// Every module that reads bytes, numbers or text from outside (files, CLI arguments, JS calls)
// also has indexing and slicing denied: lookups are `get`, patterns or iterators, so an
// out-of-range index in a hostile file is an error value, never a panic. The backends index
// buffers whose sizes come from the config checked at load; they are covered by the fuzz
// targets running loaded models (README "Fuzzing").
pub mod backend;
#[cfg_attr(not(test), deny(clippy::indexing_slicing))]
pub mod chat;
#[cfg(not(target_arch = "wasm32"))]
#[cfg_attr(not(test), deny(clippy::indexing_slicing))]
pub mod cli;
#[cfg_attr(not(test), deny(clippy::indexing_slicing))]
pub mod config;
#[cfg_attr(not(test), deny(clippy::indexing_slicing))]
pub mod error;
#[cfg_attr(not(test), deny(clippy::indexing_slicing))]
pub mod format;
#[cfg_attr(not(test), deny(clippy::indexing_slicing))]
pub mod generate;
#[cfg_attr(not(test), deny(clippy::indexing_slicing))]
pub mod grammar;
#[cfg_attr(not(test), deny(clippy::indexing_slicing))]
pub mod model;
#[cfg_attr(not(test), deny(clippy::indexing_slicing))]
pub mod sampler;
#[cfg_attr(not(test), deny(clippy::indexing_slicing))]
pub mod state;
#[cfg_attr(not(test), deny(clippy::indexing_slicing))]
pub mod tokenizer;
#[cfg(target_arch = "wasm32")]
#[cfg_attr(not(test), deny(clippy::indexing_slicing))]
pub mod web;

pub use error::{Error, Result};
pub use model::{Config, Model};
pub use state::State;
