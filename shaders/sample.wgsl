// Sampling on the device (src/sampler.rs is the reference): one workgroup picks the next token
// from the logits so that only its id is read back.
//
// As the CPU sampler: masked ids and non-finite logits are never chosen; the logit bias is added,
// then the presence/frequency penalties subtracted; greedy takes the highest value (lowest id on a
// tie); otherwise top-p keeps every token whose probability is >= the one where the sorted mass
// reaches top_p (ties kept), top-k the first k of (value desc, id asc), and the kept tokens are
// weighted exp((v - max) / T). Differences, by design: the sums are f32 in a fixed tree order (the
// CPU's are f64 in sorted order), so a token right at the top-p edge may fall the other way; and
// the draw walks the kept tokens in id order (the CPU walks them by probability), so the same
// uniform can pick another token from the same distribution. The uniform comes from the host's
// seeded generator, one per sampled token, as on the CPU.
//
// The cut-offs are found without sorting: a binary search over the 32-bit order-preserving key of
// the values ("the largest key whose tail holds >= top_p of the mass", "... >= K tokens"), one pass
// over the vocabulary per step.
//
// bindings: p; logits [V]; job [u32]: [uniform (f32 bits), bias count, then (id, value bits)
// pairs]; mask [V/32] (bit set = allowed; ignored when p.has_mask is 0); occ [V] decayed
// occurrence counts (updated here after the choice); scratch [2V] (adjusted values, then their
// exp); out [1]: the chosen id, or NONE when no token can be sampled.
const WG: u32 = 256u;
const NONE: u32 = 0xffffffffu;
// The lowest finite f32 marks "not a candidate" (WGSL has no constant infinity); candidates are
// clamped to the next value above it, or below the highest. Written exactly: Tint refuses a
// literal that rounds past the f32 range.
const LOWEST: f32 = -340282346638528859811704183484516925440.0;
const LOWEST_CAND: f32 = -340282326356119256160033759537265639424.0;

struct Params {
    vocab: u32,
    top_k: u32,
    greedy: u32,
    has_mask: u32,
    inv_temp: f32,
    top_p: f32,
    presence: f32,
    frequency: f32,
    decay: f32,
    use_top_p: u32,
    pad0: u32,
    pad1: u32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> job: array<u32>;
@group(0) @binding(3) var<storage, read> mask: array<u32>;
@group(0) @binding(4) var<storage, read_write> occ: array<f32>;
@group(0) @binding(5) var<storage, read_write> scratch: array<f32>;
@group(0) @binding(6) var<storage, read_write> out: array<u32>;

var<workgroup> red_u: array<u32, WG>;
var<workgroup> red_v: array<f32, WG>;
var<workgroup> base_f: array<f32, WG>;
var<workgroup> base_u: array<u32, WG>;
var<workgroup> wsum: array<f32, WG>;
var<workgroup> bcast: u32;

fn finite(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7f800000u) != 0x7f800000u;
}

// Order-preserving key of a candidate's value (0 for a non-candidate, below every candidate).
fn key(v: f32) -> u32 {
    if (!(v > LOWEST)) { return 0u; }
    let b = bitcast<u32>(v);
    if ((b & 0x80000000u) != 0u) { return ~b; }
    return b | 0x80000000u;
}

fn sum_u(li: u32, x: u32) -> u32 {
    red_u[li] = x;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s >> 1u) {
        if (li < s) { red_u[li] += red_u[li + s]; }
        workgroupBarrier();
    }
    if (li == 0u) { bcast = red_u[0]; }
    // Uniform, so that callers may branch on it around barriers.
    return workgroupUniformLoad(&bcast);
}

fn max_u(li: u32, x: u32) -> u32 {
    red_u[li] = x;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s >> 1u) {
        if (li < s) { red_u[li] = max(red_u[li], red_u[li + s]); }
        workgroupBarrier();
    }
    if (li == 0u) { bcast = red_u[0]; }
    return workgroupUniformLoad(&bcast);
}

// The mass (sum of exp(v - max)) of the tokens whose key is >= k.
fn tail_mass(li: u32, k: u32) -> f32 {
    var s = 0.0;
    for (var i = li; i < p.vocab; i += WG) {
        if (key(scratch[i]) >= k) { s += scratch[p.vocab + i]; }
    }
    return reduce(li, s);
}

// The number of tokens whose key is >= k (k >= 1: candidates only).
fn tail_count(li: u32, k: u32) -> u32 {
    var n = 0u;
    for (var i = li; i < p.vocab; i += WG) {
        if (key(scratch[i]) >= k) { n += 1u; }
    }
    return sum_u(li, n);
}

// Exclusive prefix sums over the workgroup's entries (serial: 256 adds).
fn scan_f(li: u32) {
    workgroupBarrier();
    if (li == 0u) {
        var acc = 0.0;
        for (var t = 0u; t < WG; t++) {
            let x = base_f[t];
            base_f[t] = acc;
            acc += x;
        }
    }
    workgroupBarrier();
}

fn scan_u(li: u32) {
    workgroupBarrier();
    if (li == 0u) {
        var acc = 0u;
        for (var t = 0u; t < WG; t++) {
            let x = base_u[t];
            base_u[t] = acc;
            acc += x;
        }
    }
    workgroupBarrier();
}

// Each invocation's contiguous chunk of ids (the walks go in id order).
fn chunk_bounds(li: u32) -> vec2<u32> {
    let chunk = (p.vocab + WG - 1u) / WG;
    let start = min(li * chunk, p.vocab);
    return vec2<u32>(start, min(start + chunk, p.vocab));
}

// The weight exp((v - m)/T) of the kept tokens of key `k` (every one, or the first `need` in id
// order). Leaves each chunk's weight in wsum, its weight offset in base_f and its first tie rank
// in base_u.
fn walk_sum(li: u32, k: u32, need: u32, m: f32) -> f32 {
    let r = chunk_bounds(li);
    var n = 0u;
    for (var i = r.x; i < r.y; i++) {
        if (key(scratch[i]) == k) { n += 1u; }
    }
    base_u[li] = n;
    scan_u(li);
    var rank = base_u[li];
    var w = 0.0;
    for (var i = r.x; i < r.y; i++) {
        let v = scratch[i];
        if (key(v) == k) {
            if (need == NONE || rank < need) { w += exp((v - m) * p.inv_temp); }
            rank += 1u;
        }
    }
    wsum[li] = w;
    base_f[li] = w;
    scan_f(li);
    return reduce(li, w);
}

// The kept token of key `k` where the running weight passes `xr`, walking in id order (as the
// CPU: `if x < w pick, else x -= w`); the last one when rounding left `xr` past the total.
fn walk_pick(li: u32, k: u32, need: u32, xr: f32, m: f32) -> u32 {
    _ = walk_sum(li, k, need, m);
    let r = chunk_bounds(li);
    let w0 = base_f[li];
    let mine = wsum[li] > 0.0 && xr >= w0 && xr < w0 + wsum[li];
    var rank = base_u[li];
    var rem = xr - w0;
    var last = NONE;
    var found = NONE;
    for (var i = r.x; i < r.y; i++) {
        let v = scratch[i];
        if (key(v) == k) {
            if (need == NONE || rank < need) {
                let w = exp((v - m) * p.inv_temp);
                last = i;
                if (mine && found == NONE) {
                    if (rem < w) { found = i; } else { rem -= w; }
                }
            }
            rank += 1u;
        }
    }
    let f = max_u(li, select(0u, found + 1u, found != NONE));
    let l = max_u(li, select(0u, last + 1u, last != NONE));
    if (f > 0u) { return f - 1u; }
    // 0 - 1 wraps to NONE when key k has no kept token.
    return l - 1u;
}

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) li: u32) {
    let v_n = p.vocab;
    // 1. The allowed logits (LOWEST for a masked id), then the bias by one invocation (repeated
    //    ids add up, as on the CPU, which adds the bias before anything else).
    for (var i = li; i < v_n; i += WG) {
        var ok = true;
        if (p.has_mask != 0u) { ok = ((mask[i / 32u] >> (i % 32u)) & 1u) != 0u; }
        scratch[i] = select(LOWEST, logits[i], ok);
    }
    storageBarrier();
    if (li == 0u) {
        let n_bias = job[1];
        for (var b = 0u; b < n_bias; b++) {
            let id = job[2u + 2u * b];
            if (id < v_n && scratch[id] > LOWEST) { scratch[id] += bitcast<f32>(job[3u + 2u * b]); }
        }
    }
    storageBarrier();
    // 2. Candidates are the finite values; penalties subtracted, clamped to finite; the highest
    //    key (ties: the lowest id) and the candidate count.
    var best_k = 0u;
    var best_i = NONE;
    var count = 0u;
    for (var i = li; i < v_n; i += WG) {
        var v = scratch[i];
        if (finite(v) && v > LOWEST) {
            let o = occ[i];
            if (o > 0.0) { v -= p.presence + o * p.frequency; }
            v = clamp(v, LOWEST_CAND, -LOWEST);
            // -0 and +0 are one value to the CPU (a tie, lowest id wins), but not to `key`.
            if (v == 0.0) { v = 0.0; }
            scratch[i] = v;
            count += 1u;
            let k = key(v);
            if (k > best_k) { best_k = k; best_i = i; }
        } else {
            scratch[i] = LOWEST;
        }
    }
    storageBarrier();
    let top_key = max_u(li, best_k);
    // The lowest id holding the top key.
    var mine = NONE;
    if (best_k == top_key) { mine = best_i; }
    let top_id = NONE - max_u(li, NONE - mine);
    let n_cand = sum_u(li, count);
    let m = scratch[min(top_id, v_n - 1u)];
    var pick = top_id;
    if (p.greedy == 0u) {
        // 3. exp(v - max) and the total mass.
        var z = 0.0;
        for (var i = li; i < v_n; i += WG) {
            var e = 0.0;
            if (key(scratch[i]) > 0u) { e = exp(scratch[i] - m); }
            scratch[v_n + i] = e;
            z += e;
        }
        storageBarrier();
        z = reduce(li, z);
        // 4. top-p: the largest key whose tail holds >= top_p of the mass (key 1 holds all of it).
        var lo = 1u;
        if (p.use_top_p != 0u) {
            var hi = top_key;
            let goal = p.top_p * z;
            for (var it = 0u; it < 32u; it++) {
                let mid = lo + (hi - lo + 1u) / 2u;
                let s = tail_mass(li, mid);
                if (lo < hi) {
                    if (s >= goal) { lo = mid; } else { hi = mid - 1u; }
                }
            }
        }
        // 5. top-k: keep the first K in (value desc, id asc); the K-th key is `cut`, and `need`
        //    of its ties (the lowest ids) are kept.
        var cut = lo;
        var need = NONE;
        if (p.top_k > 0u) {
            let kept = tail_count(li, lo);
            if (p.top_k < kept) {
                var klo = lo;
                var khi = top_key;
                for (var it = 0u; it < 32u; it++) {
                    let mid = klo + (khi - klo + 1u) / 2u;
                    let c = tail_count(li, mid);
                    if (klo < khi) {
                        if (c >= p.top_k) { klo = mid; } else { khi = mid - 1u; }
                    }
                }
                cut = klo;
                // A clamped value's key is below 0xffffffff, so cut + 1 cannot wrap.
                need = p.top_k - tail_count(li, cut + 1u);
            }
        }
        // 6. The draw, in the CPU's order (value desc, id asc), so that the same uniform picks
        //    the same token: the kept tokens above `cut` by a binary search over keys for the
        //    one whose tail mass passes x, then the ties of that key walked in id order.
        var hi_mass = 0.0;
        for (var i = li; i < v_n; i += WG) {
            let v = scratch[i];
            if (key(v) > cut) { hi_mass += exp((v - m) * p.inv_temp); }
        }
        hi_mass = reduce(li, hi_mass);
        let tie_mass = walk_sum(li, cut, need, m);
        let total = hi_mass + tie_mass;
        let x = bitcast<f32>(job[0]) * total;
        // The largest key k > cut with mass(key >= k) > x (cut when x falls among cut's ties).
        var slo = cut;
        var shi = top_key;
        for (var it = 0u; it < 32u; it++) {
            let mid = slo + (shi - slo + 1u) / 2u;
            var s = 0.0;
            for (var i = li; i < v_n; i += WG) {
                let v = scratch[i];
                if (key(v) >= mid) { s += exp((v - m) * p.inv_temp); }
            }
            s = reduce(li, s);
            if (slo < shi) {
                if (s > x) { slo = mid; } else { shi = mid - 1u; }
            }
        }
        let k_sel = slo;
        // The mass of the keys above k_sel, then the walk over k_sel's (kept) tokens.
        var above = 0.0;
        for (var i = li; i < v_n; i += WG) {
            let v = scratch[i];
            if (key(v) > k_sel) { above += exp((v - m) * p.inv_temp); }
        }
        above = reduce(li, above);
        var sel_need = NONE;
        if (k_sel == cut) { sel_need = need; }
        pick = walk_pick(li, k_sel, sel_need, x - above, m);
        // Rounding can leave the walk empty-handed; the top token is always kept.
        if (pick == NONE) { pick = top_id; }
    }
    if (n_cand == 0u) { pick = NONE; }
    // 7. The occurrence counts for the penalties: decay every count, then count the choice.
    for (var i = li; i < v_n; i += WG) {
        var o = occ[i];
        if (p.decay != 1.0) { o *= p.decay; }
        if (i == pick) { o += 1.0; }
        if (p.decay != 1.0 || i == pick) { occ[i] = o; }
    }
    if (li == 0u) { out[0] = pick; }
}
