// hostile.js: counts what kind of data each event carries, and misbehaves
// on purpose for some event types.
function init(actor) { return { n: 0, kinds: {} }; }

function reduce(s, e) {
  s.n++;
  var k = e.data === null ? "null" : Array.isArray(e.data) ? "array" : typeof e.data;
  s.kinds[k] = (s.kinds[k] || 0) + 1;
  switch (e.type) {
    case "Boom": throw new Error("Boom at version " + e.version);
    case "Loop": for (;;) {}
    case "Grow": var a = []; for (;;) a.push(a.length);
    case "Undef": return undefined;
    case "Huge": s.huge = "x".repeat(2000000); break;
  }
  return s;
}
