// Spec §2.3 steps 12-14 (before the output projection), per head h of N channels, per token:
//   ŷ_i = (y_i − mean_h) / sqrt(var_h + 64e-5) · ln_w[c] + ln_b[c]
//   β_h = Σ_j r_j·k̃_j·r_k[h·N + j];   o_i = (ŷ_i + β_h·ṽ_i) · g_i
//
// bindings: p, y, r, k, v, g [t_len][C]; w = r_k ‖ ln_w ‖ ln_b [3C] (packed, to stay within
// WebGPU's default of 8 storage buffers per stage); out [t_len][C].
// One workgroup per (head, token), N ≤ 64 invocations; statistics in f32.
struct Params { groups: u32, n: u32, cols: u32, pad: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> y: array<f32>;
@group(0) @binding(2) var<storage, read> r: array<f32>;
@group(0) @binding(3) var<storage, read> k: array<f32>;
@group(0) @binding(4) var<storage, read> v: array<f32>;
@group(0) @binding(5) var<storage, read> g: array<f32>;
@group(0) @binding(6) var<storage, read> w: array<f32>;
@group(0) @binding(7) var<storage, read_write> out: array<f32>;

const WG: u32 = 64u;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let idx = wg.x * p.n + li;
    let live = li < p.n;
    let c = idx % p.cols;
    var yi = 0.0;
    if (live) { yi = y[idx]; }
    let mean = reduce(li, yi) / f32(p.n);
    var d = 0.0;
    if (live) { d = yi - mean; }
    let var_ = reduce(li, d * d) / f32(p.n);
    var bonus = 0.0;
    if (live) { bonus = r[idx] * k[idx] * w[c]; }
    let beta = reduce(li, bonus);
    if (live) {
        let yn = d * inverseSqrt(var_ + GN_EPS) * w[p.cols + c] + w[2u * p.cols + c];
        out[idx] = (yn + beta * v[idx]) * g[idx];
    }
}
