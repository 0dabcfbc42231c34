/**
 * Eigen-decomposition of a small real symmetric matrix by the cyclic Jacobi method, written for bit-identical
 * results on every machine rather than taken from a library: LAPACK's (torch.linalg.eigh) and other solvers'
 * results differ between builds and CPUs in the last bits and in the eigenvectors' signs, and the airbench
 * whitening filters built from them are part of a run's initial weights, which must be the same everywhere.
 *
 * Only IEEE float64 +, −, ×, ÷ and Math.sqrt are used (all correctly rounded, so identical in every JavaScript
 * engine and on every CPU; JavaScript never fuses a multiply-add), in a fixed order:
 * - sweeps over the pairs (p, q), p < q, row by row; a pair whose a_pq is 0, or negligible next to both a_pp and
 *   a_qq (|a_pp| + 100·|a_pq| == |a_pp|, the same for a_qq), gets a_pq = 0 and no rotation;
 * - the rotation of Numerical Recipes' `jacobi`: θ = (a_qq − a_pp) / (2·a_pq), t = sgn θ / (|θ| + √(θ² + 1))
 *   (t = 1/(2θ) when θ² would overflow), c = 1/√(t² + 1), s = t·c, τ = s/(1 + c);
 * - stop after the first sweep that rotates nothing (at most MAX_SWEEPS; quadratic convergence makes it ~6–10
 *   for a 12×12 covariance).
 * Then eigenvalues descending (ties by position), each eigenvector's largest-magnitude component positive (ties:
 * the first).
 */
export const MAX_SWEEPS = 100;

export interface SymmetricEigen {
  /** Eigenvalues, descending. */
  readonly values: Float64Array;
  /** Row k (n values) is the unit eigenvector of values[k]. */
  readonly vectors: Float64Array;
  /** Sweeps the solver took. */
  readonly sweeps: number;
}

/** The eigen-decomposition of the n×n symmetric matrix `matrix` (row-major); throws RangeError when it is not symmetric. */
export function symmetricEigen(matrix: ArrayLike<number>, n: number): SymmetricEigen {
  if (!Number.isSafeInteger(n) || n < 1 || matrix.length !== n * n) {
    throw new RangeError(`symmetricEigen needs an n×n matrix: got ${matrix.length} values for n = ${n}.`);
  }
  const a = Float64Array.from(matrix);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      if (!Number.isFinite(a[i * n + j])) throw new RangeError(`symmetricEigen: entry (${i}, ${j}) is ${a[i * n + j]}.`);
      if (a[i * n + j] !== a[j * n + i]) throw new RangeError(`symmetricEigen: the matrix is not symmetric at (${i}, ${j}).`);
    }
  }
  const v = new Float64Array(n * n);
  for (let i = 0; i < n; i++) v[i * n + i] = 1;

  let sweeps = 0;
  for (;;) {
    if (sweeps === MAX_SWEEPS) throw new RangeError(`symmetricEigen did not converge in ${MAX_SWEEPS} sweeps.`);
    sweeps++;
    let rotated = false;
    for (let p = 0; p < n - 1; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = a[p * n + q];
        if (apq === 0) continue;
        const app = a[p * n + p];
        const aqq = a[q * n + q];
        const g = 100 * Math.abs(apq);
        if (Math.abs(app) + g === Math.abs(app) && Math.abs(aqq) + g === Math.abs(aqq)) {
          a[p * n + q] = 0;
          a[q * n + p] = 0;
          continue;
        }
        rotate(a, v, n, p, q, apq, app, aqq);
        rotated = true;
      }
    }
    if (!rotated) break;
  }

  const order = Array.from({ length: n }, (_, i) => i).sort((i, j) => a[j * n + j] - a[i * n + i] || i - j);
  const values = new Float64Array(n);
  const vectors = new Float64Array(n * n);
  order.forEach((col, k) => {
    values[k] = a[col * n + col];
    let big = 0;
    for (let r = 1; r < n; r++) if (Math.abs(v[r * n + col]) > Math.abs(v[big * n + col])) big = r;
    const sign = v[big * n + col] < 0 ? -1 : 1;
    for (let r = 0; r < n; r++) vectors[k * n + r] = sign * v[r * n + col];
  });
  return { values, vectors, sweeps };
}

/** One Jacobi rotation zeroing a_pq, applied to a (both triangles) and accumulated into v's columns p and q. */
function rotate(a: Float64Array, v: Float64Array, n: number, p: number, q: number, apq: number, app: number, aqq: number): void {
  const theta = (aqq - app) / (2 * apq);
  const abs = Math.abs(theta);
  let t: number;
  if (abs > 1e150) t = 1 / (2 * theta);
  else {
    t = 1 / (abs + Math.sqrt(abs * abs + 1));
    if (theta < 0) t = -t;
  }
  const c = 1 / Math.sqrt(t * t + 1);
  const s = t * c;
  const tau = s / (1 + c);
  const h = t * apq;
  a[p * n + p] = app - h;
  a[q * n + q] = aqq + h;
  a[p * n + q] = 0;
  a[q * n + p] = 0;
  for (let r = 0; r < n; r++) {
    if (r === p || r === q) continue;
    const arp = a[r * n + p];
    const arq = a[r * n + q];
    const np = arp - s * (arq + arp * tau);
    const nq = arq + s * (arp - arq * tau);
    a[r * n + p] = np;
    a[p * n + r] = np;
    a[r * n + q] = nq;
    a[q * n + r] = nq;
  }
  for (let r = 0; r < n; r++) {
    const vrp = v[r * n + p];
    const vrq = v[r * n + q];
    v[r * n + p] = vrp - s * (vrq + vrp * tau);
    v[r * n + q] = vrq + s * (vrp - vrq * tau);
  }
}
