// y[t][row0 + r] = epi(Σ_k in[t][k] · W[r][k])    (W stored [rows, k], any FORMAT; see common.wgsl)
//   in = x, or with p.mix = 1 the token-shift lerp in = x + d ⊙ mu (spec §2.3 step 3), done
//   while loading so the lerp costs no dispatch of its own.
//   p.mix = 2: a group of up to 4 matrices concatenated by rows; segment s ends at row
//   p.segs[s], uses mu[s·k ..] for its lerp and epilogue p.epis[s], and writes its [t_len, rows_s]
//   block at y[t_len·start_s ..] (segment-major, so each block is contiguous)
//   epi (p.epi): 0 none, 1 tanh, 2 sigmoid, 3 + bias[row0 + r], 4 sigmoid(· + bias[row0 + r]),
//                5 accumulate (y += ·: the residual add), 6 relu(·)²
//   (the LoRA chains of spec §2.3 steps 5-7 and 10 take their activations here, not in
//   separate dispatches)
//
// bindings: p (uniform params), x [t_len][k] f32, w packed rows of this part, sc block scales,
//           y [t_len][out_cols] f32, bias [out_cols] f32, d [t_len][k] f32, mu [k] f32 (any
//           buffer when unused)
// One workgroup of 64 invocations per (row, tile of TT tokens); the invocations split k and
// reduce in workgroup memory. Each weight is read once per tile: TT = 1 for decode, and the
// prefill pipeline sets TT = MAX_TT, so a prompt reads the weights once per MAX_TT tokens
// instead of once per token. Rows are dispatched as (x, y) = (r % 32768, r / 32768) because a
// dispatch dimension is limited to 65535; tiles along z.
override TT: u32 = 1u;
const MAX_TT: u32 = 16u;

@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(5) var<storage, read> bias: array<f32>;
@group(0) @binding(6) var<storage, read> d: array<f32>;
@group(0) @binding(7) var<storage, read> mu: array<f32>;

var<workgroup> partial: array<f32, 1024>; // 64 × MAX_TT

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let r = wg.x + wg.y * 32768u;
    let t0 = wg.z * TT;
    let nt = min(TT, p.t_len - min(t0, p.t_len));
    // segment of this row (group mode)
    let grow = p.row0 + r;
    var seg = 0u;
    if (p.mix == 2u) {
        while (seg < 3u && grow >= p.segs[seg]) { seg++; }
    }
    let mu0 = seg * p.k;
    var acc: array<f32, MAX_TT>;
    if (r < p.rows) {
        for (var k = li; k < p.k; k += 64u) {
            let wv = weight_at(r, k);
            var mk = 0.0;
            if (p.mix != 0u) { mk = mu[mu0 + k]; }
            // A constant trip count (TT is fixed per pipeline), so the loop unrolls and `acc`
            // stays in registers; tokens past the end are skipped inside.
            for (var j = 0u; j < TT; j++) {
                if (j < nt) {
                    let i = (t0 + j) * p.k + k;
                    var xin = x[i];
                    if (p.mix != 0u) { xin += d[i] * mk; }
                    acc[j] += xin * wv;
                }
            }
        }
    }
    for (var j = 0u; j < TT; j++) {
        partial[j * 64u + li] = acc[j];
    }
    workgroupBarrier();
    for (var s = 32u; s > 0u; s = s >> 1u) {
        if (li < s) {
            for (var j = 0u; j < TT; j++) {
                partial[j * 64u + li] += partial[j * 64u + li + s];
            }
        }
        workgroupBarrier();
    }
    // Invocation j writes token t0 + j.
    if (li < nt && r < p.rows) {
        let t = t0 + li;
        let o = p.row0 + r;
        var v = partial[li * 64u];
        var epi = p.epi;
        var dst = t * p.out_cols + o;
        if (p.mix == 2u) {
            epi = p.epis[seg];
            var start = 0u;
            if (seg > 0u) { start = p.segs[seg - 1u]; }
            dst = p.t_len * start + t * (p.segs[seg] - start) + (o - start);
        }
        switch epi {
            case 1u: { v = tanh(v); }
            case 2u: { v = 1.0 / (1.0 + exp(-v)); }
            case 3u: { v = v + bias[o]; }
            case 4u: { v = 1.0 / (1.0 + exp(-(v + bias[o]))); }
            case 5u: { v = y[dst] + v; }
            case 6u: { let q = max(v, 0.0); v = q * q; }
            default: {}
        }
        y[dst] = v;
    }
}
