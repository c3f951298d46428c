// The WKV-7 scan (spec §2.3 steps 5 and 11) for T tokens:
//   decay_j = exp(−e^{−1/2}·σ(z_j)) (f32),  b_j = κ̂_j·α_j
//   sa_i = Σ_j S[i][j]·(−κ̂_j);  S'[i][j] = S[i][j]·decay_j + sa_i·b_j + ṽ_i·k̃_j;  y_i = Σ_j S'[i][j]·r_j
//
// bindings: p, r, z, k (k̃), v (ṽ), kk (κ̂), alpha: [t_len][C]; state [H][N][N] of this layer
// (read-write, [h][value i][key j]); y [t_len][C].
// One workgroup per head, one invocation per value row i (N ≤ 64), holding S[i][·] in registers;
// each token's per-channel coefficients are shared through workgroup memory, with barriers.
struct Params { t_len: u32, n: u32, cols: u32, pad: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> r: array<f32>;
@group(0) @binding(2) var<storage, read> z: array<f32>;
@group(0) @binding(3) var<storage, read> k: array<f32>;
@group(0) @binding(4) var<storage, read> v: array<f32>;
@group(0) @binding(5) var<storage, read> kk: array<f32>;
@group(0) @binding(6) var<storage, read> alpha: array<f32>;
@group(0) @binding(7) var<storage, read_write> state: array<f32>;
@group(0) @binding(8) var<storage, read_write> y: array<f32>;

var<workgroup> sh_r: array<f32, 64>;
var<workgroup> sh_k: array<f32, 64>;
var<workgroup> sh_kk: array<f32, 64>;
var<workgroup> sh_b: array<f32, 64>;
var<workgroup> sh_decay: array<f32, 64>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) i: u32) {
    let h = wg.x;
    let n = p.n;
    let live = i < n;
    var s: array<f32, 64>;
    let sbase = h * n * n + i * n;
    if (live) {
        for (var j = 0u; j < n; j++) { s[j] = state[sbase + j]; }
    }
    for (var t = 0u; t < p.t_len; t++) {
        let c = t * p.cols + h * n + i;
        if (live) {
            sh_r[i] = r[c];
            sh_k[i] = k[c];
            sh_kk[i] = kk[c];
            sh_b[i] = kk[c] * alpha[c];
            sh_decay[i] = exp(-DECAY_SCALE / (1.0 + exp(-z[c])));
        }
        workgroupBarrier();
        if (live) {
            var sa = 0.0;
            for (var j = 0u; j < n; j++) { sa -= s[j] * sh_kk[j]; }
            let vi = v[c];
            var acc = 0.0;
            for (var j = 0u; j < n; j++) {
                let nv = s[j] * sh_decay[j] + sa * sh_b[j] + vi * sh_k[j];
                s[j] = nv;
                acc += nv * sh_r[j];
            }
            y[c] = acc;
        }
        workgroupBarrier();
    }
    if (live) {
        for (var j = 0u; j < n; j++) { state[sbase + j] = s[j]; }
    }
}
