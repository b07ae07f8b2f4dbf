// Walks a synthesized JSONata state machine with the reference JSONata implementation.
//
// stdin: {"definition": {...}, "input": {...}, "results": {"StateName": result}, "errors": {"StateName": {"Error": ..., "Cause": ...}}}
// stdout: {"path": [state names], "calls": [{"state", "resource", "arguments"}], "status", "error", "cause", "output"}
//
// It interprets only what the pipelines use (Pass with Assign, Choice with Condition, Task with
// Arguments/Output/Catch, Succeed, Fail), with Step Functions' JSONata rules: "{% expr %}" strings are
// expressions, $states.input/result/errorOutput are bound, Assign sees the values from before the state.
// A task's result comes from "results" (default {}); an entry in "errors" makes the task fail instead.
// Anything else it meets is an error, so a test can never pass by skipping what it does not understand.
"use strict";
const jsonata = require("jsonata");

const EXPR = /^\{%([\s\S]*)%\}$/;

async function evaluate(value, states, vars) {
  if (typeof value === "string") {
    const m = EXPR.exec(value);
    if (!m) return value;
    const result = await jsonata(m[1]).evaluate({}, { ...vars, states });
    return result;
  }
  if (Array.isArray(value)) return Promise.all(value.map((v) => evaluate(v, states, vars)));
  if (value && typeof value === "object") {
    const out = {};
    for (const [k, v] of Object.entries(value)) {
      const r = await evaluate(v, states, vars);
      if (r !== undefined) out[k] = r;
    }
    return out;
  }
  return value;
}

function plain(value) {
  // JSONata sequences are arrays with extra flags; compare and print them as JSON.
  return value === undefined ? null : JSON.parse(JSON.stringify(value));
}

async function assign(state, states, vars) {
  if (!state.Assign) return vars;
  const updates = await evaluate(state.Assign, states, vars);
  return { ...vars, ...updates };
}

async function run({ definition, input, results = {}, errors = {} }) {
  if (definition.QueryLanguage !== "JSONata") throw new Error("only JSONata state machines are interpreted");
  let name = definition.StartAt;
  let data = input;
  let vars = {};
  const trace = { path: [], calls: [] };
  for (let step = 0; step < 100; step++) {
    const state = definition.States[name];
    if (!state) throw new Error(`no state ${name}`);
    trace.path.push(name);
    const states = { input: data };
    let next;
    switch (state.Type) {
      case "Pass": {
        const output = state.Output !== undefined ? await evaluate(state.Output, states, vars) : data;
        vars = await assign(state, states, vars);
        data = output;
        next = state.Next;
        break;
      }
      case "Choice": {
        next = state.Default;
        for (const choice of state.Choices) {
          if ((await evaluate(choice.Condition, states, vars)) === true) {
            next = choice.Next;
            break;
          }
        }
        if (!next) throw new Error(`States.NoChoiceMatched in ${name}`);
        break;
      }
      case "Task": {
        const args = await evaluate(state.Arguments, states, vars);
        trace.calls.push({ state: name, resource: state.Resource, arguments: plain(args) });
        if (errors[name]) {
          const failure = errors[name];
          const catcher = (state.Catch || []).find(
            (c) => c.ErrorEquals.includes(failure.Error) || c.ErrorEquals.includes("States.ALL")
          );
          const retrier = (state.Retry || []).find((r) => r.ErrorEquals.includes(failure.Error));
          trace.retried = trace.retried || {};
          trace.retried[name] = retrier ? retrier.MaxAttempts : 0;
          if (!catcher) {
            return { ...trace, status: "FAILED", error: failure.Error, cause: failure.Cause ?? null };
          }
          const errStates = { input: data, errorOutput: failure };
          data = catcher.Output !== undefined ? await evaluate(catcher.Output, errStates, vars) : failure;
          vars = await assign(catcher, errStates, vars);
          next = catcher.Next;
          break;
        }
        const result = results[name] ?? {};
        const resStates = { input: data, result };
        const output = state.Output !== undefined ? await evaluate(state.Output, resStates, vars) : result;
        vars = await assign(state, resStates, vars);
        data = output;
        next = state.End ? null : state.Next;
        break;
      }
      case "Succeed": {
        const output = state.Output !== undefined ? await evaluate(state.Output, states, vars) : data;
        return { ...trace, status: "SUCCEEDED", output: plain(output) };
      }
      case "Fail": {
        return {
          ...trace,
          status: "FAILED",
          error: plain(await evaluate(state.Error, states, vars)),
          cause: plain(await evaluate(state.Cause, states, vars)),
        };
      }
      default:
        throw new Error(`state type ${state.Type} (${name}) is not interpreted`);
    }
    if (next === null) return { ...trace, status: "SUCCEEDED", output: plain(data) };
    name = next;
  }
  throw new Error("more than 100 transitions");
}

let text = "";
process.stdin.on("data", (chunk) => (text += chunk));
process.stdin.on("end", async () => {
  try {
    const cases = JSON.parse(text);
    const out = [];
    for (const c of cases) {
      try {
        out.push(await run(c));
      } catch (e) {
        out.push({ status: "HARNESS_ERROR", message: String(e && e.message ? e.message : e), code: e && e.code });
      }
    }
    process.stdout.write(JSON.stringify(out));
  } catch (e) {
    process.stderr.write(String(e.stack || e));
    process.exit(2);
  }
});
