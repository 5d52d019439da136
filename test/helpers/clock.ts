/** A manual clock for expiry tests: starts at the real time (file mtimes are real), moves only when told. */
export function manualClock(): { now: () => number; advance: (seconds: number) => void } {
  let time = Date.now();
  return {
    now: () => time,
    advance: (seconds) => {
      time += seconds * 1000;
    },
  };
}
