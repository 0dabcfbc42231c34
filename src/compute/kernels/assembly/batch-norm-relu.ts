// relu(batchNorm(x)) in training mode and its gradient, over NHWC data seen as m rows of C channels
// (AssemblyScript; built by `npm run build:wasm:batch-norm`; loaded by ../batch-norm-relu-wasm.ts).
//
// The arithmetic is exactly that of the plain-JavaScript version it replaces: every per-channel sum is an f64
// accumulated row by row in order, every element is computed in f64 from its f32 inputs and rounded to f32
// once when stored. JavaScript numbers are IEEE f64 too, so the results are bit-identical to it (and the same
// on every machine): no FMA, no reassociation, sqrt and division correctly rounded.
//
// Two channels at a time in f64x2 lanes (f32 pairs promoted exactly, results demoted with the same rounding as
// a scalar store; the lanes never mix, so each channel sees the scalar sequence of operations), a scalar loop
// for a last odd channel: about 2× fewer instructions than one channel at a time.
//
// Memory: the host calls reserve(bytes) for a scratch area, lays out its arrays there, copies inputs in and
// results out. Nothing here keeps state between calls.

let base: usize = 0;

/** Makes room for `bytes` bytes of scratch (16-byte aligned) and returns its address; 0 when memory can't grow. */
export function reserve(bytes: usize): usize {
  if (base == 0) base = (__heap_base + 15) & ~(<usize>15);
  const need = base + bytes;
  const have = <usize>memory.size() << 16;
  if (need > have && memory.grow(<i32>((need - have + 0xffff) >>> 16)) < 0) return 0;
  return base;
}

/** Two f32 at p as f64x2 (exact). */
// @ts-ignore: decorator
@inline
function load2(p: usize): v128 {
  return f64x2.promote_low_f32x4(v128.load64_zero(p));
}

/** Two f64 rounded to f32 (as scalar stores round), stored at p. */
// @ts-ignore: decorator
@inline
function store2(p: usize, v: v128): void {
  v128.store64_lane(p, f32x4.demote_f64x2_zero(v), 0);
}

/** The two f32 at p where the two f32 at q are > 0, else 0, as f64x2 (the ReLU's gradient gate). */
// @ts-ignore: decorator
@inline
function gate2(p: usize, q: usize): v128 {
  const g = v128.load64_zero(q);
  return f64x2.promote_low_f32x4(v128.bitselect(v128.load64_zero(p), f32x4.splat(0), f32x4.gt(g, f32x4.splat(0))));
}

/**
 * Forward. x, y, xhat: m·C f32; gamma, beta: C f32; mean, variance, invStd: C f64 (out, 16-byte aligned).
 * mean and the biased variance are the batch's; y = relu(γ·x̂ + β) with x̂ = (x − mean)·invStd.
 */
export function forward(
  x: usize, m: i32, C: i32, gamma: usize, beta: usize, epsilon: f64,
  y: usize, xhat: usize, mean: usize, variance: usize, invStd: usize,
): void {
  const rows = <usize>m;
  const ch = <usize>C;
  const ch2 = ch & ~(<usize>1);
  memory.fill(mean, 0, ch << 3);
  memory.fill(variance, 0, ch << 3);
  for (let r: usize = 0; r < rows; r++) {
    const row = x + ((r * ch) << 2);
    let c: usize = 0;
    for (; c < ch2; c += 2) {
      const p = mean + (c << 3);
      v128.store(p, f64x2.add(v128.load(p), load2(row + (c << 2))));
    }
    if (c < ch) {
      const p = mean + (c << 3);
      store<f64>(p, load<f64>(p) + <f64>load<f32>(row + (c << 2)));
    }
  }
  const count = <f64>m;
  for (let c: usize = 0; c < ch; c++) store<f64>(mean + (c << 3), load<f64>(mean + (c << 3)) / count);
  for (let r: usize = 0; r < rows; r++) {
    const row = x + ((r * ch) << 2);
    let c: usize = 0;
    for (; c < ch2; c += 2) {
      const d = f64x2.sub(load2(row + (c << 2)), v128.load(mean + (c << 3)));
      const p = variance + (c << 3);
      v128.store(p, f64x2.add(v128.load(p), f64x2.mul(d, d)));
    }
    if (c < ch) {
      const d = <f64>load<f32>(row + (c << 2)) - load<f64>(mean + (c << 3));
      const p = variance + (c << 3);
      store<f64>(p, load<f64>(p) + d * d);
    }
  }
  for (let c: usize = 0; c < ch; c++) {
    const v = load<f64>(variance + (c << 3)) / count;
    store<f64>(variance + (c << 3), v);
    store<f64>(invStd + (c << 3), 1 / Math.sqrt(v + epsilon));
  }
  const zero = f32x4.splat(0);
  for (let r: usize = 0; r < rows; r++) {
    const at = (r * ch) << 2;
    let c: usize = 0;
    for (; c < ch2; c += 2) {
      const h = f64x2.mul(f64x2.sub(load2(x + at + (c << 2)), v128.load(mean + (c << 3))), v128.load(invStd + (c << 3)));
      store2(xhat + at + (c << 2), h);
      const v = f32x4.demote_f64x2_zero(f64x2.add(f64x2.mul(load2(gamma + (c << 2)), h), load2(beta + (c << 2))));
      v128.store64_lane(y + at + (c << 2), v128.bitselect(v, zero, f32x4.gt(v, zero)), 0);
    }
    if (c < ch) {
      const h = (<f64>load<f32>(x + at + (c << 2)) - load<f64>(mean + (c << 3))) * load<f64>(invStd + (c << 3));
      store<f32>(xhat + at + (c << 2), <f32>h);
      const v = <f64>load<f32>(gamma + (c << 2)) * h + <f64>load<f32>(beta + (c << 2));
      store<f32>(y + at + (c << 2), v > 0 ? <f32>v : 0);
    }
  }
}

/**
 * Backward. dy, y, xhat, dx: m·C f32; gamma: C f32; invStd: C f64 (from forward); dGamma, dBeta: C f64 (out);
 * scratch: 3·C f64 (all 16-byte aligned). Through the ReLU (dy' = dy where y > 0, else 0), dβ = Σ dy',
 * dγ = Σ dy'·x̂, and dx = γ·invStd · (dy' − dβ/m − x̂·dγ/m), which includes the batch statistics' own dependence on x.
 */
export function backward(
  dy: usize, y: usize, xhat: usize, m: i32, C: i32, gamma: usize, invStd: usize,
  dx: usize, dGamma: usize, dBeta: usize, scratch: usize,
): void {
  const rows = <usize>m;
  const ch = <usize>C;
  const ch2 = ch & ~(<usize>1);
  memory.fill(dBeta, 0, ch << 3);
  memory.fill(dGamma, 0, ch << 3);
  for (let r: usize = 0; r < rows; r++) {
    const at = (r * ch) << 2;
    let c: usize = 0;
    for (; c < ch2; c += 2) {
      const d = gate2(dy + at + (c << 2), y + at + (c << 2));
      const pb = dBeta + (c << 3);
      v128.store(pb, f64x2.add(v128.load(pb), d));
      const pg = dGamma + (c << 3);
      v128.store(pg, f64x2.add(v128.load(pg), f64x2.mul(d, load2(xhat + at + (c << 2)))));
    }
    if (c < ch) {
      const d: f64 = load<f32>(y + at + (c << 2)) > 0 ? <f64>load<f32>(dy + at + (c << 2)) : 0;
      const pb = dBeta + (c << 3);
      store<f64>(pb, load<f64>(pb) + d);
      const pg = dGamma + (c << 3);
      store<f64>(pg, load<f64>(pg) + d * <f64>load<f32>(xhat + at + (c << 2)));
    }
  }
  const scale = scratch;
  const meanDBeta = scratch + (ch << 3);
  const meanDGamma = scratch + (ch << 4);
  const count = <f64>m;
  for (let c: usize = 0; c < ch; c++) {
    store<f64>(scale + (c << 3), <f64>load<f32>(gamma + (c << 2)) * load<f64>(invStd + (c << 3)));
    store<f64>(meanDBeta + (c << 3), load<f64>(dBeta + (c << 3)) / count);
    store<f64>(meanDGamma + (c << 3), load<f64>(dGamma + (c << 3)) / count);
  }
  for (let r: usize = 0; r < rows; r++) {
    const at = (r * ch) << 2;
    let c: usize = 0;
    for (; c < ch2; c += 2) {
      const d = gate2(dy + at + (c << 2), y + at + (c << 2));
      const v = f64x2.mul(v128.load(scale + (c << 3)),
        f64x2.sub(f64x2.sub(d, v128.load(meanDBeta + (c << 3))), f64x2.mul(load2(xhat + at + (c << 2)), v128.load(meanDGamma + (c << 3)))));
      store2(dx + at + (c << 2), v);
    }
    if (c < ch) {
      const d: f64 = load<f32>(y + at + (c << 2)) > 0 ? <f64>load<f32>(dy + at + (c << 2)) : 0;
      const v = load<f64>(scale + (c << 3)) *
        (d - load<f64>(meanDBeta + (c << 3)) - <f64>load<f32>(xhat + at + (c << 2)) * load<f64>(meanDGamma + (c << 3)));
      store<f32>(dx + at + (c << 2), <f32>v);
    }
  }
}
