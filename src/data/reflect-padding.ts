/**
 * The source coordinate of position `i` of a reflect-padded axis of length `n` (PyTorch's F.pad mode
 * 'reflect', NumPy's 'reflect': the edge is not repeated, so −1 → 1 and n → n − 2). For padding < n.
 */
export function reflectIndex(i: number, n: number): number {
  if (i < 0) return -i;
  if (i >= n) return 2 * (n - 1) - i;
  return i;
}
