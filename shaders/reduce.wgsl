// Shared helper, prepended to the shaders that sum across a workgroup (norm, norm_shift,
// gn_bonus_gate, wkv_fused). Each of them defines `const WG: u32` (its workgroup size, a power
// of two) and uses `@workgroup_size(WG)`.

var<workgroup> red: array<f32, WG>;

// The sum of `x` over the workgroup's WG invocations; every invocation must call it (barriers).
// Pairwise tree: the rounding error grows with log2(WG), and the order is fixed.
fn reduce(li: u32, x: f32) -> f32 {
    red[li] = x;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s >> 1u) {
        if (li < s) { red[li] += red[li + s]; }
        workgroupBarrier();
    }
    let total = red[0];
    workgroupBarrier();
    return total;
}
