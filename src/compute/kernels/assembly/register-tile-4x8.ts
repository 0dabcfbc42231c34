// The register tiles of the project's GEMMs in WebAssembly SIMD (AssemblyScript, imported by the Winograd
// modules ./winograd-conv2d.ts and ./winograd-conv2d-backprop-filter.ts and by ./packed-gemm-conv2d.ts). Written by
// hand for speed and determinism: V8 compiles these loops to 8 vmulps + 8 vaddps per step with every accumulator in
// a register, about 11 of the 16 flops per cycle that one Zen 4/5 core's two 128-bit multiply and two add pipes
// allow (unrolling the loop or wider tiles made V8 spill an accumulator and ran slower; see bench/kernel-bench.ts).
//
// A tile is 4 rows × 8 columns of C = A·B: eight f32x4 accumulators, each step k loading two f32x4 of a packed
// panel of B (8 columns, [k][8]) and splatting four f32 of a packed panel of A ([k][4]). Plain IEEE f32 mul then add (no FMA, no relaxed
// SIMD): every sum runs in k order, so the bytes depend only on the inputs.

// @ts-ignore: decorator
@inline
function acc(a: v128, x: v128, w: v128): v128 {
  return f32x4.add(a, f32x4.mul(x, w));
}

/**
 * C rows r = 0..3 (at out + r·os bytes, 8 f32 each) = Σ_{k < K} A[k][r] · B[k][0..8], summed from +0 in k
 * order. A is a packed panel of 4 rows, [K][4] f32 at a (the four values of one k side by side: one pointer,
 * splats at offsets 0, 4, 8 and 12, which V8 runs ~13% faster than four row pointers); B is [K][8] f32 at w.
 */
export function tile4x8(a: usize, w: usize, K: i32, out: usize, os: usize): void {
  let c00 = f32x4.splat(0), c01 = f32x4.splat(0), c10 = f32x4.splat(0), c11 = f32x4.splat(0);
  let c20 = f32x4.splat(0), c21 = f32x4.splat(0), c30 = f32x4.splat(0), c31 = f32x4.splat(0);
  const end = a + (<usize>K << 4);
  while (a < end) {
    const w0 = v128.load(w);
    const w1 = v128.load(w, 16);
    const x0 = v128.load32_splat(a);
    c00 = acc(c00, x0, w0);
    c01 = acc(c01, x0, w1);
    const x1 = v128.load32_splat(a, 4);
    c10 = acc(c10, x1, w0);
    c11 = acc(c11, x1, w1);
    const x2 = v128.load32_splat(a, 8);
    c20 = acc(c20, x2, w0);
    c21 = acc(c21, x2, w1);
    const x3 = v128.load32_splat(a, 12);
    c30 = acc(c30, x3, w0);
    c31 = acc(c31, x3, w1);
    a += 16;
    w += 32;
  }
  v128.store(out, c00);
  v128.store(out, c01, 16);
  out += os;
  v128.store(out, c10);
  v128.store(out, c11, 16);
  out += os;
  v128.store(out, c20);
  v128.store(out, c21, 16);
  out += os;
  v128.store(out, c30);
  v128.store(out, c31, 16);
}

/**
 * S rows r = 0..3 (at s + r·ss bytes, 8 f32 each) += Σ_{q < n} X_q[r] · Z_q[0..8], the sum running in q order
 * on top of S's values: X_q is 4 consecutive f32 at x + q·xs, Z_q 8 f32 at z + q·zs. A reduction GEMM (the
 * filter gradients' sum over pixels or tiles) carried across calls without changing its order.
 */
export function tile4x8Accumulate(x: usize, xs: usize, z: usize, zs: usize, n: i32, s: usize, ss: usize): void {
  const s1 = s + ss;
  const s2 = s1 + ss;
  const s3 = s2 + ss;
  let c00 = v128.load(s), c01 = v128.load(s, 16), c10 = v128.load(s1), c11 = v128.load(s1, 16);
  let c20 = v128.load(s2), c21 = v128.load(s2, 16), c30 = v128.load(s3), c31 = v128.load(s3, 16);
  for (let q = 0; q < n; q++) {
    const z0 = v128.load(z);
    const z1 = v128.load(z, 16);
    const x0 = v128.load32_splat(x);
    c00 = acc(c00, x0, z0);
    c01 = acc(c01, x0, z1);
    const x1 = v128.load32_splat(x, 4);
    c10 = acc(c10, x1, z0);
    c11 = acc(c11, x1, z1);
    const x2 = v128.load32_splat(x, 8);
    c20 = acc(c20, x2, z0);
    c21 = acc(c21, x2, z1);
    const x3 = v128.load32_splat(x, 12);
    c30 = acc(c30, x3, z0);
    c31 = acc(c31, x3, z1);
    x += xs;
    z += zs;
  }
  v128.store(s, c00);
  v128.store(s, c01, 16);
  v128.store(s1, c10);
  v128.store(s1, c11, 16);
  v128.store(s2, c20);
  v128.store(s2, c21, 16);
  v128.store(s3, c30);
  v128.store(s3, c31, 16);
}
