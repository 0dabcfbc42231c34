// The coordinator's per-step arithmetic in WebAssembly SIMD (AssemblyScript; built by `npm run build:wasm`):
// sum the shards' gradients in shard order, divide by the batch size, and Adam/AdamW on the flat parameters.
//
// Memory (laid out once by init(), never grown afterwards, so the host's views stay valid):
//   WEIGHTS, M, V, GRAD, MOMENTUM and one SLOT per shard, each `count` f32s, 16-byte aligned, with room for 2
//   more f32s (a whole shard result, its loss sum and correct count after the gradient, fits a SLOT).
// The host writes (or copies) each shard's result into its SLOT, calls reduce(), then adam() or sgd() over the
// trained ranges. M and V are Adam's moments, MOMENTUM is SGD's momentum buffer.
//
// Plain IEEE f32 arithmetic only (no relaxed SIMD, no FMA, no reciprocal approximations): each lane is one
// correctly rounded f32 operation in a fixed order, so results are bit-identical on every machine and equal to
// the scalar JS references in ../../adam.ts and ../../sgd.ts (which round every operation with Math.fround). Loads and stores
// may be unaligned, so a range may start anywhere; the last (count mod 4) elements go through the same
// operations one lane at a time.

let count: i32 = 0;
let slots: i32 = 0;
let stride: usize = 0;
let base: usize = 0;

/** Lays out memory for `n` parameters and `shardSlots` shard results; call once, before anything else. */
export function init(n: i32, shardSlots: i32): i32 {
  if (count != 0 || n <= 0 || shardSlots <= 0) return 0;
  stride = ((<usize>n + 2) * 4 + 15) & ~(<usize>15);
  base = (__heap_base + 15) & ~(<usize>15);
  const need = base + stride * (5 + <usize>shardSlots);
  const have = <usize>memory.size() << 16;
  if (need > have && memory.grow(<i32>((need - have + 0xffff) >>> 16)) < 0) return 0;
  count = n;
  slots = shardSlots;
  return 1;
}

export function weightsPtr(): usize { return base; }
export function mPtr(): usize { return base + stride; }
export function vPtr(): usize { return base + 2 * stride; }
export function gradPtr(): usize { return base + 3 * stride; }
export function momentumPtr(): usize { return base + 4 * stride; }
export function slotPtr(k: i32): usize { return base + (5 + <usize>k) * stride; }

/**
 * GRAD = ((0 + SLOT0) + SLOT1 + … + SLOT[shards-1]) / batch, element by element in shard order. Returns 1 when
 * every element of GRAD is finite (always so when every slot is; a NaN or ±Infinity in any slot makes its
 * element non-finite), else 0.
 */
export function reduce(shards: i32, batch: f32): i32 {
  if (shards < 1 || shards > slots) return 0;
  const n = <usize>count;
  const g0 = gradPtr();
  const s0 = slotPtr(0);
  const b = f32x4.splat(batch);
  let check = f32x4.splat(0); // stays 0 while every g - g is 0, i.e. every g finite
  let i: usize = 0;
  for (; i + 4 <= n; i += 4) {
    const off = i << 2;
    let acc = f32x4.add(f32x4.splat(0), v128.load(s0 + off));
    for (let k = 1; k < shards; k++) acc = f32x4.add(acc, v128.load(s0 + <usize>k * stride + off));
    const g = f32x4.div(acc, b);
    v128.store(g0 + off, g);
    check = f32x4.add(check, f32x4.sub(g, g));
  }
  let tail: f32 = 0;
  for (; i < n; i++) {
    const off = i << 2;
    let acc: f32 = 0 + load<f32>(s0 + off);
    for (let k = 1; k < shards; k++) acc += load<f32>(s0 + <usize>k * stride + off);
    const g = acc / batch;
    store<f32>(g0 + off, g);
    tail += g - g;
  }
  const c = f32x4.add(check, f32x4.splat(tail));
  return i32(f32x4.extract_lane(c, 0) == 0 && f32x4.extract_lane(c, 1) == 0 && f32x4.extract_lane(c, 2) == 0 && f32x4.extract_lane(c, 3) == 0);
}

/**
 * One Adam/AdamW step on elements [start, end) from GRAD, as torch.optim.AdamW's single-tensor float32 path:
 *   p ← p·decay;  m ← β1·m + (1−β1)·g;  v ← β2·v + ((1−β2)·g)·g;  p ← p − stepSize·(m / (√v / √(1−β2ᵗ) + ε))
 * with stepSize = lr / (1−β1ᵗ) and decay = 1 − lr·weightDecay (1 for Adam: p·1 is p), except that a new m or
 * v below float32's normal range (|x| < 2⁻¹²⁶: subnormal) is stored, and used, as 0. A weight whose gradient is
 * 0 step after step (a dead ReLU unit's) would otherwise have its moments decay through the subnormals, and
 * x86 computes on subnormals about a hundred times slower: after one epoch half of the tutorial's moments were
 * subnormal and this step took 1–3 ms instead of 0.1. Such a moment moves its weight by under 10⁻³⁰, less than an
 * ulp of any weight above 10⁻²³.
 */
export function adam(
  start: i32, end: i32, stepSize: f32, sqrtBiasCorrection2: f32, beta1: f32, oneMinusBeta1: f32,
  beta2: f32, oneMinusBeta2: f32, eps: f32, decay: f32,
): void {
  if (start < 0 || end > count || start >= end) return;
  const pw = weightsPtr();
  const pm = mPtr();
  const pv = vPtr();
  const pg = gradPtr();
  const b1 = f32x4.splat(beta1);
  const ob1 = f32x4.splat(oneMinusBeta1);
  const b2 = f32x4.splat(beta2);
  const ob2 = f32x4.splat(oneMinusBeta2);
  const bc2 = f32x4.splat(sqrtBiasCorrection2);
  const e = f32x4.splat(eps);
  const s = f32x4.splat(stepSize);
  const d = f32x4.splat(decay);
  const exponent = i32x4.splat(0x7f800000);
  const zero = i32x4.splat(0);
  let i = <usize>start;
  const n = <usize>end;
  for (; i + 4 <= n; i += 4) {
    const off = i << 2;
    const g = v128.load(pg + off);
    let m = f32x4.add(f32x4.mul(b1, v128.load(pm + off)), f32x4.mul(ob1, g));
    let v = f32x4.add(f32x4.mul(b2, v128.load(pv + off)), f32x4.mul(f32x4.mul(ob2, g), g));
    // Lanes whose exponent bits are all 0 (zero or subnormal) become +0.
    m = v128.and(m, i32x4.ne(v128.and(m, exponent), zero));
    v = v128.and(v, i32x4.ne(v128.and(v, exponent), zero));
    const denom = f32x4.add(f32x4.div(f32x4.sqrt(v), bc2), e);
    const p = f32x4.mul(v128.load(pw + off), d);
    v128.store(pm + off, m);
    v128.store(pv + off, v);
    v128.store(pw + off, f32x4.sub(p, f32x4.mul(s, f32x4.div(m, denom))));
  }
  for (; i < n; i++) {
    const off = i << 2;
    const g = load<f32>(pg + off);
    let m = beta1 * load<f32>(pm + off) + oneMinusBeta1 * g;
    let v = beta2 * load<f32>(pv + off) + (oneMinusBeta2 * g) * g;
    if ((reinterpret<u32>(m) & 0x7f800000) == 0) m = 0;
    if ((reinterpret<u32>(v) & 0x7f800000) == 0) v = 0;
    const denom = Mathf.sqrt(v) / sqrtBiasCorrection2 + eps;
    const p = load<f32>(pw + off) * decay;
    store<f32>(pm + off, m);
    store<f32>(pv + off, v);
    store<f32>(pw + off, p - stepSize * (m / denom));
  }
}

/**
 * One step of torch.optim.SGD (dampening 0) on elements [start, end) from GRAD, in float32, per element:
 *   d ← g + weightDecay·p            (only when weightDecay ≠ 0: torch adds nothing otherwise)
 *   b ← d on the buffer's first step (`first` = 1: torch clones d_p), else b ← momentum·b + d
 *   d ← d + momentum·b (nesterov = 1), else d ← b          (momentum = 0: no buffer, d stays)
 *   p ← p − lr·d
 * Each product and sum is one correctly rounded f32 operation (no FMA), so this is torch's arithmetic wherever
 * torch's own CPU kernel does not fuse a multiply-add.
 */
export function sgd(start: i32, end: i32, lr: f32, weightDecay: f32, momentum: f32, nesterov: i32, first: i32): void {
  if (start < 0 || end > count || start >= end) return;
  const pw = weightsPtr();
  const pg = gradPtr();
  const pb = momentumPtr();
  const decay = weightDecay != 0;
  const buffered = momentum != 0;
  const wd = f32x4.splat(weightDecay);
  const mu = f32x4.splat(momentum);
  const rate = f32x4.splat(lr);
  let i = <usize>start;
  const n = <usize>end;
  for (; i + 4 <= n; i += 4) {
    const off = i << 2;
    const p = v128.load(pw + off);
    let d = v128.load(pg + off);
    if (decay) d = f32x4.add(d, f32x4.mul(wd, p));
    if (buffered) {
      const b = first ? d : f32x4.add(f32x4.mul(mu, v128.load(pb + off)), d);
      v128.store(pb + off, b);
      d = nesterov ? f32x4.add(d, f32x4.mul(mu, b)) : b;
    }
    v128.store(pw + off, f32x4.sub(p, f32x4.mul(rate, d)));
  }
  for (; i < n; i++) {
    const off = i << 2;
    const p = load<f32>(pw + off);
    let d = load<f32>(pg + off);
    if (decay) d = d + weightDecay * p;
    if (buffered) {
      const b = first ? d : momentum * load<f32>(pb + off) + d;
      store<f32>(pb + off, b);
      d = nesterov ? d + momentum * b : b;
    }
    store<f32>(pw + off, p - lr * d);
  }
}

/** GRAD[i] ← GRAD[i] / divisor for i in [start, end): a sum turned into a mean (batch norm's statistics under a summed loss). */
export function divideGradient(start: i32, end: i32, divisor: f32): void {
  if (start < 0 || end > count || start >= end) return;
  const pg = gradPtr();
  for (let i = <usize>start; i < <usize>end; i++) store<f32>(pg + (i << 2), load<f32>(pg + (i << 2)) / divisor);
}

// ---- A scan for NaN/±Infinity (validateShardResult), in an instance of its own: scanReserve() lays memory out
// for it instead of init().

/** Makes room for `n` f32s at the returned address (grows memory when needed); 0 when it cannot. */
export function scanReserve(n: i32): usize {
  if (count != 0 || n < 0) return 0;
  const at = (__heap_base + 15) & ~(<usize>15);
  const need = at + <usize>n * 4 + 16;
  const have = <usize>memory.size() << 16;
  if (need > have && memory.grow(<i32>((need - have + 0xffff) >>> 16)) < 0) return 0;
  return at;
}

/** The index of the first NaN or ±Infinity among `n` f32s at `at`, or -1 when all are finite. */
export function firstNonFinite(at: usize, n: i32): i32 {
  const end = <usize>n;
  const zero = f32x4.splat(0);
  let i: usize = 0;
  // x − x is 0 for a finite x and NaN otherwise; 64 floats per test keep the loop branch-light.
  for (; i + 64 <= end; i += 64) {
    let acc = zero;
    for (let j: usize = 0; j < 64; j += 4) {
      const x = v128.load(at + ((i + j) << 2));
      acc = f32x4.add(acc, f32x4.sub(x, x));
    }
    if (v128.any_true(f32x4.ne(acc, zero))) break;
  }
  for (; i < end; i++) {
    const x = load<f32>(at + (i << 2));
    if (x - x != 0) return <i32>i;
  }
  return -1;
}
