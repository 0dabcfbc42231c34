/**
 * The Node flag every `npm run worker` process runs with (package.json, Dockerfile, docker-compose.yml and the
 * benchmark's workers all pass it; a test checks they agree).
 *
 * A worker's main thread turns over ~1 MB of short-lived buffers per step (the weights it fetches, the results
 * it sends) and keeps nothing of them. With V8's default young generation (16 MB semi-spaces) that garbage
 * piles up to ~90 MB of RSS per process before it is collected; with 2 MB semi-spaces it is collected sooner,
 * at no measurable cost in speed. Measured (coordinator + 2 remote workers, batch 128, one epoch): peak RSS per
 * worker 408–431 MB → 369–377 MB.
 */
export const WORKER_HEAP_FLAG = '--max-semi-space-size=2';
