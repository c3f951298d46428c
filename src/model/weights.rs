//! Typed weights and the one load-time step that shapes them.
//!
//! [`WeightsBuilder::load`] (one [`Part`] at a time, so a browser can stream the file) is the
//! only place where stored tensors are reshaped (spec §1.6):
//! - `[1, 1, C]` vectors are squeezed to `[C]`, `r_k` `[H, N]` is flattened to `[C]`;
//! - Linear weights keep their stored `[out, in]` orientation (applied as `x·Wᵀ`);
//! - LoRA factors, stored `[in, out]` (spec §0.3), are transposed to `[out, in]` so that the
//!   backend needs one matrix product only;
//! - bf16 becomes f32 (exact), f16 matrices stay f16 (the backend widens them in its kernels),
//!   vectors are always f32 (the decay bias `w0` must never be 16-bit, spec §5.3);
//! - `ln0` is *not* folded into the embedding: it is applied per token (the same maths, spec
//!   §1.6), which keeps the stored embedding usable when it is quantised;
//! - layer-0 `att.v0/v1/v2` are never read (spec §1.4);
//! - DeepEmbed's `s1/s2` are LoRA-like factors and transposed the same way; its table `s_emb`
//!   is not merged with the embedding at load (see [`DeepEmbed`]).

use crate::backend::{Backend, HostMatrix, MatrixData};
use crate::error::{Error, Result};
use crate::format::TensorSource;
use crate::model::Config;

/// LayerNorm / GroupNorm parameters.
pub struct Norm<B: Backend> {
    pub weight: B::Vector,
    pub bias: B::Vector,
}

/// The value-residual LoRA of layers ≥ 1 (spec §2.3 step 10); `v1` is in `TimeMix::lora_down`.
pub struct ValueResidual<B: Backend> {
    pub v0: B::Vector,
    pub v2: B::Matrix,
}

/// Time-mix weights of one layer (spec §1.3, `att.*`).
pub struct TimeMix<B: Backend> {
    pub x_r: B::Vector,
    pub x_w: B::Vector,
    pub x_k: B::Vector,
    pub x_v: B::Vector,
    pub x_a: B::Vector,
    pub x_g: B::Vector,
    pub w0: B::Vector,
    /// The LoRAs' first factors, transposed to `[out, in]`: `w1, a1, g1`, and `v1` in layers ≥ 1.
    pub lora_down: B::Group,
    pub w2: B::Matrix,
    pub a0: B::Vector,
    pub a2: B::Matrix,
    /// `None` in layer 0, which defines `v_first` instead.
    pub v: Option<ValueResidual<B>>,
    pub g2: B::Matrix,
    pub k_k: B::Vector,
    pub k_a: B::Vector,
    /// Bonus weights, flattened `[H·N]`.
    pub r_k: B::Vector,
    /// `receptance, key, value` (Linear, `[out, in]`).
    pub rkv: B::Group,
    pub output: B::Matrix,
    pub ln_x: Norm<B>,
}

/// Channel-mix weights of one layer (`ffn.*`).
pub struct ChannelMix<B: Backend> {
    pub x_k: B::Vector,
    pub key: B::Matrix,
    pub value: B::Matrix,
    /// DeepEmbed's gate (rwkv7a models only).
    pub deep: Option<DeepEmbed<B>>,
}

/// DeepEmbed (rwkv7a, spec §1.7) weights of one layer: the gate `((u·s1)·M_t)·s2 + s0` on the
/// channel mix's hidden layer, with `M_t = s_emb[t] + s_emb_x·LN0(emb[t])` as an `R×R` matrix.
/// The official code folds `LN0(emb)·s_emb_xᵀ` into `s_emb` at load time, a `[V, R²]` product
/// per layer; Gander forms it per token instead, like `ln0` (the same maths, and the stored
/// table stays usable when it is quantised).
pub struct DeepEmbed<B: Backend> {
    /// `ffn.s_emb.weight` `[V, R²]`, read a row per token like the embedding.
    pub s_emb: B::Matrix,
    /// `ffn.s_emb_x.weight` `[R², C]` (Linear).
    pub s_emb_x: B::Matrix,
    /// `ffn.s1` `[C, R]`, transposed to `[R, C]`.
    pub s1: B::Matrix,
    /// `ffn.s2` `[R, F]`, transposed to `[F, R]`.
    pub s2: B::Matrix,
    /// `ffn.s0` `[1, 1, F]`, squeezed.
    pub s0: B::Vector,
}

/// One block.
pub struct Block<B: Backend> {
    pub ln1: Norm<B>,
    pub ln2: Norm<B>,
    pub att: TimeMix<B>,
    pub ffn: ChannelMix<B>,
}

/// All weights of a model.
pub struct Weights<B: Backend> {
    /// `emb.weight` `[V, C]`, not normalised (see the module doc).
    pub emb: B::Matrix,
    pub ln0: Norm<B>,
    pub blocks: Vec<Block<B>>,
    pub ln_out: Norm<B>,
    /// `head.weight` `[V, C]`.
    pub head: B::Matrix,
}

struct Loader<'a, B: Backend> {
    b: &'a B,
    src: &'a mut dyn TensorSource,
}

impl<B: Backend> Loader<'_, B> {
    fn vector(&mut self, name: &str) -> Result<B::Vector> {
        let t = self.src.read(name)?;
        let v = t.to_f32();
        if v.iter().any(|x| !x.is_finite()) {
            return Err(Error::BadModel(format!("`{name}` contains NaN or infinite values")));
        }
        self.b.vector(v)
    }

    fn norm(&mut self, prefix: &str) -> Result<Norm<B>> {
        Ok(Norm { weight: self.vector(&format!("{prefix}.weight"))?, bias: self.vector(&format!("{prefix}.bias"))? })
    }

    /// A Linear weight (or the embedding), kept `[out, in]` in its stored format.
    fn linear(&mut self, name: &str) -> Result<B::Matrix> {
        let m = self.src.read_matrix(name)?;
        self.b.matrix(m)
    }

    /// A LoRA factor stored `[in, out]`, transposed to `[out, in]`, keeping f16 storage as f16
    /// (Gander's quantised files store LoRA factors in f16) and widening everything else to f32.
    fn lora_host(&mut self, name: &str) -> Result<HostMatrix> {
        let m = self.src.read_matrix(name)?;
        let (inp, out) = (m.rows, m.cols);
        let data = match m.data {
            MatrixData::F16(v) => MatrixData::F16(transpose(&v, inp, out)),
            other => MatrixData::F32(transpose(&HostMatrix { rows: inp, cols: out, data: other }.to_f32(), inp, out)),
        };
        Ok(HostMatrix { rows: out, cols: inp, data })
    }

    fn lora(&mut self, name: &str) -> Result<B::Matrix> {
        let m = self.lora_host(name)?;
        self.b.matrix(m)
    }
}

/// `[rows, cols]` row-major to `[cols, rows]`.
fn transpose<T: Copy + Default>(v: &[T], rows: usize, cols: usize) -> Vec<T> {
    let mut out = vec![T::default(); v.len()];
    if cols == 0 {
        return out;
    }
    for (i, row) in v.chunks_exact(cols).take(rows).enumerate() {
        for (o, &x) in row.iter().enumerate() {
            if let Some(d) = out.get_mut(o * rows + i) {
                *d = x;
            }
        }
    }
    out
}

/// A piece of the model loaded in one go: the browser streams a file part by part, so host
/// memory holds one part at a time (the embedding, one block, or the head).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// `emb.weight` and `blocks.0.ln0`.
    Embed,
    Block(usize),
    /// `ln_out` and `head.weight`.
    Tail,
}

impl Part {
    /// Every part of a model of `cfg`, in load order.
    pub fn all(cfg: &Config) -> Vec<Part> {
        let mut v = vec![Part::Embed];
        v.extend((0..cfg.layers).map(Part::Block));
        v.push(Part::Tail);
        v
    }

    /// Name prefixes of the tensors the part reads (stored names extend logical ones, e.g. `.q`).
    pub fn prefixes(self) -> Vec<String> {
        match self {
            Part::Embed => vec!["emb.".into(), "blocks.0.ln0.".into()],
            Part::Block(l) => vec![format!("blocks.{l}.")],
            Part::Tail => vec!["ln_out.".into(), "head.".into()],
        }
    }
}

/// Weights being loaded part by part ([`Part`]).
pub struct WeightsBuilder<B: Backend> {
    emb: Option<(B::Matrix, Norm<B>)>,
    blocks: Vec<Block<B>>,
    tail: Option<(Norm<B>, B::Matrix)>,
}

impl<B: Backend> Default for WeightsBuilder<B> {
    fn default() -> Self {
        WeightsBuilder { emb: None, blocks: Vec::new(), tail: None }
    }
}

impl<B: Backend> WeightsBuilder<B> {
    /// Read one part's tensors from `src` into the backend. Blocks must come in order.
    pub fn load(&mut self, b: &B, src: &mut dyn TensorSource, part: Part) -> Result<()> {
        let mut ld = Loader { b, src };
        match part {
            Part::Embed => self.emb = Some((ld.linear("emb.weight")?, ld.norm("blocks.0.ln0")?)),
            Part::Block(l) if l == self.blocks.len() => self.blocks.push(ld.block(l)?),
            Part::Block(l) => return Err(Error::BadInput(format!("block {l} loaded out of order (expected {})", self.blocks.len()))),
            Part::Tail => self.tail = Some((ld.norm("ln_out")?, ld.linear("head.weight")?)),
        }
        Ok(())
    }

    /// The finished weights, once every part is in.
    pub fn finish(self, cfg: &Config) -> Result<Weights<B>> {
        match (self.emb, self.tail) {
            (Some((emb, ln0)), Some((ln_out, head))) if self.blocks.len() == cfg.layers => Ok(Weights { emb, ln0, blocks: self.blocks, ln_out, head }),
            _ => Err(Error::BadInput("the model was not loaded completely".into())),
        }
    }
}

impl<B: Backend> Loader<'_, B> {
    fn block(&mut self, l: usize) -> Result<Block<B>> {
        let b = self.b;
        let ld = self;
        let p = |s: &str| format!("blocks.{l}.{s}");
        let att = TimeMix {
            x_r: ld.vector(&p("att.x_r"))?,
            x_w: ld.vector(&p("att.x_w"))?,
            x_k: ld.vector(&p("att.x_k"))?,
            x_v: ld.vector(&p("att.x_v"))?,
            x_a: ld.vector(&p("att.x_a"))?,
            x_g: ld.vector(&p("att.x_g"))?,
            w0: ld.vector(&p("att.w0"))?,
            lora_down: {
                let mut downs = vec![ld.lora_host(&p("att.w1"))?, ld.lora_host(&p("att.a1"))?, ld.lora_host(&p("att.g1"))?];
                if l > 0 {
                    downs.push(ld.lora_host(&p("att.v1"))?);
                }
                b.group(downs)?
            },
            w2: ld.lora(&p("att.w2"))?,
            a0: ld.vector(&p("att.a0"))?,
            a2: ld.lora(&p("att.a2"))?,
            v: if l == 0 { None } else { Some(ValueResidual { v0: ld.vector(&p("att.v0"))?, v2: ld.lora(&p("att.v2"))? }) },
            g2: ld.lora(&p("att.g2"))?,
            k_k: ld.vector(&p("att.k_k"))?,
            k_a: ld.vector(&p("att.k_a"))?,
            r_k: ld.vector(&p("att.r_k"))?,
            rkv: b.group(vec![
                ld.src.read_matrix(&p("att.receptance.weight"))?,
                ld.src.read_matrix(&p("att.key.weight"))?,
                ld.src.read_matrix(&p("att.value.weight"))?,
            ])?,
            output: ld.linear(&p("att.output.weight"))?,
            ln_x: ld.norm(&p("att.ln_x"))?,
        };
        let deep = if ld.src.tensors().contains_key(&p("ffn.s1")) {
            Some(DeepEmbed {
                s_emb: ld.linear(&p("ffn.s_emb.weight"))?,
                s_emb_x: ld.linear(&p("ffn.s_emb_x.weight"))?,
                s1: ld.lora(&p("ffn.s1"))?,
                s2: ld.lora(&p("ffn.s2"))?,
                s0: ld.vector(&p("ffn.s0"))?,
            })
        } else {
            None
        };
        let ffn = ChannelMix { x_k: ld.vector(&p("ffn.x_k"))?, key: ld.linear(&p("ffn.key.weight"))?, value: ld.linear(&p("ffn.value.weight"))?, deep };
        Ok(Block { ln1: ld.norm(&p("ln1"))?, ln2: ld.norm(&p("ln2"))?, att, ffn })
    }
}
