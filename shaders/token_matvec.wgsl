// DeepEmbed's per-token matrix (spec §1.7): out[t][j] = Σ_i a[t][i] · m[t][i·r + j], where row t
// of m holds token t's r×r matrix, row-major (r = 32 in released models).
//
// bindings: p, a [t_len][r], m [t_len][r·r], out [t_len][r]. One invocation per (j, t).
struct Params { t_len: u32, r: u32, pad0: u32, pad1: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> m: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let j = id.x;
    let t = id.y;
    if (j >= p.r || t >= p.t_len) { return; }
    var s = 0.0;
    for (var i = 0u; i < p.r; i++) {
        s += a[t * p.r + i] * m[(t * p.r + i) * p.r + j];
    }
    out[t * p.r + j] = s;
}
