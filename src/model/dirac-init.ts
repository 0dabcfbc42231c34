/**
 * torch.nn.init.dirac_ on the first C_in filters of a convolution kernel, as airbench initialises every 3×3
 * convolution (`dirac_(w[:w.size(1)])` after PyTorch's default init): filter k < min(C_in, C_out) becomes the
 * identity on input channel k — 1 at the kernel's centre (⌊kh/2⌋, ⌊kw/2⌋), 0 everywhere else — and the
 * filters from C_in on keep their values. `kernel` is the tensor in TensorFlow.js layout [kh, kw, in, out]
 * (e.g. a subarray of the flat parameter vector), changed in place.
 */
export function diracInit(kernel: Float32Array, shape: readonly number[]): void {
  if (shape.length !== 4 || !shape.every((d) => Number.isSafeInteger(d) && d > 0)) {
    throw new RangeError(`diracInit needs a conv kernel shape [kh, kw, in, out], got [${shape.join(', ')}].`);
  }
  const [kh, kw, cin, cout] = shape;
  if (kernel.length !== kh * kw * cin * cout) {
    throw new RangeError(`diracInit: a [${shape.join(', ')}] kernel has ${kh * kw * cin * cout} values, got ${kernel.length}.`);
  }
  const identities = Math.min(cin, cout);
  for (let y = 0; y < kh; y++) {
    for (let x = 0; x < kw; x++) {
      for (let c = 0; c < cin; c++) {
        const row = ((y * kw + x) * cin + c) * cout;
        kernel.fill(0, row, row + identities);
      }
    }
  }
  const centre = (Math.floor(kh / 2) * kw + Math.floor(kw / 2)) * cin;
  for (let k = 0; k < identities; k++) kernel[(centre + k) * cout + k] = 1;
}
