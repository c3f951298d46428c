// Token shift (spec §2.3 step 2, §4): d[t] = prev(t) − u[t], prev(0) = state, prev(t) = u[t−1];
// afterwards state = u[T−1].
//
// bindings: p, u [t_len][cols], state [cols] (read-write), d [t_len][cols].
// One invocation per channel walks the tokens, so the state update has no race.
struct Params { t_len: u32, cols: u32, pad0: u32, pad1: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> u: array<f32>;
@group(0) @binding(2) var<storage, read_write> state: array<f32>;
@group(0) @binding(3) var<storage, read_write> d: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let c = id.x;
    if (c >= p.cols) { return; }
    var prev = state[c];
    for (var t = 0u; t < p.t_len; t++) {
        let cur = u[t * p.cols + c];
        d[t * p.cols + c] = prev - cur;
        prev = cur;
    }
    state[c] = prev;
}
