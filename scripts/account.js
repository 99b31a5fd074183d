// account.js: the balance of a bank account. Reducer for actor type
// "account" (events on events.account.<id>; actor key "account.<id>").
//
// This is the function form of a jetsnap reducer:
//
//   function init(actor)          optional; returns the state before the
//                                 first event (default {}). actor is the
//                                 actor key, e.g. "account.42".
//   function reduce(state, event) required; returns the state after event.
//
// event = { actor, type, data, seq, version, time, subject, headers }:
//   type     the event type (subject token, Event-Type header, or the
//            payload's "type" field), "" if none
//   data     the payload parsed as JSON, or a string if it is not JSON
//   seq      EVENTS stream sequence; version: the actor's version after
//            this event (1-based); time: RFC 3339 time it was stored
//   headers  message headers, first value of each
//
// The state must be JSON (no functions, cycles, BigInt or undefined) and
// stay under JETSNAP_MAX_STATE_BYTES. Date.now() is the event's time and
// Math.random() is seeded from actor and version, so folds are repeatable;
// top-level variables are reset for every fold, keep everything in state.
// No require, timers, files, network or process; console.log is for
// `jetsnap reduce` and is dropped by the service.
//
// Without a `revision`, the reducer's identity is a hash of this file: any
// edit (even a comment) makes jetsnap rebuild account snapshots from the
// start. Define `var revision = 1;` and bump it by hand to control that.
//
// Events (anything else, or a missing or invalid amount, leaves the state
// unchanged, so a reducer never stops on unexpected input):
//   Opened     { owner?, currency? }
//   Deposited  { amount }       amount > 0
//   Withdrawn  { amount }       amount > 0; the balance may go negative
//   Closed     { reason? }
//
// Try it:  jetsnap reduce --script scripts/account.js --trace < scripts/testdata/account.events.jsonl

function init(actor) {
  return { id: actor, status: "new", balance: 0, deposits: 0, withdrawals: 0, updated: null };
}

function reduce(state, event) {
  var d = event.data !== null && typeof event.data === "object" ? event.data : {};
  switch (event.type) {
    case "Opened":
      state.status = "open";
      if (typeof d.owner === "string") state.owner = d.owner;
      if (typeof d.currency === "string") state.currency = d.currency;
      break;
    case "Deposited":
      if (!validAmount(d.amount)) return state;
      state.balance += d.amount;
      state.deposits++;
      break;
    case "Withdrawn":
      if (!validAmount(d.amount)) return state;
      state.balance -= d.amount;
      state.withdrawals++;
      break;
    case "Closed":
      state.status = "closed";
      if (typeof d.reason === "string") state.reason = d.reason;
      break;
    default:
      return state;
  }
  state.updated = event.time;
  return state;
}

function validAmount(a) {
  return typeof a === "number" && isFinite(a) && a > 0;
}
