// Shared helpers, prepended to every shader that reads weights.
//
// Weights of every format live in `array<u32>` (so no `shader-f16` is needed):
//   FORMAT 0 f32: one float per word (bitcast)
//   FORMAT 1 f16: two halves per word, element k in half k % 2
//   FORMAT 2 int8: four codes per word (little-endian bytes), rows padded to 32-blocks; value =
//                  code * scale[row][k / 32]
//   FORMAT 3 q4:  16 bytes per 32-block, byte j = code(e_j) | code(e_{j+16}) << 4; value =
//                 (code - 8) * scale[row][k / 32]
// Scales are f16, two per word, `nb` per row.

// The interface every weight reader shares: the format, the parameter block (one layout for
// matmul and embed; src/backend/gpu/record.rs fills it), and the packed rows with their scales
// at bindings 2 and 3. The shader declares its other bindings (1, 4, ...) itself.
override FORMAT: u32 = 0u;

struct Params {
    t_len: u32, k: u32, rows: u32, out_cols: u32, row0: u32, row_words: u32, nb: u32, epi: u32,
    mix: u32, pad0: u32, pad1: u32, pad2: u32,
    segs: vec4<u32>,
    epis: vec4<u32>,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(2) var<storage, read> w: array<u32>;
@group(0) @binding(3) var<storage, read> sc: array<u32>;

fn half_at(words: u32, i: u32) -> f32 {
    return unpack2x16float(words)[i & 1u];
}

fn weight_at(r: u32, k: u32) -> f32 {
    switch FORMAT {
        case 0u: { return bitcast<f32>(w[r * p.row_words + k]); }
        case 1u: { return half_at(w[r * p.row_words + k / 2u], k); }
        case 2u: {
            let word = w[r * p.row_words + k / 4u];
            let code = extractBits(bitcast<i32>(word), (k % 4u) * 8u, 8u);
            let si = r * p.nb + k / 32u;
            return f32(code) * half_at(sc[si / 2u], si);
        }
        default: {
            let j = k % 32u;
            let byte_index = (k / 32u) * 16u + (j % 16u);
            let byte = (w[r * p.row_words + byte_index / 4u] >> ((byte_index % 4u) * 8u)) & 0xffu;
            let code = i32((byte >> ((j / 16u) * 4u)) & 0xfu) - 8;
            let si = r * p.nb + k / 32u;
            return f32(code) * half_at(sc[si / 2u], si);
        }
    }
}
