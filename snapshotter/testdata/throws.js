// throws.js: fails on events of type "Boom", folds the others.
function init(actor) { return { n: 0 }; }

function reduce(s, e) {
  if (e.type === "Boom") throw new Error("cannot handle Boom");
  s.n++;
  return s;
}
