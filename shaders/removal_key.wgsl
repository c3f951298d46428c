// κ̂ = (k ⊙ k_k) / max(‖k ⊙ k_k‖₂, 1e-12) per head of N channels (spec §2.3 step 8).
//
// bindings: p, k [t_len][C], kk_w [C] (k_k), out [t_len][C]. One workgroup per (head, token),
// N ≤ 64 invocations.
struct Params { groups: u32, n: u32, cols: u32, pad: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> k: array<f32>;
@group(0) @binding(2) var<storage, read> kk_w: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

var<workgroup> red: array<f32, 64>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let g = wg.x;
    let i = g * p.n + li;
    var v = 0.0;
    if (li < p.n) { v = k[i] * kk_w[i % p.cols]; }
    red[li] = v * v;
    workgroupBarrier();
    for (var s = 32u; s > 0u; s = s >> 1u) {
        if (li < s) { red[li] += red[li + s]; }
        workgroupBarrier();
    }
    let norm = max(sqrt(red[0]), 1e-12);
    if (li < p.n) { out[i] = v / norm; }
}
