// bench/phases.ts's result and its markdown (bench/http.ts puts it into bench/RESULTS.md).

export interface PhasesResult {
  readonly label: string;
  readonly date: string;
  /** Per repetition: requests per second, and raw write+fsync+rename per second (16 in flight) just before. */
  readonly runs: ReadonlyArray<{ readonly rps: number; readonly raw: number }>;
  /** ms per request of each phase (summed over the runs, divided by the requests), and calls per request. */
  readonly phases: Record<string, { readonly msPerRequest: number; readonly callsPerRequest: number }>;
  /** CPU of the server process (all its threads, user + system) per request, ms. */
  readonly serverCpuMsPerRequest: number;
}

/** The phases in the order a request meets them. */
const PHASE_ORDER = ['request', 'load', 'stat', 'commit', 'lock', 'read', 'atomic', 'unlock'];

/** The breakdown as a markdown table. */
export function renderPhases(result: PhasesResult): string {
  const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
  const lines = [
    `**${result.label}** (${result.date}): ${result.runs.map((run) => Math.round(run.rps)).join(' / ')} req/s; raw write+fsync+rename ` +
      `${result.runs.map((run) => Math.round(run.raw)).join(' / ')}/s in the same repetitions; paired ratio to raw, median ` +
      `${median(result.runs.map((run) => run.rps / run.raw)).toFixed(2)}×; server CPU ${result.serverCpuMsPerRequest.toFixed(2)} ms per request.`,
    '',
    '| phase | ms per request | calls per request |',
    '|---|---:|---:|',
  ];
  const order = (phase: string) => {
    const index = PHASE_ORDER.findIndex((prefix) => phase.startsWith(prefix));
    return index === -1 ? PHASE_ORDER.length : index;
  };
  for (const [phase, { msPerRequest, callsPerRequest }] of Object.entries(result.phases).sort(([a], [b]) => order(a) - order(b))) {
    lines.push(`| ${phase} | ${msPerRequest.toFixed(2)} | ${callsPerRequest.toFixed(2)} |`);
  }
  return `${lines.join('\n')}\n`;
}
