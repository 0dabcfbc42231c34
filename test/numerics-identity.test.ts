import test from 'ava';
import { effectiveIsa, nativeNumerics, portableNumerics } from '../src/compute/numerics-identity.ts';
import { AUTO_RULES, DEFAULT_AUTO_RULE, autoCandidates, autoReason, autoRule, nativeBackendInstalled } from '../src/compute/auto-backend.ts';
import { MODELS } from '../src/model/model-registry.ts';

const flags = (list: string) => new Set(list.split(' '));
const ZEN5 = flags('fma sse4_1 sse4_2 avx avx2 avx512f avx512dq avx512cd avx512bw avx512vl avx512_bf16 avx512_vnni');
const ALDER_LAKE = flags('fma sse4_1 sse4_2 avx avx2 avx_vnni');
const SAPPHIRE_RAPIDS = new Set([...ZEN5, 'avx512_fp16', 'amx_tile', 'amx_int8', 'amx_bf16']);

test("effectiveIsa follows oneDNN's ladder: the best level the CPU has, capped by ONEDNN_MAX_CPU_ISA", (t) => {
  t.is(effectiveIsa(ZEN5, undefined), 'avx512_core_bf16');
  t.is(effectiveIsa(ZEN5, 'AVX2'), 'avx2');
  t.is(effectiveIsa(ZEN5, 'avx512_core'), 'avx512_core');
  t.is(effectiveIsa(ZEN5, 'AVX2_VNNI'), 'avx2', 'no avx_vnni on this CPU: the cap falls to avx2');
  t.is(effectiveIsa(ZEN5, 'AVX512_CORE_AMX'), 'avx512_core_bf16', 'a cap above the CPU changes nothing');
  t.is(effectiveIsa(ZEN5, 'DEFAULT'), 'avx512_core_bf16');
  t.is(effectiveIsa(ZEN5, 'nonsense'), 'avx512_core_bf16', 'oneDNN ignores values it does not know');
  t.is(effectiveIsa(ALDER_LAKE, undefined), 'avx2_vnni');
  t.is(effectiveIsa(ALDER_LAKE, 'AVX512_CORE'), 'avx2_vnni');
  t.is(effectiveIsa(SAPPHIRE_RAPIDS, undefined), 'avx10_1_512_amx');
  t.is(effectiveIsa(SAPPHIRE_RAPIDS, 'avx512_core_fp16'), 'avx10_1_512', 'old spelling');
  t.is(effectiveIsa(flags('sse4_1 sse4_2'), undefined), 'sse41');
  t.is(effectiveIsa(new Set(), undefined), 'baseline');
});

test('nativeNumerics names the TensorFlow version, intra-op threads, oneDNN, the ISA and the CPU model', (t) => {
  const cpuinfo = 'processor\t: 0\nmodel name\t: AMD   EPYC 9B45\nflags\t\t: fma sse4_1 avx avx2 avx512f avx512dq avx512bw avx512vl avx512_vnni\n';
  t.is(nativeNumerics('2.21.0', { TF_NUM_INTRAOP_THREADS: '1' }, cpuinfo), 'node: tf 2.21.0, intra-op 1, onednn on, isa avx512_core_vnni, cpu AMD EPYC 9B45');
  t.is(
    nativeNumerics('2.21.0', { TF_NUM_INTRAOP_THREADS: '1', TF_ENABLE_ONEDNN_OPTS: 'False', ONEDNN_MAX_CPU_ISA: 'AVX2' }, cpuinfo),
    'node: tf 2.21.0, intra-op 1, onednn off, isa avx2, cpu AMD EPYC 9B45',
  );
  t.is(nativeNumerics('2.9.1', {}, ''), 'node: tf 2.9.1, intra-op all cores, onednn on, isa baseline, cpu unknown');
});

test('the portable backends have one identity each, the same on every machine', (t) => {
  const all = (['wasm', 'fused', 'cpu'] as const).map(portableNumerics);
  t.is(new Set(all).size, 3);
  for (const [i, name] of (['wasm', 'fused', 'cpu'] as const).entries()) t.true(all[i].startsWith(`${name}:`), all[i]);
});

test("auto's table: a row per measured model, known models and backends only; fused first for the tutorial net", (t) => {
  for (const [model, rule] of Object.entries(AUTO_RULES)) {
    t.true(model in MODELS, `${model} is a model`);
    t.true(rule.order.length > 0 && rule.order.every((b) => ['fused', 'node', 'wasm', 'cpu'].includes(b)), model);
    t.true(rule.why.length > 0 && rule.why.length < 90, rule.why);
  }
  t.is(autoRule('tutorial').order[0], 'fused');
  t.is(autoRule('no-such-model'), DEFAULT_AUTO_RULE);
  t.deepEqual(autoCandidates('tutorial'), nativeBackendInstalled() ? ['fused', 'wasm', 'node'] : ['fused', 'wasm']);
  t.deepEqual(autoCandidates('bn-cnn'), nativeBackendInstalled() ? ['node', 'wasm'] : ['wasm']);
  t.regex(autoReason('tutorial', 'fused'), /^auto, fastest measured for tutorial: fused /);
  t.regex(autoReason('bn-cnn', 'wasm'), nativeBackendInstalled() ? /node did not start$/ : /node is not installed$/);
});
