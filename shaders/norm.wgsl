// Normalisation of groups of `group` consecutive values (LayerNorm: group = C; GroupNorm of
// the time mix: group = N) with biased variance:
//   out[g][i] = (x[g][i] − mean_g) / sqrt(var_g + eps) · w[c] + b[c],   c = (g·group + i) mod C
//
// bindings: p, x, w [C], b [C], out. One workgroup of 256 per group; statistics in f32.
struct Params { groups: u32, group: u32, cols: u32, eps: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

const WG: u32 = 256u;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let g = wg.x + wg.y * 32768u;
    if (g >= p.groups) { return; }
    let base = g * p.group;
    var s = 0.0;
    for (var i = li; i < p.group; i += WG) { s += x[base + i]; }
    let mean = reduce(li, s) / f32(p.group);
    var v = 0.0;
    for (var i = li; i < p.group; i += WG) { let d = x[base + i] - mean; v += d * d; }
    let inv = inverseSqrt(reduce(li, v) / f32(p.group) + p.eps);
    for (var i = li; i < p.group; i += WG) {
        let c = (base + i) % p.cols;
        out[base + i] = (x[base + i] - mean) * inv * w[c] + b[c];
    }
}
