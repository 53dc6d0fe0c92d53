// A short two-tone chime made on the spot, on the join page and the desk: no
// audio file to fetch, nothing to allow in the CSP. Browsers play it only once
// the page has had a click, which the practitioner's "Open consultation" is.

let context = null;

export function chime() {
  try {
    context = context || new AudioContext();
    const now = context.currentTime;
    [880, 660].forEach((frequency, index) => {
      const start = now + index * 0.18;
      const oscillator = context.createOscillator();
      const gain = context.createGain();
      oscillator.frequency.value = frequency;
      gain.gain.setValueAtTime(0.0001, start);
      gain.gain.exponentialRampToValueAtTime(0.2, start + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, start + 0.16);
      oscillator.connect(gain).connect(context.destination);
      oscillator.start(start);
      oscillator.stop(start + 0.17);
    });
  } catch {
    // No sound device: the tab title still changes.
  }
}
