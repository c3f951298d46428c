// Spec §2.3 steps 1-2 (and §2.4's first two lines) for T tokens in one kernel:
//   u[t] = LN(x[t]; w, b)   (eps 1e-5, biased variance, statistics in f32)
//   d[t] = prev(t) − u[t],  prev(0) = state, prev(t) = u[t−1] (recomputed from x[t−1] here)
// The caller then copies u[T−1] into the state (a buffer copy after this dispatch, so token 0
// reads the old state without a race).
//
// bindings: p, x [t_len][C], w [C], b [C], state [C] (read), u [t_len][C], d [t_len][C].
// One workgroup of 256 per token.
struct Params { t_len: u32, cols: u32, pad0: u32, pad1: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;
@group(0) @binding(4) var<storage, read> state: array<f32>;
@group(0) @binding(5) var<storage, read_write> u: array<f32>;
@group(0) @binding(6) var<storage, read_write> d: array<f32>;

const WG: u32 = 256u;

// mean and 1/sqrt(var + eps) of row `row`
fn stats(li: u32, row: u32) -> vec2<f32> {
    let base = row * p.cols;
    var s = 0.0;
    for (var i = li; i < p.cols; i += WG) { s += x[base + i]; }
    let mean = reduce(li, s) / f32(p.cols);
    var v = 0.0;
    for (var i = li; i < p.cols; i += WG) { let e = x[base + i] - mean; v += e * e; }
    return vec2<f32>(mean, inverseSqrt(reduce(li, v) / f32(p.cols) + LN_EPS));
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let t = wg.x + wg.y * 32768u;
    if (t >= p.t_len) { return; }
    let cur = stats(li, t);
    var prev = vec2<f32>(0.0, 0.0);
    if (t > 0u) { prev = stats(li, t - 1u); }
    let base = t * p.cols;
    for (var i = li; i < p.cols; i += WG) {
        let ui = (x[base + i] - cur.x) * cur.y * w[i] + b[i];
        var pi = state[i];
        if (t > 0u) { pi = (x[base - p.cols + i] - prev.x) * prev.y * w[i] + b[i]; }
        u[base + i] = ui;
        d[base + i] = pi - ui;
    }
}
