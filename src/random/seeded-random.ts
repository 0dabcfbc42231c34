/**
 * A small, fast, seedable pseudo-random generator (sfc32, seeded through splitmix32) whose sequence is
 * the same on every machine and in every thread. Everything random in a run (initial weights, each epoch's
 * shuffle, augmentation) draws from one of these, derived from the run's seed and a purpose, so a run is
 * reproducible bit for bit.
 */
export class SeededRandom {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  /** `streams` pick independent sequences from one seed: e.g. `new SeededRandom(seed, STREAM_SHUFFLE, epoch)`. */
  constructor(seed: number, ...streams: number[]) {
    let state = (seed >>> 0) ^ 0x9e3779b9;
    for (const s of streams) state = mix32(state ^ Math.imul((s >>> 0) + 1, 0x85ebca6b));
    const next = () => (state = mix32((state + 0x9e3779b9) >>> 0));
    this.a = next();
    this.b = next();
    this.c = next();
    this.d = next();
    for (let i = 0; i < 12; i++) this.nextUint32();
  }

  /** Uniform integer in [0, 2^32). */
  nextUint32(): number {
    const t = (((this.a + this.b) >>> 0) + this.d) >>> 0;
    this.d = (this.d + 1) >>> 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) >>> 0;
    this.c = ((this.c << 21) | (this.c >>> 11)) >>> 0;
    this.c = (this.c + t) >>> 0;
    return t;
  }

  /** Uniform float in [0, 1) with 53 random bits. */
  nextFloat(): number {
    const hi = this.nextUint32() >>> 5; // 27 bits
    const lo = this.nextUint32() >>> 6; // 26 bits
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  /** Uniform integer in [0, n), without modulo bias. */
  nextInt(n: number): number {
    if (!Number.isInteger(n) || n <= 0 || n > 2 ** 32) throw new RangeError(`nextInt needs 0 < n <= 2^32, got ${n}`);
    const limit = 2 ** 32 - (2 ** 32 % n);
    let x: number;
    do x = this.nextUint32();
    while (x >= limit);
    return x % n;
  }

  /** A uniformly random permutation of 0..n-1 (Fisher–Yates). */
  permutation(n: number): Int32Array {
    const out = new Int32Array(n);
    for (let i = 0; i < n; i++) out[i] = i;
    for (let i = n - 1; i > 0; i--) {
      const j = this.nextInt(i + 1);
      const t = out[i];
      out[i] = out[j];
      out[j] = t;
    }
    return out;
  }
}

function mix32(x: number): number {
  x = Math.imul(x ^ (x >>> 16), 0x21f0aaad);
  x = Math.imul(x ^ (x >>> 15), 0x735a2d97);
  return (x ^ (x >>> 15)) >>> 0;
}

/** Stream ids: one per purpose, so the draws for one purpose never shift another's. */
export const STREAM_INIT = 1;
export const STREAM_SHUFFLE = 2;
export const STREAM_AUGMENT = 3;
export const STREAM_DROPOUT = 4;
/** airbench's augmentation: the flip drawn once per image for the whole run, and the translation per epoch and image. */
export const STREAM_AUGMENT_FLIP = 5;
export const STREAM_AUGMENT_TRANSLATE = 6;
