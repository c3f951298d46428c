//! The RWKV-7 forward pass, written once over [`Backend`] and numbered as spec §2.
//!
//! Every call processes `T ≥ 1` tokens: decoding is `T = 1`; a prompt is one call with all its
//! tokens (sequence mode, spec §4): every matrix product runs over the `[T, C]` block at once,
//! then the WKV scan walks the tokens in order. Both modes are the same code, so they agree
//! to rounding.

use super::weights::{ChannelMix, DeepEmbed, Norm, TimeMix, Weights};
use crate::backend::{Backend, LoraMid, Shift, WkvInputs};
use crate::error::{Error, Result};

/// Which logits a forward call should produce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Logits {
    /// None: only advance the state (prefill).
    None,
    /// The logits after the last token.
    Last,
    /// The logits after every token, `[T, V]`.
    All,
}

/// Spec §2.3: the time mix of layer `l`; adds `W_output·(o ⊙ g)` to the residual stream `x`.
#[allow(clippy::too_many_arguments)]
fn time_mix<B: Backend>(
    b: &B,
    att: &TimeMix<B>,
    ln1: &Norm<B>,
    state: &mut B::State,
    l: usize,
    head_size: usize,
    x: &mut B::Act,
    v_first: &mut Option<B::Act>,
) -> Result<()> {
    // 1. pre-norm u = LN(x), and 2. token shift: d = previous u − u; the state keeps this u
    let (u, d) = b.norm_shift(&*x, &ln1.weight, &ln1.bias, state, l, Shift::TimeMix)?;
    // 3. six lerps x_* = u + d ⊙ μ_*, each feeding products (done by the ops below, which a
    //    backend can run as single dispatches with the lerps done while loading)
    // 4. projections r = W_r·x_r, k = W_k·x_k, v = W_v·x_v
    let none = LoraMid::None;
    let [r, k, v]: [B::Act; 3] = three(b.matmul_mix_group(&u, &d, &[&att.x_r, &att.x_k, &att.x_v], &att.rkv, &[none; 3])?)?;
    // 5-7 and 10, first LoRA factors: tanh(x_w·w1), x_a·a1, σ(x_g·g1), x_v·v1 (layers ≥ 1)
    let (mus, mids): (Vec<&B::Vector>, Vec<LoraMid>) = if att.v.is_some() {
        (vec![&att.x_w, &att.x_a, &att.x_g, &att.x_v], vec![LoraMid::Tanh, none, LoraMid::Sigmoid, none])
    } else {
        (vec![&att.x_w, &att.x_a, &att.x_g], vec![LoraMid::Tanh, none, LoraMid::Sigmoid])
    };
    let h = b.matmul_mix_group(&u, &d, &mus, &att.lora_down, &mids)?;
    let [hw, ha, hg, ..] = h.as_slice() else {
        return Err(Error::BadModel(format!("{} LoRA products for {} inputs", h.len(), mus.len())));
    };
    // 5. decay input z = w0 + tanh(x_w·w1)·w2 (the decay itself is formed in fp32 inside wkv)
    let z = b.lora_up(hw, &att.w2, Some(&att.w0), false)?;
    // 6. in-context learning rate α = σ(a0 + (x_a·a1)·a2)
    let alpha = b.lora_up(ha, &att.a2, Some(&att.a0), true)?;
    // 7. output gate g = σ(x_g·g1)·g2
    let g = b.lora_up(hg, &att.g2, None, false)?;
    // 10 (its gate, layers ≥ 1): σ(v0 + (x_v·v1)·v2); layer 0 instead defines v_first = v
    let gate = match (&att.v, v_first.as_ref(), h.get(3)) {
        (Some(vr), Some(_), Some(hv)) => Some(b.lora_up(hv, &vr.v2, Some(&vr.v0), true)?),
        _ => {
            *v_first = Some(v.clone());
            None
        }
    };
    let inputs = WkvInputs {
        r: &r,
        z: &z,
        k: &k,
        v: &v,
        alpha: &alpha,
        g: &g,
        residual: v_first.as_ref().zip(gate.as_ref()),
        k_k: &att.k_k,
        k_a: &att.k_a,
        r_k: &att.r_k,
        ln_w: &att.ln_x.weight,
        ln_b: &att.ln_x.bias,
        head_size,
    };
    // 8-13: one fused op where the backend has it (the GPU), else step by step (wkv_steps)
    let o = match b.wkv_fused(state, l, &inputs) {
        Some(o) => o?,
        None => wkv_steps(b, state, l, &inputs)?,
    };
    // 14. output projection, added to the residual stream
    b.matmul_add(&o, &att.output, x)
}

/// The three results of a three-matrix group.
fn three<T>(v: Vec<T>) -> Result<[T; 3]> {
    v.try_into().map_err(|_| crate::Error::BadModel("a group of three matrices gave another count".into()))
}

/// Spec §2.3 steps 8-13, one op each (public as the reference of the GPU's fused op test).
pub fn wkv_steps<B: Backend>(b: &B, state: &mut B::State, l: usize, x: &WkvInputs<'_, B>) -> Result<B::Act> {
    // 8. removal key κ̂ = normalize_per_head(k ⊙ k_k), from the unmodified k
    let kk = b.removal_key(x.k, x.k_k, x.head_size)?;
    // 9. write key k̃ = k ⊙ (1 + (α − 1) ⊙ k_a)
    let k = b.write_key(x.k, x.alpha, x.k_a)?;
    // 10. value residual (layers ≥ 1): ṽ = v + (v_first − v) ⊙ σ(v0 + (x_v·v1)·v2)
    let v = match x.residual {
        Some((vf, gate)) => b.value_residual(x.v, vf, gate)?,
        None => x.v.clone(),
    };
    // 11. WKV state update and read-out, per head, in fp32 (decay formed from z inside)
    let y = b.wkv(state, l, x.r, x.z, &k, &v, &kk, x.alpha)?;
    // 12-13. GroupNorm per head, bonus β_h·ṽ, gate
    b.group_norm_bonus_gate(&y, x.r, &k, &v, x.r_k, x.ln_w, x.ln_b, x.g, x.head_size)
}

/// What DeepEmbed's gate reads besides the layer's input: the tokens and `LN0(emb[t])`.
struct TokenInputs<'a, B: Backend> {
    tokens: &'a [u32],
    /// `None` when no layer has DeepEmbed.
    x0: Option<&'a B::Act>,
}

/// Spec §2.4: the channel mix of layer `l`; adds `W_value·relu(W_key·x_k)²` to `x` (times
/// DeepEmbed's gate in rwkv7a models).
fn channel_mix<B: Backend>(b: &B, ffn: &ChannelMix<B>, ln2: &Norm<B>, state: &mut B::State, l: usize, x: &mut B::Act, tok: &TokenInputs<'_, B>) -> Result<()> {
    let (u, d) = b.norm_shift(&*x, &ln2.weight, &ln2.bias, state, l, Shift::ChannelMix)?;
    let mut h = b.matmul_mix_relu_sq(&u, &d, &ffn.x_k, &ffn.key)?;
    if let Some(de) = &ffn.deep {
        let gate = deep_embed_gate(b, de, &u, tok)?;
        b.mul_assign(&mut h, &gate)?;
    }
    b.matmul_add(&h, &ffn.value, x)
}

/// Spec §1.7, DeepEmbed (rwkv7a): the gate `((u·s1)·M_t)·s2 + s0` of token `t`'s hidden layer,
/// where `u` is the ln2 output (not the shifted mix) and `M_t` is the `R×R` matrix
/// `s_emb[t] + s_emb_x·LN0(emb[t])` (official `rwkv` 0.8.32, `RWKV_x070_CMix_one`).
fn deep_embed_gate<B: Backend>(b: &B, de: &DeepEmbed<B>, u: &B::Act, tok: &TokenInputs<'_, B>) -> Result<B::Act> {
    let x0 = tok.x0.ok_or_else(|| Error::BadModel("DeepEmbed weights without the embedding they read".into()))?;
    let mut m = b.embed(&de.s_emb, tok.tokens)?;
    b.matmul_add(x0, &de.s_emb_x, &mut m)?;
    let a = b.matmul(u, &de.s1)?;
    let ss = b.token_matvec(&a, &m)?;
    b.lora_up(&ss, &de.s2, Some(&de.s0), false)
}

/// Run `tokens` through the model from `state` (which is advanced) and return the requested
/// logits as a device activation (`[1, V]`, `[T, V]`, or nothing).
pub fn forward<B: Backend>(b: &B, w: &Weights<B>, head_size: usize, state: &mut B::State, tokens: &[u32], want: Logits) -> Result<Option<B::Act>> {
    // 2.2 embedding, then ln0 (applied per token; see weights.rs)
    let e = b.embed(&w.emb, tokens)?;
    let mut x = b.layer_norm(&e, &w.ln0.weight, &w.ln0.bias)?;
    // DeepEmbed reads LN0(emb[t]) in every layer (rwkv7a models only). Computed again rather
    // than cloned: a GPU clone shares the buffer that the residual updates in place.
    let x0 = match w.blocks.iter().any(|blk| blk.ffn.deep.is_some()) {
        true => Some(b.layer_norm(&e, &w.ln0.weight, &w.ln0.bias)?),
        false => None,
    };
    let tok = TokenInputs { tokens, x0: x0.as_ref() };
    let mut v_first = None;
    for (l, blk) in w.blocks.iter().enumerate() {
        time_mix(b, &blk.att, &blk.ln1, state, l, head_size, &mut x, &mut v_first)?;
        channel_mix(b, &blk.ffn, &blk.ln2, state, l, &mut x, &tok)?;
    }
    // 2.5 head
    let x = match want {
        Logits::None => return Ok(None),
        Logits::Last => b.last_row(&x)?,
        Logits::All => x,
    };
    let x = b.layer_norm(&x, &w.ln_out.weight, &w.ln_out.bias)?;
    Ok(Some(b.matmul(&x, &w.head)?))
}
