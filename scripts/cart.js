// cart.js: a shopping cart. Reducer for actor type "cart" (events on
// events.cart.<id>; actor key "cart.<id>").
//
// This is the handlers form of a jetsnap reducer: a global `handlers`
// object with
//
//   $init(actor)        optional; the state before the first event
//                       (default {}). actor is the actor key, e.g. "cart.7".
//   <EventType>(s, e)   one function per event type; returns the new state.
//   $any(s, e)          optional; events with no handler of their own.
//                       Without it such events leave the state unchanged.
//
// e = { actor, type, data, seq, version, time, subject, headers }:
//   data is the payload parsed as JSON (a string if it is not JSON), seq the
//   EVENTS stream sequence, version the actor's version after this event,
//   time the RFC 3339 time it was stored, headers the first value of each.
//
// The state must be JSON and stay under JETSNAP_MAX_STATE_BYTES. Date.now()
// is the event's time, Math.random() is seeded from actor and version;
// top-level variables are reset for every fold, keep everything in state.
//
// `revision` names this reducer's version: snapshots made by another
// revision are never used, the actor is rebuilt from its first event. Bump
// it whenever a change alters the state the reducer computes. (Without it,
// the identity is a hash of this file.)
//
// Events (missing or invalid fields leave the state unchanged):
//   ItemAdded    { sku, qty? = 1, price? }   price in cents
//   ItemRemoved  { sku, qty? }               qty absent: remove the line
//   CheckedOut   { }                         later changes are ignored
//
// Try it:  jetsnap reduce --script scripts/cart.js --trace < scripts/testdata/cart.events.jsonl

var revision = 1;

var handlers = {
  $init: function (actor) {
    return { id: actor, items: [], count: 0, total: 0, checkedOut: false };
  },

  ItemAdded: function (cart, e) {
    var d = fields(e);
    var qty = d.qty === undefined ? 1 : d.qty;
    if (cart.checkedOut || !validSku(d.sku) || !validCount(qty)) return cart;
    var line = find(cart, d.sku);
    if (!line) {
      line = { sku: d.sku, qty: 0, price: 0 };
      cart.items.push(line);
    }
    line.qty += qty;
    if (validCount(d.price)) line.price = d.price;
    return totals(cart);
  },

  ItemRemoved: function (cart, e) {
    var d = fields(e);
    var line = find(cart, d.sku);
    if (cart.checkedOut || !line) return cart;
    if (validCount(d.qty) && d.qty < line.qty) {
      line.qty -= d.qty;
    } else {
      cart.items = cart.items.filter(function (l) { return l !== line; });
    }
    return totals(cart);
  },

  CheckedOut: function (cart, e) {
    if (cart.checkedOut) return cart;
    cart.checkedOut = true;
    cart.checkedOutAt = e.time;
    return cart;
  },
};

function fields(e) {
  return e.data !== null && typeof e.data === "object" ? e.data : {};
}

function validSku(s) {
  return typeof s === "string" && s !== "";
}

function validCount(n) {
  return typeof n === "number" && isFinite(n) && n >= 0 && Math.floor(n) === n;
}

function find(cart, sku) {
  for (var i = 0; i < cart.items.length; i++) {
    if (cart.items[i].sku === sku) return cart.items[i];
  }
  return null;
}

function totals(cart) {
  cart.count = 0;
  cart.total = 0;
  cart.items.forEach(function (l) {
    cart.count += l.qty;
    cart.total += l.qty * l.price;
  });
  return cart;
}
