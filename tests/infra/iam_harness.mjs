// Evaluates AWS requests against IAM policies with @cloud-copilot/iam-simulate (all condition
// operators, wildcards, resource policies, and validation of actions against AWS's catalog).
// stdin: {"cases": [{"identityPolicies": [...], "resourcePolicy": {...}|null, "request": {...}}]}
// stdout: [{"result": "Allowed" | "ImplicitlyDenied" | "ExplicitlyDenied" | "Error", "errors": ...}]
import { readFileSync } from 'node:fs'
import { runSimulation } from '@cloud-copilot/iam-simulate'

const input = JSON.parse(readFileSync(0, 'utf8'))
const out = []
for (const c of input.cases) {
  const simulation = {
    identityPolicies: c.identityPolicies.map((policy, i) => ({ name: `policy${i}`, policy })),
    serviceControlPolicies: [],
    resourceControlPolicies: [],
    request: c.request,
  }
  if (c.resourcePolicy) simulation.resourcePolicy = c.resourcePolicy
  try {
    const r = await runSimulation(simulation, {})
    out.push(r.errors ? { result: 'Error', errors: r.errors } : { result: r.overallResult })
  } catch (e) {
    out.push({ result: 'Error', errors: String(e) })
  }
}
process.stdout.write(JSON.stringify(out))
