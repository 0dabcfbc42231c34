/**
 * One weights version at a time in a ThreadPool: a job for the loaded version runs at once; a job for a newer
 * version waits until the jobs on the older one are done, then loads it (once) for everyone; a job for an older
 * version fails (its step is over: the coordinator publishes a version only after the previous step is complete).
 */
export class WeightsGate {
  private loaded = -1;
  private inFlight = 0;
  private switching: Promise<void> | undefined;
  private drained: (() => void)[] = [];

  async use<T>(version: number, load: (version: number) => Promise<void>, work: () => Promise<T>): Promise<T> {
    for (;;) {
      if (version === this.loaded && !this.switching) {
        this.inFlight += 1;
        try {
          return await work();
        } finally {
          this.inFlight -= 1;
          if (this.inFlight === 0) for (const wake of this.drained.splice(0)) wake();
        }
      }
      if (version < this.loaded) {
        throw new Error(`weights version ${version} is superseded by version ${this.loaded}: the coordinator has moved on`);
      }
      if (this.switching) {
        await this.switching.catch(() => undefined);
        continue;
      }
      this.switching = (async () => {
        if (this.inFlight > 0) await new Promise<void>((resolve) => this.drained.push(resolve));
        await load(version);
        this.loaded = version;
      })().finally(() => {
        this.switching = undefined;
      });
      await this.switching;
    }
  }
}

