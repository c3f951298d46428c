//! The narrow interface the forward pass is written against: a dozen RWKV-7 operations,
//! not a tensor library. The CPU backend implements it exactly in fp32; the GPU backend
//! (WGSL through wgpu) implements the same operations as compute shaders.
//!
//! Activations are `[T, C]`-shaped: `T` tokens of a prompt in sequence mode, `T = 1` when
//! decoding. Matrices are `[out, in]` row-major and applied as `y = x·Wᵀ`.

pub mod cpu;
pub mod gpu;

use crate::config::Config;
use crate::error::Result;
use crate::state::State;

pub use crate::format::quant::{HostMatrix, MatrixData};

/// The activation between the two factors of a LoRA (spec §2.3 steps 5-7, 10).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoraMid {
    None,
    Tanh,
    Sigmoid,
}

/// The inputs of spec §2.3 steps 8-13 for [`Backend::wkv_fused`].
pub struct WkvInputs<'a, B: Backend + ?Sized> {
    pub r: &'a B::Act,
    pub z: &'a B::Act,
    pub k: &'a B::Act,
    pub v: &'a B::Act,
    pub alpha: &'a B::Act,
    pub g: &'a B::Act,
    /// `(v_first, gate)` for the value residual of layers ≥ 1.
    pub residual: Option<(&'a B::Act, &'a B::Act)>,
    pub k_k: &'a B::Vector,
    pub k_a: &'a B::Vector,
    pub r_k: &'a B::Vector,
    pub ln_w: &'a B::Vector,
    pub ln_b: &'a B::Vector,
    pub head_size: usize,
}

/// Which token-shift vector of a layer's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shift {
    TimeMix,
    ChannelMix,
}

/// Device work counted by a GPU backend ([`Backend::take_counters`]); `gander bench` reports it
/// per decoded token.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceCounters {
    pub dispatches: u64,
    pub bind_groups_created: u64,
    pub buffers_created: u64,
    pub submits: u64,
    pub readback_bytes: u64,
}

/// The operations of the RWKV-7 forward pass. Backends are shareable across threads so a
/// forward call can run on a worker pool ([`Backend::install`]).
pub trait Backend: Sync {
    /// A weight matrix in device memory.
    type Matrix: Send + Sync;
    /// A weight vector (length `C`, or `H·N` for `r_k`), always f32.
    type Vector: Send + Sync;
    /// Several matrices of the same input width, used together ([`Backend::matmul_mix_group`]).
    type Group: Send + Sync;
    /// Activations `[T, width]`, f32. Cloned once per forward call (`v_first`).
    type Act: Clone + Send;
    /// The recurrent state of one session.
    type State: Send;

    /// A short name for reports (`cpu`, `gpu`).
    fn name(&self) -> String;

    /// Run a whole forward call in the backend's execution context (the CPU backend runs it on
    /// its worker pool, so the calling thread sleeps instead of competing for a core).
    fn install<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        f()
    }

    /// What the device did since the last call, where the backend counts it (GPU): dispatches,
    /// bind groups and buffers created, submits, bytes read back.
    fn take_counters(&self) -> Option<DeviceCounters> {
        None
    }

    /// The adapter's name, for GPU backends.
    fn adapter_name(&self) -> Option<String> {
        None
    }

    /// Bytes a matrix occupies (for bandwidth bounds in benchmarks).
    fn matrix_bytes(&self, m: &Self::Matrix) -> usize;

    fn matrix(&self, m: HostMatrix) -> Result<Self::Matrix>;
    /// A group of matrices with equal `cols` (and, for backends that concatenate them, one
    /// storage format).
    fn group(&self, mats: Vec<HostMatrix>) -> Result<Self::Group>;
    /// Bytes a group occupies.
    fn group_bytes(&self, g: &Self::Group) -> usize;
    fn vector(&self, v: Vec<f32>) -> Result<Self::Vector>;

    fn new_state(&self, cfg: &Config, fingerprint: [u8; 32]) -> Result<Self::State>;
    fn state_to_host(&self, s: &Self::State) -> Result<State>;
    /// Upload a host state; refused unless it fits `cfg` ([`State::check_fits`]).
    fn state_from_host(&self, s: &State) -> Result<Self::State>;
    /// Refuse a state that does not have the shape of a model with `cfg` (another model's, or
    /// a hand-built one): the kernels index it by the config, so [`crate::Model`] checks this
    /// before every forward call.
    fn state_fits(&self, s: &Self::State, cfg: &Config) -> Result<()>;

    /// An activation from host data (`rows·cols` floats, row-major): for tests and for callers
    /// that feed their own inputs.
    fn act_from_host(&self, rows: usize, cols: usize, data: &[f32]) -> Result<Self::Act>;

    /// Rows `tokens` of the embedding table: `[T, C]`.
    fn embed(&self, emb: &Self::Matrix, tokens: &[u32]) -> Result<Self::Act>;
    /// LayerNorm over each row, eps 1e-5.
    fn layer_norm(&self, x: &Self::Act, w: &Self::Vector, b: &Self::Vector) -> Result<Self::Act>;
    /// `d = shifted(u) − u`, where row `t` of `shifted(u)` is `u[t−1]` and row 0 comes from the
    /// state; the state then keeps `u[T−1]` (spec §2.3 step 2, §4).
    fn token_shift(&self, u: &Self::Act, state: &mut Self::State, layer: usize, which: Shift) -> Result<Self::Act>;
    /// `u + d ⊙ mu` for every row.
    fn lerp(&self, u: &Self::Act, d: &Self::Act, mu: &Self::Vector) -> Result<Self::Act>;
    /// `x·Wᵀ` (W stored `[out, in]`).
    fn matmul(&self, x: &Self::Act, w: &Self::Matrix) -> Result<Self::Act>;
    /// `u = LN(x)` and the token shift `d` (spec §2.3 steps 1-2) as one op: returns `(u, d)` and
    /// advances the shift state.
    #[allow(clippy::too_many_arguments)]
    fn norm_shift(
        &self,
        x: &Self::Act,
        w: &Self::Vector,
        b: &Self::Vector,
        state: &mut Self::State,
        layer: usize,
        which: Shift,
    ) -> Result<(Self::Act, Self::Act)> {
        let u = self.layer_norm(x, w, b)?;
        let d = self.token_shift(&u, state, layer, which)?;
        Ok((u, d))
    }
    /// `[act_i((u + d ⊙ mu_i)·W_iᵀ)]` for the matrices `W_i` of a group: token-shift lerps
    /// feeding several products (r/k/v; the first halves of the LoRAs), one op so a backend can
    /// run them as one dispatch with the lerps done while loading.
    fn matmul_mix_group(&self, u: &Self::Act, d: &Self::Act, mus: &[&Self::Vector], g: &Self::Group, acts: &[LoraMid]) -> Result<Vec<Self::Act>>;
    /// The second half of a LoRA: `post(bias + h·Upᵀ)`, `post` = sigmoid if `sigmoid_out`.
    fn lora_up(&self, h: &Self::Act, up: &Self::Matrix, bias: Option<&Self::Vector>, sigmoid_out: bool) -> Result<Self::Act>;
    /// `relu((u + d ⊙ mu)·Wᵀ)²` (the channel mix's key product on its shifted input).
    fn matmul_mix_relu_sq(&self, u: &Self::Act, d: &Self::Act, mu: &Self::Vector, w: &Self::Matrix) -> Result<Self::Act> {
        self.matmul_relu_sq(&self.lerp(u, d, mu)?, w)
    }
    /// Spec §2.3 steps 8-13 (removal key, write key, value residual, WKV scan, GroupNorm, bonus,
    /// gate) as one fused op, returning `o`; `None` when the backend does not fuse them, and the
    /// forward pass then runs the steps one by one.
    fn wkv_fused(&self, _state: &mut Self::State, _layer: usize, _x: &WkvInputs<'_, Self>) -> Option<Result<Self::Act>> {
        None
    }
    /// `acc += x·Wᵀ` (the residual update after a block's output projection).
    fn matmul_add(&self, x: &Self::Act, w: &Self::Matrix, acc: &mut Self::Act) -> Result<()> {
        let y = self.matmul(x, w)?;
        self.add_assign(acc, &y)
    }
    /// `relu(x·Wᵀ)²` (the channel mix's key product).
    fn matmul_relu_sq(&self, x: &Self::Act, w: &Self::Matrix) -> Result<Self::Act> {
        self.relu_sq(&self.matmul(x, w)?)
    }
    /// `κ̂ = normalize_per_head(k ⊙ k_k)`, eps 1e-12 (step 8).
    fn removal_key(&self, k: &Self::Act, k_k: &Self::Vector, head_size: usize) -> Result<Self::Act>;
    /// `k̃ = k ⊙ (1 + (α − 1) ⊙ k_a)` (step 9).
    fn write_key(&self, k: &Self::Act, alpha: &Self::Act, k_a: &Self::Vector) -> Result<Self::Act>;
    /// `ṽ = v + (v_first − v) ⊙ gate` (step 10, layers ≥ 1).
    fn value_residual(&self, v: &Self::Act, v_first: &Self::Act, gate: &Self::Act) -> Result<Self::Act>;
    /// The WKV-7 scan over the `T` rows (steps 5 and 11): decay from `z` in fp32, state update,
    /// read-out `y = S'·r`.
    #[allow(clippy::too_many_arguments)]
    fn wkv(
        &self,
        state: &mut Self::State,
        layer: usize,
        r: &Self::Act,
        z: &Self::Act,
        k: &Self::Act,
        v: &Self::Act,
        kk: &Self::Act,
        alpha: &Self::Act,
    ) -> Result<Self::Act>;
    /// GroupNorm per head (eps 64e-5), plus the bonus `β_h·ṽ`, times the gate (steps 12-14).
    #[allow(clippy::too_many_arguments)]
    fn group_norm_bonus_gate(
        &self,
        y: &Self::Act,
        r: &Self::Act,
        k: &Self::Act,
        v: &Self::Act,
        r_k: &Self::Vector,
        ln_w: &Self::Vector,
        ln_b: &Self::Vector,
        g: &Self::Act,
        head_size: usize,
    ) -> Result<Self::Act>;
    /// `relu(x)²` elementwise (channel mix).
    fn relu_sq(&self, x: &Self::Act) -> Result<Self::Act>;
    /// `x ⊙= y` (DeepEmbed's gate on the channel mix's hidden layer).
    fn mul_assign(&self, _x: &mut Self::Act, _y: &Self::Act) -> Result<()> {
        Err(crate::Error::Unsupported(format!("DeepEmbed (rwkv7a) models on the {} backend", self.name())))
    }
    /// Per row `t`: `a[t]·M_t`, where `a` is `[T, R]` and row `t` of `m` (`[T, R²]`) is the
    /// `R×R` matrix `M_t`, row-major (DeepEmbed's per-token matrix, spec §1.7).
    fn token_matvec(&self, _a: &Self::Act, _m: &Self::Act) -> Result<Self::Act> {
        Err(crate::Error::Unsupported(format!("DeepEmbed (rwkv7a) models on the {} backend", self.name())))
    }
    /// `x += y`.
    fn add_assign(&self, x: &mut Self::Act, y: &Self::Act) -> Result<()>;
    /// The last row of `x`, as a `[1, width]` activation.
    fn last_row(&self, x: &Self::Act) -> Result<Self::Act>;
    /// Rows of `x` read back to the host into `out` (resized), flattened row-major.
    fn read_into(&self, x: &Self::Act, out: &mut Vec<f32>) -> Result<()>;

    /// Rows of `x` read back to the host, flattened row-major.
    /// [`Backend::read`] without blocking: WebGPU completes a read-back on the browser's event
    /// loop, so the web facade awaits this instead.
    #[allow(async_fn_in_trait)]
    async fn read_async(&self, x: &Self::Act) -> Result<Vec<f32>> {
        self.read(x)
    }

    /// [`Backend::state_to_host`] without blocking (see [`Backend::read_async`]).
    #[allow(async_fn_in_trait)]
    async fn state_to_host_async(&self, s: &Self::State) -> Result<State> {
        self.state_to_host(s)
    }

    fn read(&self, x: &Self::Act) -> Result<Vec<f32>> {
        let mut out = Vec::new();
        self.read_into(x, &mut out)?;
        Ok(out)
    }

    /// Whether [`Backend::sample`] runs here (the GPU): then a decode loop reads back a token id
    /// per step instead of the logits.
    fn samples_on_device(&self) -> bool {
        false
    }

    /// Pick the next token from `logits` (`[1, V]`) on the device, as [`crate::sampler::Sampler`]
    /// would, and update `occurrences` (`[1, V]`, the decayed counts behind the penalties). The
    /// result is a `[1, 1]` activation whose value's bits are the id ([`NO_TOKEN`]: nothing can
    /// be sampled).
    fn sample(&self, _logits: &Self::Act, _occurrences: &mut Self::Act, _job: &SampleJob<'_>) -> Result<Self::Act> {
        Err(crate::Error::Unsupported(format!("sampling on the {} backend's device", self.name())))
    }
}

/// The id [`Backend::sample`] returns when every token is masked or not finite.
pub const NO_TOKEN: u32 = u32::MAX;

/// One token's sampling on the device ([`Backend::sample`]).
pub struct SampleJob<'a> {
    pub opts: &'a crate::sampler::SamplerOptions,
    /// The draw in [0, 1), from the host's seeded generator (unused when greedy).
    pub uniform: f32,
    /// Allowed ids as a bit set (bit `id % 32` of word `id / 32`); `None` allows every id.
    pub mask: Option<&'a [u32]>,
    /// Added to these ids' logits first (OpenAI's `logit_bias`).
    pub bias: &'a [(u32, f32)],
}
