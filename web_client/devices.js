// Camera and microphone: getting them, explaining why we could not, and the
// microphone level shown during the device check.

const CONSTRAINTS = {
  audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true },
  video: { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 30 } },
};

/** `message` is a catalogue key (locales/*.json). */
export class DeviceError extends Error {
  constructor(message) {
    super(message);
    this.name = "DeviceError";
  }
}

/** Camera and microphone together: the relay expects both tracks. */
export async function openCameraAndMicrophone() {
  if (!navigator.mediaDevices || typeof navigator.mediaDevices.getUserMedia !== "function") {
    // Also what happens on plain http:// outside localhost (no secure context).
    throw new DeviceError("devices.no_camera_api");
  }
  try {
    return await navigator.mediaDevices.getUserMedia(CONSTRAINTS);
  } catch (error) {
    throw new DeviceError(explainMediaError(error));
  }
}

function explainMediaError(error) {
  switch (error && error.name) {
    case "NotAllowedError":
    case "SecurityError":
      return "devices.blocked";
    case "NotFoundError":
    case "OverconstrainedError":
      return "devices.not_found";
    case "NotReadableError":
    case "AbortError":
      return "devices.in_use";
    default:
      return "devices.failed";
  }
}

export function stopStream(stream) {
  if (!stream) return;
  for (const track of stream.getTracks()) track.stop();
}

/**
 * Drives a <meter> from the microphone's loudness. Uses an AnalyserNode that
 * is not connected to the speakers, so the person does not hear themselves.
 */
export class MicLevel {
  constructor(stream, meter) {
    this.meter = meter;
    this.frame = 0;
    this.level = 0;
    this.context = null;
    const AudioContextClass = window.AudioContext || window.webkitAudioContext;
    if (!AudioContextClass || stream.getAudioTracks().length === 0) return;
    this.context = new AudioContextClass();
    this.analyser = this.context.createAnalyser();
    this.analyser.fftSize = 1024;
    this.samples = new Float32Array(this.analyser.fftSize);
    this.context.createMediaStreamSource(stream).connect(this.analyser);
    // Browsers may start the context suspended until the person interacts.
    this.resume = () => {
      if (this.context && this.context.state === "suspended") this.context.resume().catch(() => {});
    };
    this.resume();
    document.addEventListener("pointerdown", this.resume);
    document.addEventListener("keydown", this.resume);
    this.tick = this.tick.bind(this);
    this.frame = requestAnimationFrame(this.tick);
  }

  tick() {
    this.analyser.getFloatTimeDomainData(this.samples);
    let sum = 0;
    for (const sample of this.samples) sum += sample * sample;
    const rms = Math.sqrt(sum / this.samples.length);
    // Speech sits around 0.02–0.2 RMS; scale it so talking fills most of the
    // bar, and let it fall slowly so the eye can follow.
    const target = Math.min(1, rms * 5);
    this.level = Math.max(target, this.level * 0.9);
    this.meter.value = this.level;
    this.frame = requestAnimationFrame(this.tick);
  }

  stop() {
    cancelAnimationFrame(this.frame);
    this.meter.value = 0;
    if (!this.context) return;
    document.removeEventListener("pointerdown", this.resume);
    document.removeEventListener("keydown", this.resume);
    this.context.close().catch(() => {});
    this.context = null;
  }
}
