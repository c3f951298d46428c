// Element-wise ops over n values of rows of `cols` (vec operands are [cols], broadcast per row):
//   op 0  lerp            out = a + b ⊙ vec                 (token-shift mix, spec §2.3 step 3)
//   op 1  write key       out = a ⊙ (1 + (b − 1) ⊙ vec)     (k̃, step 9)
//   op 2  value residual  out = a + (b − a) ⊙ c            (step 10: a = v, b = v_first, c = gate)
//   op 3  relu²           out = max(a, 0)²                  (channel mix)
//   op 4  add             out = a + b                        (residual)
//   op 5  mul             out = a ⊙ b                        (DeepEmbed's gate, spec §1.7)
// (The LoRA activations are applied in the matmul epilogue, shaders/matmul.wgsl.)
//
// bindings: p, a, b, c, vec, out (unused operands bound to any buffer).
struct Params { n: u32, cols: u32, op: u32, pad: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> c: array<f32>;
@group(0) @binding(4) var<storage, read> vec: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let i = id.x + id.y * 65535u * 256u;
    if (i >= p.n) { return; }
    let j = i % p.cols;
    switch p.op {
        case 0u: { out[i] = a[i] + b[i] * vec[j]; }
        case 1u: { out[i] = a[i] * (1.0 + (b[i] - 1.0) * vec[j]); }
        case 2u: { out[i] = a[i] + (b[i] - a[i]) * c[i]; }
        case 3u: { let r = max(a[i], 0.0); out[i] = r * r; }
        case 5u: { out[i] = a[i] * b[i]; }
        default: { out[i] = a[i] + b[i]; }
    }
}
