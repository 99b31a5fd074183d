// echo.js: keeps everything a reducer sees of the last event, so tests can
// compare snapshots made from buffered events and from the stream.
function init(actor) { return { n: 0, last: null }; }

function reduce(s, e) {
  s.n++;
  s.last = { actor: e.actor, type: e.type, data: e.data, seq: e.seq, version: e.version,
             time: e.time, subject: e.subject, headers: e.headers, now: Date.now() };
  return s;
}
