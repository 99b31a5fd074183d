// probe.js: a reducer for tests. Its state lets a Go reference fold check
// that a snapshot holds exactly the actor's events up to Jetsnap-Last-Seq.
var revision = 3;

function init(actor) {
  return { actor: actor, gen: 3, n: 0, seqSum: 0, last: 0, bad: 0, types: {} };
}

function reduce(s, e) {
  s.n++;
  s.seqSum += e.seq;
  if (e.version !== s.n) s.bad++;        // versions must count events
  if (e.seq <= s.last) s.bad++;          // sequences must increase
  if (e.actor !== s.actor) s.bad++;
  s.last = e.seq;
  s.types[e.type] = (s.types[e.type] || 0) + 1;
  return s;
}
