// Spec §2.3 steps 8-13 in one kernel, for T tokens (step numbers as in the spec):
//   8.  κ̂ = (k ⊙ k_k) / max(‖k ⊙ k_k‖₂ per head, 1e-12)
//   9.  k̃ = k ⊙ (1 + (α − 1) ⊙ k_a)
//   10. ṽ = v + (v_first − v) ⊙ gate (layers ≥ 1, p.residual = 1), else ṽ = v
//   5/11. decay = exp(−e^{−1/2}·σ(z)); sa_i = Σ_j S[i][j]·(−κ̂_j);
//         S'[i][j] = S[i][j]·decay_j + sa_i·κ̂_j·α_j + ṽ_i·k̃_j;  y_i = Σ_j S'[i][j]·r_j
//   12. ŷ = GroupNorm_h(y) (eps 64e-5) · ln_w + ln_b
//   13. o = (ŷ + β_h·ṽ) ⊙ g,  β_h = Σ_j r_j·k̃_j·r_k_j
//
// bindings: p; acts = r ‖ z ‖ k ‖ v ‖ α ‖ g ‖ v_first ‖ gate, each [t_len][C] (packed by copies
// to stay within 8 storage buffers); consts = k_k ‖ k_a ‖ r_k ‖ ln_w ‖ ln_b, each [C];
// state [H][N][N] (read-write, [h][value i][key j]); out [t_len][C].
// One workgroup per head, one invocation per value row i (N ≤ 64) holding S[i][·] in registers.
struct Params { t_len: u32, n: u32, cols: u32, residual: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> acts: array<f32>;
@group(0) @binding(2) var<storage, read> consts: array<f32>;
@group(0) @binding(3) var<storage, read_write> state: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

var<workgroup> sh_r: array<f32, 64>;
var<workgroup> sh_k: array<f32, 64>;
var<workgroup> sh_kk: array<f32, 64>;
var<workgroup> sh_b: array<f32, 64>;
var<workgroup> sh_decay: array<f32, 64>;
const WG: u32 = 64u;

fn act(slot: u32, idx: u32) -> f32 {
    return acts[slot * p.t_len * p.cols + idx];
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) i: u32) {
    let h = wg.x;
    let n = p.n;
    let live = i < n;
    let ch = h * n + i;  // channel
    var s: array<f32, 64>;
    let sbase = h * n * n + i * n;
    if (live) {
        for (var j = 0u; j < n; j++) { s[j] = state[sbase + j]; }
    }
    for (var t = 0u; t < p.t_len; t++) {
        let c = t * p.cols + ch;
        var k = 0.0; var kk = 0.0; var kt = 0.0; var vt = 0.0; var alpha = 0.0; var r = 0.0;
        if (live) {
            k = act(2u, c);
            kk = k * consts[ch];
            alpha = act(4u, c);
            r = act(0u, c);
            kt = k * (1.0 + (alpha - 1.0) * consts[p.cols + ch]);
            let v = act(3u, c);
            vt = v;
            if (p.residual == 1u) { vt = v + (act(6u, c) - v) * act(7u, c); }
        }
        // 8. per-head L2 normalisation of k ⊙ k_k
        let norm = max(sqrt(reduce(i, kk * kk)), 1e-12);
        kk = kk / norm;
        if (live) {
            sh_r[i] = r;
            sh_k[i] = kt;
            sh_kk[i] = kk;
            sh_b[i] = kk * alpha;
            sh_decay[i] = exp(-DECAY_SCALE / (1.0 + exp(-act(1u, c))));
        }
        workgroupBarrier();
        var y = 0.0;
        if (live) {
            var sa = 0.0;
            for (var j = 0u; j < n; j++) { sa -= s[j] * sh_kk[j]; }
            for (var j = 0u; j < n; j++) {
                let nv = s[j] * sh_decay[j] + sa * sh_b[j] + vt * sh_k[j];
                s[j] = nv;
                y += nv * sh_r[j];
            }
        }
        // 12-13. GroupNorm over the head, bonus, gate
        let mean = reduce(i, y) / f32(n);
        var d = 0.0;
        if (live) { d = y - mean; }
        let var_ = reduce(i, d * d) / f32(n);
        var bonus = 0.0;
        if (live) { bonus = r * kt * consts[2u * p.cols + ch]; }
        let beta = reduce(i, bonus);
        if (live) {
            let yn = d * inverseSqrt(var_ + GN_EPS) * consts[3u * p.cols + ch] + consts[4u * p.cols + ch];
            out[c] = (yn + beta * vt) * act(5u, c);
        }
    }
    if (live) {
        for (var j = 0u; j < n; j++) { state[sbase + j] = s[j]; }
    }
}
