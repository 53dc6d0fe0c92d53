// The browser's own floor for `teleconsult bench join`: two peer connections in
// one page, camera already running, from createOffer to a first decoded frame
// both ways. No server, no relay, no encryption of our own: what any WebRTC
// call on this machine costs at least.

function firstFrame(video) {
  return new Promise((resolve) => {
    const done = () => resolve(performance.now());
    if (typeof video.requestVideoFrameCallback === "function") video.requestVideoFrameCallback(done);
    else video.addEventListener("loadeddata", done, { once: true });
  });
}

async function once() {
  const streamA = await navigator.mediaDevices.getUserMedia({ audio: true, video: true });
  const streamB = await navigator.mediaDevices.getUserMedia({ audio: true, video: true });
  const a = new RTCPeerConnection();
  const b = new RTCPeerConnection();
  a.onicecandidate = (event) => event.candidate && b.addIceCandidate(event.candidate);
  b.onicecandidate = (event) => event.candidate && a.addIceCandidate(event.candidate);
  const videoA = document.getElementById("a");
  const videoB = document.getElementById("b");
  videoA.srcObject = null;
  videoB.srcObject = null;
  a.ontrack = (event) => { videoA.srcObject = event.streams[0]; };
  b.ontrack = (event) => { videoB.srcObject = event.streams[0]; };
  const framesA = firstFrame(videoA);
  const framesB = firstFrame(videoB);
  for (const track of streamA.getTracks()) a.addTrack(track, streamA);
  for (const track of streamB.getTracks()) b.addTrack(track, streamB);
  const started = performance.now();
  await a.setLocalDescription(await a.createOffer());
  await b.setRemoteDescription(a.localDescription);
  await b.setLocalDescription(await b.createAnswer());
  await a.setRemoteDescription(b.localDescription);
  const [atA, atB] = await Promise.all([framesA, framesB]);
  a.close();
  b.close();
  for (const track of [...streamA.getTracks(), ...streamB.getTracks()]) track.stop();
  return Math.max(atA, atB) - started;
}

window.measureFloor = once;
document.body.dataset.state = "ready";
