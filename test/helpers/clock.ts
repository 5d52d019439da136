/**
 * A manual clock for expiry tests, so they never sleep. It starts a minute ahead of the real
 * time: a file's mtime (set by the real clock when it is written) is then always in this
 * clock's past, and expiry depends on this clock alone.
 */
export function manualClock(): { now: () => number; advance: (seconds: number) => void } {
  let time = Date.now() + 60_000;
  return {
    now: () => time,
    advance: (seconds) => {
      time += seconds * 1000;
    },
  };
}
