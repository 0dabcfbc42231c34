// The transforms of Winograd's F(2×2, 3×3) in WebAssembly SIMD (AssemblyScript, imported by ./winograd-conv2d.ts
// and ./winograd-conv2d-backprop-filter.ts), on f32x4 vectors of 4 channels at a time. Written by hand for speed and
// determinism: each is a fixed sequence of IEEE f32 adds and multiplies (no FMA), so a tile transforms to the same
// bytes on every machine. Same functions, same arguments as ./winograd-f4x4-3x3.ts (which explains the method),
// for 4×4 input tiles and 2×2 output blocks: 16 multiplications instead of 36, with smaller rounding errors.
//   Bᵀ = [1 0 −1 0; 0 1 1 0; 0 −1 1 0; 0 1 0 −1]   G = [1 0 0; ½ ½ ½; ½ −½ ½; 0 0 1]   Aᵀ = [1 1 1 0; 0 1 −1 −1]

const ROW: usize = 64; // bytes of one scratch row: 4 vectors

// @ts-ignore: decorator
@inline
function bt(s: usize, ss: usize, d: usize, ds: usize): void {
  const d0 = v128.load(s);
  const d1 = v128.load(s + ss);
  const d2 = v128.load(s + 2 * ss);
  const d3 = v128.load(s + 3 * ss);
  v128.store(d, f32x4.sub(d0, d2));
  v128.store(d + ds, f32x4.add(d1, d2));
  v128.store(d + 2 * ds, f32x4.sub(d2, d1));
  v128.store(d + 3 * ds, f32x4.sub(d1, d3));
}

// @ts-ignore: decorator
@inline
function at(s: usize, ss: usize, d: usize, ds: usize): void {
  const m0 = v128.load(s);
  const m1 = v128.load(s + ss);
  const m2 = v128.load(s + 2 * ss);
  const m3 = v128.load(s + 3 * ss);
  v128.store(d, f32x4.add(f32x4.add(m0, m1), m2));
  v128.store(d + ds, f32x4.sub(f32x4.sub(m1, m2), m3));
}

// @ts-ignore: decorator
@inline
function g(s: usize, ss: usize, d: usize, ds: usize): void {
  const g0 = v128.load(s);
  const g1 = v128.load(s + ss);
  const g2 = v128.load(s + 2 * ss);
  const sum = f32x4.add(g0, g2);
  const half = f32x4.splat(0.5);
  v128.store(d, g0);
  v128.store(d + ds, f32x4.mul(f32x4.add(sum, g1), half));
  v128.store(d + 2 * ds, f32x4.mul(f32x4.sub(sum, g1), half));
  v128.store(d + 3 * ds, g2);
}

// @ts-ignore: decorator
@inline
function a(s: usize, ss: usize, d: usize, ds: usize): void {
  const y0 = v128.load(s);
  const y1 = v128.load(s + ss);
  v128.store(d, y0);
  v128.store(d + ds, f32x4.add(y0, y1));
  v128.store(d + 2 * ds, f32x4.sub(y0, y1));
  v128.store(d + 3 * ds, f32x4.neg(y1));
}

// @ts-ignore: decorator
@inline
function gt(s: usize, ss: usize, d: usize, ds: usize): void {
  const s0 = v128.load(s);
  const s1 = v128.load(s + ss);
  const s2 = v128.load(s + 2 * ss);
  const s3 = v128.load(s + 3 * ss);
  const half = f32x4.splat(0.5);
  const p = f32x4.mul(f32x4.add(s1, s2), half);
  v128.store(d, f32x4.add(s0, p));
  v128.store(d + ds, f32x4.mul(f32x4.sub(s1, s2), half));
  v128.store(d + 2 * ds, f32x4.add(p, s3));
}

export function inputTile(src: usize, rs: usize, cs: usize, dst: usize, ds: usize, tmp: usize): void {
  for (let j: usize = 0; j < 4; j++) bt(src + j * cs, rs, tmp + j * 16, ROW);
  for (let i: usize = 0; i < 4; i++) bt(tmp + i * ROW, 16, dst + i * 4 * ds, ds);
}

export function outputTile(src: usize, ss: usize, dst: usize, rs: usize, cs: usize, rows: i32, cols: i32, lanes: i32, tmp: usize): void {
  for (let j: usize = 0; j < 4; j++) at(src + j * ss, 4 * ss, tmp + j * 16, ROW);
  if (rows == 2 && cols == 2 && lanes == 4) {
    for (let u: usize = 0; u < 2; u++) at(tmp + u * ROW, 16, dst + u * rs, cs);
    return;
  }
  const out = tmp + 2 * ROW;
  for (let u: usize = 0; u < <usize>rows; u++) {
    at(tmp + u * ROW, 16, out, 16);
    for (let v: usize = 0; v < <usize>cols; v++) storeLanes(dst + u * rs + v * cs, v128.load(out + v * 16), lanes);
  }
}

export function filterTile(src: usize, dst: usize, ds: usize, tmp: usize): void {
  for (let j: usize = 0; j < 3; j++) g(src + j * 16, 48, tmp + j * 16, ROW);
  for (let i: usize = 0; i < 4; i++) g(tmp + i * ROW, 16, dst + i * 4 * ds, ds);
}

export function gradTile(src: usize, rs: usize, cs: usize, dst: usize, ds: usize, tmp: usize): void {
  for (let v: usize = 0; v < 2; v++) a(src + v * cs, rs, tmp + v * 16, ROW);
  for (let i: usize = 0; i < 4; i++) a(tmp + i * ROW, 16, dst + i * 4 * ds, ds);
}

export function filterGradTile(src: usize, ss: usize, dst: usize, tmp: usize): void {
  for (let j: usize = 0; j < 4; j++) gt(src + j * ss, 4 * ss, tmp + j * 16, ROW);
  for (let i: usize = 0; i < 3; i++) gt(tmp + i * ROW, 16, dst + i * 48, 16);
}

// @ts-ignore: decorator
@inline
function storeLanes(p: usize, v: v128, n: i32): void {
  if (n >= 4) {
    v128.store(p, v);
  } else {
    store<f32>(p, f32x4.extract_lane(v, 0));
    if (n > 1) store<f32>(p, f32x4.extract_lane(v, 1), 4);
    if (n > 2) store<f32>(p, f32x4.extract_lane(v, 2), 8);
  }
}
