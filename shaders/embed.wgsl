// out[t][c] = W[tokens[t]][c]        (the embedding table in any FORMAT; see common.wgsl)
//
// bindings: p, tokens [t_len] u32, w packed rows of this part (rows row0 .. row0+rows),
//           sc scales, out [t_len][k] f32. One invocation per (c, t); tokens outside this part
// are left to the other parts' dispatches.
@group(0) @binding(1) var<storage, read> tokens: array<u32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let c = id.x;
    let t = id.y;
    if (c >= p.k || t >= p.t_len) { return; }
    let tok = tokens[t];
    if (tok < p.row0 || tok >= p.row0 + p.rows) { return; }
    out[t * p.k + c] = weight_at(tok - p.row0, c);
}
