// slow.js: probe.js that busy-waits 30 ms per capture, so captures outlast
// a short AckWait and events are redelivered while being captured.
function init(actor) {
  var until = Date.now(); // the event's time: use a loop count instead
  for (var i = 0; i < 3e6; i++) {}
  return { actor: actor, n: 0, seqSum: 0, last: 0, bad: 0, types: {} };
}

function reduce(s, e) {
  s.n++;
  s.seqSum += e.seq;
  if (e.version !== s.n) s.bad++;
  if (e.seq <= s.last) s.bad++;
  if (e.actor !== s.actor) s.bad++;
  s.last = e.seq;
  s.types[e.type] = (s.types[e.type] || 0) + 1;
  return s;
}
