// Fused forward + backward of the tutorial CNN in WebAssembly SIMD (AssemblyScript; built by `npm run build:wasm`).
//
// Network (NHWC, TensorFlow.js layouts and flat parameter order):
//   conv1 3→6 3×3 valid + bias + ReLU → maxpool 2/2 → conv2 6→16 3×3 valid + bias + ReLU → maxpool 2/2 (13→6)
//   → flatten HWC (576) → dense 120 + ReLU → dense 84 + ReLU → dense 10 → softmax cross-entropy.
//
// The host writes the flat parameters into PARAMS and calls prepare(); then per shard beginGradient(), then
// trainChunk(n) for successive chunks of at most CHUNK images (bytes in INPUT, labels in LABELS), then
// finishGradient(), and reads the flat gradient of the SUM of per-image cross-entropies from GRAD.
// evalChunk(n) is the forward pass alone: predictions into PRED, returns the chunk's summed loss.
//
// Everything lives in static memory: no allocation per call. Images are processed one at a time; all arithmetic
// is plain IEEE f32 (no relaxed SIMD, no FMA), summed in a fixed order, so results are bit-reproducible.
// Sparsity is exploited exactly: inputs that are 0 after ReLU/max-pool are skipped in the dense layers (adding
// ±0 never changes a non-zero sum, and a sum that starts at +0 stays +0), and the conv backward passes visit only
// the positions a max-pool routed a non-zero gradient to.

// ---- flat parameter vector (TensorFlow.js order, float offsets) ----
const C1W: usize = 0; // [3,3,3,6]
const C1B: usize = 162;
const C2W: usize = 168; // [3,3,6,16]
const C2B: usize = 1032;
const F1W: usize = 1048; // [576,120]
const F1B: usize = 70168;
const F2W: usize = 70288; // [120,84]
const F2B: usize = 80368;
const F3W: usize = 80452; // [84,10]
const F3B: usize = 81292;
const NPARAM: usize = 81302;

export const CHUNK: i32 = 64;
const IMG: usize = 3072;

// ---- static memory ----
const PARAMS = memory.data(<i32>(NPARAM * 4 + 16), 16);
const GRAD = memory.data(<i32>(NPARAM * 4 + 16), 16);
const TABLE = memory.data(256 * 4, 16);

// Internal weight layouts (built by prepare()).
const W1 = memory.data(27 * 8 * 4, 16); // conv1 [k=27][co padded to 8]
const B1 = memory.data(8 * 4, 16);
const W2T = memory.data(16 * 72 * 4, 16); // conv2 transposed [co][ky][kx*8+ci (ci padded to 8)]
const F3 = memory.data(84 * 12 * 4, 16); // fc3 [84][10 padded to 12]
const B3 = memory.data(12 * 4, 16);

// Internal gradient layouts (copied into GRAD by finishGradient()).
const GW1T = memory.data(6 * 36 * 4, 16); // [co][ky][kx*3+ci, 9 used of 12]
const GB1 = memory.data(8 * 4, 16);
const GW2T = memory.data(16 * 72 * 4, 16); // as W2T
const GB2 = memory.data(16 * 4, 16);
const GF3 = memory.data(84 * 12 * 4, 16);
const GB3 = memory.data(12 * 4, 16);

// Per-image scratch.
const X = memory.data((3072 + 16) * 4, 16); // image as f32 HWC (+ padding: conv1's backward reads 3 floats past a patch row)
const A1 = memory.data(900 * 8 * 4, 16); // conv1 output after ReLU [30][30][8]
const P1 = memory.data(225 * 8 * 4, 16); // pool1 [15][15][8] (channels 6, 7 stay 0)
const I1 = memory.data(225 * 8 * 4, 16); // pool1 argmax in the 2×2 window (0..3, scan order)
const A2 = memory.data(169 * 16 * 4, 16); // conv2 output after ReLU [13][13][16]
const P2 = memory.data(576 * 4, 16); // pool2 = flattened fc1 input [6][6][16]
const I2 = memory.data(576 * 4, 16);
const NZ2 = memory.data(576 * 4, 16); // indices of non-zero P2
const H1 = memory.data(120 * 4, 16);
const NZH1 = memory.data(120 * 4, 16);
const H2 = memory.data(84 * 4, 16);
const NZH2 = memory.data(84 * 4, 16);
const LOGIT = memory.data(12 * 4, 16);
const DLOG = memory.data(12 * 4, 16); // d loss / d logits (lanes 10, 11 stay 0)
const DZ2 = memory.data(84 * 4, 16); // d loss / d fc2 pre-activation
const DZ1 = memory.data(120 * 4, 16); // d loss / d fc1 pre-activation
const DP2 = memory.data(576 * 4, 16); // d loss / d pool2 output
const DP1 = memory.data(225 * 8 * 4, 16); // d loss / d pool1 output
const L1 = memory.data(1800 * 4, 16); // pool1 positions that carry gradient into conv1

const INPUT = memory.data(<i32>(<usize>CHUNK * IMG), 16);
const LABELS = memory.data(CHUNK, 16);
const PRED = memory.data(CHUNK * 4, 16);

let lossAcc: f64 = 0;
let correctAcc: i32 = 0;

// byte → Math.fround(v / 255), computed in f64 and rounded once, exactly as the JavaScript side does.
for (let v = 0; v < 256; v++) store<f32>(TABLE + (<usize>v << 2), <f32>(<f64>v / 255.0));

export function paramsPtr(): usize { return PARAMS; }
export function gradPtr(): usize { return GRAD; }
export function inputPtr(): usize { return INPUT; }
export function labelsPtr(): usize { return LABELS; }
export function predPtr(): usize { return PRED; }
export function chunkCapacity(): i32 { return CHUNK; }
export function parameterCount(): i32 { return <i32>NPARAM; }
export function lossSum(): f64 { return lossAcc; }
export function correctCount(): i32 { return correctAcc; }

@inline function f(base: usize, i: usize): f32 { return load<f32>(base + (i << 2)); }
@inline function setf(base: usize, i: usize, v: f32): void { store<f32>(base + (i << 2), v); }

/** Builds the internal weight layouts from PARAMS. Call after every change of PARAMS. */
export function prepare(): void {
  for (let k: usize = 0; k < 27; k++) {
    for (let c: usize = 0; c < 8; c++) setf(W1, k * 8 + c, c < 6 ? f(PARAMS, C1W + k * 6 + c) : 0);
  }
  for (let c: usize = 0; c < 8; c++) setf(B1, c, c < 6 ? f(PARAMS, C1B + c) : 0);
  for (let co: usize = 0; co < 16; co++) {
    for (let ky: usize = 0; ky < 3; ky++) {
      for (let kx: usize = 0; kx < 3; kx++) {
        for (let ci: usize = 0; ci < 8; ci++) {
          setf(W2T, co * 72 + ky * 24 + kx * 8 + ci, ci < 6 ? f(PARAMS, C2W + ((ky * 3 + kx) * 6 + ci) * 16 + co) : 0);
        }
      }
    }
  }
  for (let i: usize = 0; i < 84; i++) {
    for (let o: usize = 0; o < 12; o++) setf(F3, i * 12 + o, o < 10 ? f(PARAMS, F3W + i * 10 + o) : 0);
  }
  for (let o: usize = 0; o < 12; o++) setf(B3, o, o < 10 ? f(PARAMS, F3B + o) : 0);
}

export function beginGradient(): void {
  memory.fill(GRAD, 0, NPARAM * 4);
  memory.fill(GW1T, 0, 6 * 36 * 4);
  memory.fill(GB1, 0, 8 * 4);
  memory.fill(GW2T, 0, 16 * 72 * 4);
  memory.fill(GB2, 0, 16 * 4);
  memory.fill(GF3, 0, 84 * 12 * 4);
  memory.fill(GB3, 0, 12 * 4);
  lossAcc = 0;
  correctAcc = 0;
}

/** Writes the internally laid-out gradients (conv1, conv2, fc3) into GRAD; fc1 and fc2 accumulate there directly. */
export function finishGradient(): void {
  for (let ky: usize = 0; ky < 3; ky++) {
    for (let kx: usize = 0; kx < 3; kx++) {
      for (let ci: usize = 0; ci < 3; ci++) {
        const k = (ky * 3 + kx) * 3 + ci;
        for (let c: usize = 0; c < 6; c++) setf(GRAD, C1W + k * 6 + c, f(GW1T, c * 36 + ky * 12 + kx * 3 + ci));
      }
      for (let ci: usize = 0; ci < 6; ci++) {
        const k = (ky * 3 + kx) * 6 + ci;
        for (let co: usize = 0; co < 16; co++) setf(GRAD, C2W + k * 16 + co, f(GW2T, co * 72 + ky * 24 + kx * 8 + ci));
      }
    }
  }
  for (let c: usize = 0; c < 6; c++) setf(GRAD, C1B + c, f(GB1, c));
  for (let c: usize = 0; c < 16; c++) setf(GRAD, C2B + c, f(GB2, c));
  for (let i: usize = 0; i < 84; i++) {
    for (let o: usize = 0; o < 10; o++) setf(GRAD, F3W + i * 10 + o, f(GF3, i * 12 + o));
  }
  for (let o: usize = 0; o < 10; o++) setf(GRAD, F3B + o, f(GB3, o));
}

// ---------------------------------------------------------------------------------------------------------------
// Forward pieces

@inline function relu(v: v128): v128 {
  // pmax(a, b) = a < b ? b : a: with a = 0 this is max(v, 0) (and 0 for NaN / −0).
  return f32x4.pmax(f32x4.splat(0), v);
}

function loadImage(img: usize): void {
  const src = INPUT + img * IMG;
  for (let k: usize = 0; k < IMG; k++) store<f32>(X + (k << 2), load<f32>(TABLE + (<usize>load<u8>(src + k) << 2)));
}

function conv1Forward(): void {
  // Four neighbouring output pixels at a time (8 accumulators share each weight load); the row's last group
  // starts at 26 and recomputes pixels 26, 27 with identical results.
  const bl = v128.load(B1);
  const bh = v128.load(B1, 16);
  for (let oy: usize = 0; oy < 30; oy++) {
    for (let g: usize = 0; g < 8; g++) {
      const ox: usize = g < 7 ? g * 4 : 26;
      let a0 = bl, a1 = bh, b0 = bl, b1 = bh, c0 = bl, c1 = bh, d0 = bl, d1 = bh;
      for (let ky: usize = 0; ky < 3; ky++) {
        let xr = X + (((oy + ky) * 32 + ox) * 3 << 2);
        let wr = W1 + ky * 9 * 32;
        for (let j = 0; j < 9; j++) {
          const w0 = v128.load(wr);
          const w1 = v128.load(wr, 16);
          const xa = v128.load32_splat(xr);
          const xb = v128.load32_splat(xr, 12);
          const xc = v128.load32_splat(xr, 24);
          const xd = v128.load32_splat(xr, 36);
          a0 = f32x4.add(a0, f32x4.mul(xa, w0));
          a1 = f32x4.add(a1, f32x4.mul(xa, w1));
          b0 = f32x4.add(b0, f32x4.mul(xb, w0));
          b1 = f32x4.add(b1, f32x4.mul(xb, w1));
          c0 = f32x4.add(c0, f32x4.mul(xc, w0));
          c1 = f32x4.add(c1, f32x4.mul(xc, w1));
          d0 = f32x4.add(d0, f32x4.mul(xd, w0));
          d1 = f32x4.add(d1, f32x4.mul(xd, w1));
          xr += 4;
          wr += 32;
        }
      }
      const out = A1 + ((oy * 30 + ox) * 8 << 2);
      v128.store(out, relu(a0));
      v128.store(out, relu(a1), 16);
      v128.store(out, relu(b0), 32);
      v128.store(out, relu(b1), 48);
      v128.store(out, relu(c0), 64);
      v128.store(out, relu(c1), 80);
      v128.store(out, relu(d0), 96);
      v128.store(out, relu(d1), 112);
    }
  }
}

/** 2×2 max over one channel vector; the index is that of the first maximum in scan order (as tfjs's MaxPoolGrad). */
@inline function pool4(a: usize, pix: usize, row: usize, outP: usize, outI: usize): void {
  let m = v128.load(a);
  let idx = i32x4.splat(0);
  const v1 = v128.load(a + pix);
  let gt = f32x4.gt(v1, m);
  m = v128.bitselect(v1, m, gt);
  idx = v128.bitselect(i32x4.splat(1), idx, gt);
  const v2 = v128.load(a + row);
  gt = f32x4.gt(v2, m);
  m = v128.bitselect(v2, m, gt);
  idx = v128.bitselect(i32x4.splat(2), idx, gt);
  const v3 = v128.load(a + row + pix);
  gt = f32x4.gt(v3, m);
  m = v128.bitselect(v3, m, gt);
  idx = v128.bitselect(i32x4.splat(3), idx, gt);
  v128.store(outP, m);
  v128.store(outI, idx);
}

function pool1Forward(): void {
  for (let py: usize = 0; py < 15; py++) {
    for (let px: usize = 0; px < 15; px++) {
      const a = A1 + ((py * 2 * 30 + px * 2) * 8 << 2);
      const o = (py * 15 + px) * 8 << 2;
      pool4(a, 32, 30 * 32, P1 + o, I1 + o);
      pool4(a + 16, 32, 30 * 32, P1 + o + 16, I1 + o + 16);
    }
  }
}

function conv2Forward(): void {
  const c0 = v128.load(PARAMS + (C2B << 2));
  const c1 = v128.load(PARAMS + (C2B << 2), 16);
  const c2 = v128.load(PARAMS + (C2B << 2), 32);
  const c3 = v128.load(PARAMS + (C2B << 2), 48);
  const w = PARAMS + (C2W << 2);
  for (let p: usize = 0; p < 169; p += 2) {
    const q = p + 1 < 169 ? p + 1 : p; // the last pixel alone: computed twice, same values
    const pa = P1 + (((p / 13) * 15 + p % 13) * 8 << 2);
    const pb = P1 + (((q / 13) * 15 + q % 13) * 8 << 2);
    let a0 = c0, a1 = c1, a2 = c2, a3 = c3;
    let b0 = c0, b1 = c1, b2 = c2, b3 = c3;
    for (let ky: usize = 0; ky < 3; ky++) {
      for (let kx: usize = 0; kx < 3; kx++) {
        const off = (ky * 15 + kx) * 8 << 2;
        const xa = pa + off;
        const xb = pb + off;
        const wk = w + ((ky * 3 + kx) * 6) * 64;
        for (let ci: usize = 0; ci < 6; ci++) {
          const sa = v128.load32_splat(xa + (ci << 2));
          const sb = v128.load32_splat(xb + (ci << 2));
          const wr = wk + ci * 64;
          const w0 = v128.load(wr);
          const w1 = v128.load(wr, 16);
          const w2 = v128.load(wr, 32);
          const w3 = v128.load(wr, 48);
          a0 = f32x4.add(a0, f32x4.mul(sa, w0));
          a1 = f32x4.add(a1, f32x4.mul(sa, w1));
          a2 = f32x4.add(a2, f32x4.mul(sa, w2));
          a3 = f32x4.add(a3, f32x4.mul(sa, w3));
          b0 = f32x4.add(b0, f32x4.mul(sb, w0));
          b1 = f32x4.add(b1, f32x4.mul(sb, w1));
          b2 = f32x4.add(b2, f32x4.mul(sb, w2));
          b3 = f32x4.add(b3, f32x4.mul(sb, w3));
        }
      }
    }
    const oa = A2 + (p << 6);
    v128.store(oa, relu(a0));
    v128.store(oa, relu(a1), 16);
    v128.store(oa, relu(a2), 32);
    v128.store(oa, relu(a3), 48);
    const ob = A2 + (q << 6);
    v128.store(ob, relu(b0));
    v128.store(ob, relu(b1), 16);
    v128.store(ob, relu(b2), 32);
    v128.store(ob, relu(b3), 48);
  }
}

function pool2Forward(): void {
  for (let py: usize = 0; py < 6; py++) {
    for (let px: usize = 0; px < 6; px++) {
      const a = A2 + ((py * 2 * 13 + px * 2) * 16 << 2);
      const o = (py * 6 + px) * 16 << 2;
      for (let v: usize = 0; v < 64; v += 16) pool4(a + v, 64, 13 * 64, P2 + o + v, I2 + o + v);
    }
  }
}

/** Writes the indices i < count with x[i] != 0 to list; returns how many. Branch-free. */
function nonZero(x: usize, count: usize, list: usize): i32 {
  let n: usize = 0;
  for (let i: usize = 0; i < count; i++) {
    store<i32>(list + (n << 2), <i32>i);
    n += <usize>(f(x, i) != 0);
  }
  return <i32>n;
}

/** out[0..24) = bias + Σ_t x[list[t]] · w[list[t]][0..24) (w's rows are `stride` bytes apart), optionally ReLU. */
function denseBlock6(x: usize, list: usize, n: i32, w: usize, stride: usize, bias: usize, out: usize, withRelu: bool): void {
  let a0 = v128.load(bias), a1 = v128.load(bias, 16), a2 = v128.load(bias, 32);
  let a3 = v128.load(bias, 48), a4 = v128.load(bias, 64), a5 = v128.load(bias, 80);
  for (let t = 0; t < n; t++) {
    const i = <usize>load<i32>(list + (<usize>t << 2));
    const xv = v128.load32_splat(x + (i << 2));
    const r = w + i * stride;
    a0 = f32x4.add(a0, f32x4.mul(xv, v128.load(r)));
    a1 = f32x4.add(a1, f32x4.mul(xv, v128.load(r, 16)));
    a2 = f32x4.add(a2, f32x4.mul(xv, v128.load(r, 32)));
    a3 = f32x4.add(a3, f32x4.mul(xv, v128.load(r, 48)));
    a4 = f32x4.add(a4, f32x4.mul(xv, v128.load(r, 64)));
    a5 = f32x4.add(a5, f32x4.mul(xv, v128.load(r, 80)));
  }
  if (withRelu) {
    a0 = relu(a0); a1 = relu(a1); a2 = relu(a2); a3 = relu(a3); a4 = relu(a4); a5 = relu(a5);
  }
  v128.store(out, a0);
  v128.store(out, a1, 16);
  v128.store(out, a2, 32);
  v128.store(out, a3, 48);
  v128.store(out, a4, 64);
  v128.store(out, a5, 80);
}

function denseBlock3(x: usize, list: usize, n: i32, w: usize, stride: usize, bias: usize, out: usize, withRelu: bool): void {
  let a0 = v128.load(bias), a1 = v128.load(bias, 16), a2 = v128.load(bias, 32);
  for (let t = 0; t < n; t++) {
    const i = <usize>load<i32>(list + (<usize>t << 2));
    const xv = v128.load32_splat(x + (i << 2));
    const r = w + i * stride;
    a0 = f32x4.add(a0, f32x4.mul(xv, v128.load(r)));
    a1 = f32x4.add(a1, f32x4.mul(xv, v128.load(r, 16)));
    a2 = f32x4.add(a2, f32x4.mul(xv, v128.load(r, 32)));
  }
  if (withRelu) {
    a0 = relu(a0); a1 = relu(a1); a2 = relu(a2);
  }
  v128.store(out, a0);
  v128.store(out, a1, 16);
  v128.store(out, a2, 32);
}

/** A dense layer over the listed (non-zero) inputs; nvec output vectors, a multiple of 3. */
function denseForward(x: usize, list: usize, n: i32, w: usize, stride: usize, bias: usize, out: usize, nvec: usize, withRelu: bool): void {
  let v: usize = 0;
  for (; v + 6 <= nvec; v += 6) denseBlock6(x, list, n, w + (v << 4), stride, bias + (v << 4), out + (v << 4), withRelu);
  for (; v + 3 <= nvec; v += 3) denseBlock3(x, list, n, w + (v << 4), stride, bias + (v << 4), out + (v << 4), withRelu);
}

/**
 * For each listed input i: g[i] += x[i] · dz (the weight gradient row), and dx[i] = w[i] · dz (the input gradient,
 * needed only where x[i] > 0: every other input is ReLU-dead or unused).
 */
function denseBackward(x: usize, list: usize, n: i32, w: usize, g: usize, stride: usize, dz: usize, nvec: usize, dx: usize): void {
  for (let t = 0; t < n; t++) {
    const i = <usize>load<i32>(list + (<usize>t << 2));
    const xv = v128.load32_splat(x + (i << 2));
    const r = w + i * stride;
    const gr = g + i * stride;
    let d0 = f32x4.splat(0);
    let d1 = f32x4.splat(0);
    let q: usize = 0;
    for (; q + 2 <= nvec; q += 2) {
      const o = q << 4;
      const z0 = v128.load(dz + o);
      const z1 = v128.load(dz + o, 16);
      v128.store(gr + o, f32x4.add(v128.load(gr + o), f32x4.mul(xv, z0)));
      v128.store(gr + o, f32x4.add(v128.load(gr + o, 16), f32x4.mul(xv, z1)), 16);
      d0 = f32x4.add(d0, f32x4.mul(v128.load(r + o), z0));
      d1 = f32x4.add(d1, f32x4.mul(v128.load(r + o, 16), z1));
    }
    if (q < nvec) {
      const o = q << 4;
      const z0 = v128.load(dz + o);
      v128.store(gr + o, f32x4.add(v128.load(gr + o), f32x4.mul(xv, z0)));
      d0 = f32x4.add(d0, f32x4.mul(v128.load(r + o), z0));
    }
    const s = f32x4.add(d0, d1);
    setf(dx, i, (f32x4.extract_lane(s, 0) + f32x4.extract_lane(s, 1)) + (f32x4.extract_lane(s, 2) + f32x4.extract_lane(s, 3)));
  }
}

@inline function addVectors(dst: usize, src: usize, nvec: usize): void {
  for (let q: usize = 0; q < nvec; q++) v128.store(dst + (q << 4), f32x4.add(v128.load(dst + (q << 4)), v128.load(src + (q << 4))));
}

// The whole forward pass for the image in X; returns the number of non-zero pool2 outputs (their indices in NZ2),
// and leaves the counts of non-zero h1 / h2 in nH1 / nH2.
let nH1: i32 = 0;
let nH2: i32 = 0;

function forward(): i32 {
  conv1Forward();
  pool1Forward();
  conv2Forward();
  pool2Forward();
  const n2 = nonZero(P2, 576, NZ2);
  denseForward(P2, NZ2, n2, PARAMS + (F1W << 2), 120 * 4, PARAMS + (F1B << 2), H1, 30, true);
  nH1 = nonZero(H1, 120, NZH1);
  denseForward(H1, NZH1, nH1, PARAMS + (F2W << 2), 84 * 4, PARAMS + (F2B << 2), H2, 21, true);
  nH2 = nonZero(H2, 84, NZH2);
  denseForward(H2, NZH2, nH2, F3, 12 * 4, B3, LOGIT, 3, false);
  return n2;
}

/** Label smoothing ε of the training loss (0: plain one-hot targets). Set by setLabelSmoothing. */
let smoothing: f64 = 0;

export function setLabelSmoothing(epsilon: f64): void {
  smoothing = epsilon;
}

/**
 * Cross-entropy of LOGIT against `label` (computed in f64); also DLOG = softmax − target when wanted. With
 * label smoothing (training only) the target is (1 − ε)·one-hot + ε/10.
 */
function crossEntropy(label: i32, withGrad: bool): f64 {
  let m: f64 = <f64>f(LOGIT, 0);
  for (let c: usize = 1; c < 10; c++) m = Math.max(m, <f64>f(LOGIT, c));
  let s: f64 = 0;
  for (let c: usize = 0; c < 10; c++) s += Math.exp(<f64>f(LOGIT, c) - m);
  const lse = m + Math.log(s);
  if (!withGrad || smoothing == 0) {
    if (withGrad) {
      for (let c: usize = 0; c < 10; c++) {
        const p = Math.exp(<f64>f(LOGIT, c) - lse);
        setf(DLOG, c, <f32>(c == <usize>label ? p - 1 : p));
      }
    }
    return lse - <f64>f(LOGIT, <usize>label);
  }
  const off = smoothing / 10;
  const on = 1 - smoothing + off;
  let loss: f64 = 0;
  for (let c: usize = 0; c < 10; c++) {
    const target = c == <usize>label ? on : off;
    const z = <f64>f(LOGIT, c);
    setf(DLOG, c, <f32>(Math.exp(z - lse) - target));
    loss += target * (lse - z);
  }
  return loss;
}

/** Index of the largest logit (the first on ties, as tf.argMax). */
function argmax(): i32 {
  let best: i32 = 0;
  let bestValue = f(LOGIT, 0);
  for (let c = 1; c < 10; c++) {
    const v = f(LOGIT, <usize>c);
    if (v > bestValue) {
      bestValue = v;
      best = c;
    }
  }
  return best;
}

const L2 = memory.data(36 * 4, 16); // pool2 positions of one channel that carry gradient

function conv2Backward(): void {
  memory.fill(DP1, 0, 225 * 8 * 4);
  // Channel by channel: the pool2 outputs > 0 (their routed conv2 output passed its ReLU). Per kernel row, the
  // weight gradient is summed in registers; the input gradient is added into DP1 at each routed patch.
  for (let co: usize = 0; co < 16; co++) {
    let n: usize = 0;
    for (let pix: usize = 0; pix < 36; pix++) {
      const i = pix * 16 + co;
      const k = <usize>load<i32>(I2 + (i << 2));
      const oy = (pix / 6) * 2 + (k >> 1);
      const ox = (pix % 6) * 2 + (k & 1);
      store<i32>(L2 + (n << 2), <i32>((i << 16) | ((oy * 15 + ox) * 8 << 2)));
      n += <usize>(f(P2, i) != 0);
    }
    if (n == 0) continue;
    let gsum: f32 = 0;
    for (let t: usize = 0; t < n; t++) gsum += f(DP2, <usize>load<i32>(L2 + (t << 2)) >> 16);
    setf(GB2, co, f(GB2, co) + gsum);
    for (let ky: usize = 0; ky < 3; ky++) {
      const wt = W2T + ((co * 72 + ky * 24) << 2);
      const w0 = v128.load(wt), w1 = v128.load(wt, 16), w2 = v128.load(wt, 32);
      const w3 = v128.load(wt, 48), w4 = v128.load(wt, 64), w5 = v128.load(wt, 80);
      let a0 = f32x4.splat(0), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0;
      const row = ky * 15 * 8 << 2;
      for (let t: usize = 0; t < n; t++) {
        const e = <usize>load<i32>(L2 + (t << 2));
        const gv = v128.load32_splat(DP2 + ((e >> 16) << 2));
        const at = (e & 0xffff) + row;
        const src = P1 + at;
        a0 = f32x4.add(a0, f32x4.mul(gv, v128.load(src)));
        a1 = f32x4.add(a1, f32x4.mul(gv, v128.load(src, 16)));
        a2 = f32x4.add(a2, f32x4.mul(gv, v128.load(src, 32)));
        a3 = f32x4.add(a3, f32x4.mul(gv, v128.load(src, 48)));
        a4 = f32x4.add(a4, f32x4.mul(gv, v128.load(src, 64)));
        a5 = f32x4.add(a5, f32x4.mul(gv, v128.load(src, 80)));
        const d = DP1 + at;
        v128.store(d, f32x4.add(v128.load(d), f32x4.mul(gv, w0)));
        v128.store(d, f32x4.add(v128.load(d, 16), f32x4.mul(gv, w1)), 16);
        v128.store(d, f32x4.add(v128.load(d, 32), f32x4.mul(gv, w2)), 32);
        v128.store(d, f32x4.add(v128.load(d, 48), f32x4.mul(gv, w3)), 48);
        v128.store(d, f32x4.add(v128.load(d, 64), f32x4.mul(gv, w4)), 64);
        v128.store(d, f32x4.add(v128.load(d, 80), f32x4.mul(gv, w5)), 80);
      }
      const gw = GW2T + ((co * 72 + ky * 24) << 2);
      v128.store(gw, f32x4.add(v128.load(gw), a0));
      v128.store(gw, f32x4.add(v128.load(gw, 16), a1), 16);
      v128.store(gw, f32x4.add(v128.load(gw, 32), a2), 32);
      v128.store(gw, f32x4.add(v128.load(gw, 48), a3), 48);
      v128.store(gw, f32x4.add(v128.load(gw, 64), a4), 64);
      v128.store(gw, f32x4.add(v128.load(gw, 80), a5), 80);
    }
  }
}

function conv1Backward(): void {
  // Channel by channel: the pool1 positions whose output is > 0 (so the routed conv1 output passed its ReLU) and
  // that received gradient; their 3×3×3 input patches, weighted by the gradient, summed in registers.
  for (let c: usize = 0; c < 6; c++) {
    let n: usize = 0;
    for (let pos: usize = 0; pos < 225; pos++) {
      const j = pos * 8 + c;
      store<i32>(L1 + (n << 2), <i32>j);
      n += <usize>((f(P1, j) > 0) & (f(DP1, j) != 0));
    }
    let r0 = f32x4.splat(0), r1 = r0, r2 = r0, s0 = r0, s1 = r0, s2 = r0, u0 = r0, u1 = r0, u2 = r0;
    let gsum: f32 = 0;
    for (let t: usize = 0; t < n; t++) {
      const j = <usize>load<i32>(L1 + (t << 2));
      const pos = j >> 3;
      const k = <usize>load<i32>(I1 + (j << 2));
      const oy = (pos / 15) * 2 + (k >> 1);
      const ox = (pos % 15) * 2 + (k & 1);
      const g = f(DP1, j);
      gsum += g;
      const gv = f32x4.splat(g);
      const src = X + ((oy * 32 + ox) * 3 << 2);
      r0 = f32x4.add(r0, f32x4.mul(gv, v128.load(src)));
      r1 = f32x4.add(r1, f32x4.mul(gv, v128.load(src, 16)));
      r2 = f32x4.add(r2, f32x4.mul(gv, v128.load(src, 32)));
      s0 = f32x4.add(s0, f32x4.mul(gv, v128.load(src, 384)));
      s1 = f32x4.add(s1, f32x4.mul(gv, v128.load(src, 400)));
      s2 = f32x4.add(s2, f32x4.mul(gv, v128.load(src, 416)));
      u0 = f32x4.add(u0, f32x4.mul(gv, v128.load(src, 768)));
      u1 = f32x4.add(u1, f32x4.mul(gv, v128.load(src, 784)));
      u2 = f32x4.add(u2, f32x4.mul(gv, v128.load(src, 800)));
    }
    setf(GB1, c, f(GB1, c) + gsum);
    const d = GW1T + (c * 36 << 2);
    v128.store(d, f32x4.add(v128.load(d), r0));
    v128.store(d, f32x4.add(v128.load(d, 16), r1), 16);
    v128.store(d, f32x4.add(v128.load(d, 32), r2), 32);
    v128.store(d, f32x4.add(v128.load(d, 48), s0), 48);
    v128.store(d, f32x4.add(v128.load(d, 64), s1), 64);
    v128.store(d, f32x4.add(v128.load(d, 80), s2), 80);
    v128.store(d, f32x4.add(v128.load(d, 96), u0), 96);
    v128.store(d, f32x4.add(v128.load(d, 112), u1), 112);
    v128.store(d, f32x4.add(v128.load(d, 128), u2), 128);
  }
}

/** Forward + backward for images 0..n−1 of INPUT, accumulating into the gradient, loss and correct count. */
export function trainChunk(n: i32): void {
  for (let img = 0; img < n; img++) {
    loadImage(<usize>img);
    const n2 = forward();
    const label = <i32>load<u8>(LABELS + <usize>img);
    lossAcc += crossEntropy(label, true);
    if (argmax() == label) correctAcc++;

    // fc3
    addVectors(GB3, DLOG, 3);
    memory.fill(DZ2, 0, 84 * 4);
    denseBackward(H2, NZH2, nH2, F3, GF3, 12 * 4, DLOG, 3, DZ2);
    // fc2
    addVectors(GRAD + (F2B << 2), DZ2, 21);
    memory.fill(DZ1, 0, 120 * 4);
    denseBackward(H1, NZH1, nH1, PARAMS + (F2W << 2), GRAD + (F2W << 2), 84 * 4, DZ2, 21, DZ1);
    // fc1
    addVectors(GRAD + (F1B << 2), DZ1, 30);
    denseBackward(P2, NZ2, n2, PARAMS + (F1W << 2), GRAD + (F1W << 2), 120 * 4, DZ1, 30, DP2);
    conv2Backward();
    conv1Backward();
  }
}

/** Forward only for images 0..n−1 of INPUT: predictions into PRED; returns the summed cross-entropy. */
export function evalChunk(n: i32): f64 {
  let loss: f64 = 0;
  for (let img = 0; img < n; img++) {
    loadImage(<usize>img);
    forward();
    loss += crossEntropy(<i32>load<u8>(LABELS + <usize>img), false);
    store<i32>(PRED + (<usize>img << 2), argmax());
  }
  return loss;
}
