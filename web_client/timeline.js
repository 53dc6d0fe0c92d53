// When each step of joining the call first happened, as performance.now() of
// this page (window.teleconsultMetrics.timeline; `teleconsult bench join`
// prints them): where an admission spends its time. Only the first time of a
// step is kept, so a long call does not grow it.

export const timeline = {};

/** Records `step` now (or at `at`), unless it already happened. */
export function mark(step, at = performance.now()) {
  if (!(step in timeline)) timeline[step] = Math.round(at * 10) / 10;
}
