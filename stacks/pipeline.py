"""The pipeline of a dataset: its state machine (read the request, run the layers asked for) and the
rules that send its failures, and its Glue jobs' failures, to the stage's failure topic."""

from __future__ import annotations

import json
from collections.abc import Sequence

from aws_cdk import Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from dwlib.naming import DROP_MARKER, Naming
from stacks import defaults
from stacks.nag import acknowledge
from stacks.tokens import Aws

# The pipeline's input, from a schedule ({}), by hand ({"layers": [...], "dry_run": true, "run_id": ...,
# "raw_run_id": ...}, all optional) or an S3 "Object Created" event of a drop's marker, read once by
# one JSONata block into $request. Whatever is wrong with it lands in $request.problem, and the run
# fails with that message before any job starts. Run ids are UTC YYYYMMDDTHHMMSSZ.
RUN_ID_PATTERN = "/^(?!0000)[0-9]{4}(0[1-9]|1[0-2])(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3])[0-5][0-9][0-5][0-9]Z$/"
# A run id is a moment in time, as the jobs check it (dwlib.naming.check_run_id): the shape, then the round trip
# through a date, which turns 20260230T000000Z into March. JSONata's $toMillis misreads a picture whose fields
# touch, so the id is spelt as ISO 8601 for it; `and` stops at the first false, so nothing else is parsed.
RUN_ID_CHECK = (
    "$run_id_ok := function($r) { $type($r) = 'string' and $contains($r, " + RUN_ID_PATTERN + ") and "
    "$fromMillis($toMillis($substring($r, 0, 4) & '-' & $substring($r, 4, 2) & '-' & $substring($r, 6, 2) & 'T' & "
    "$substring($r, 9, 2) & ':' & $substring($r, 11, 2) & ':' & $substring($r, 13, 2) & 'Z'), "
    "'[Y0001][M01][D01]T[H01][m01][s01]Z') = $r };\n"
)
NOW_RUN_ID = "$now('[Y0001][M01][D01]T[H01][m01][s01]Z')"
MANUAL_KEYS = ("layers", "dry_run", "raw_run_id", "run_id")
# A key $decodeUrlComponent decodes without an error: every % starts an escape, and the escapes spell
# UTF-8 (JSONata throws on `%FF` or a cut sequence, and the execution would fail with that, not the key).
_CONT = "%[89ab][0-9a-f]"
DECODABLE = (
    "/^(?:[^%]|%[0-7][0-9a-f]"
    f"|%c[2-9a-f]{_CONT}|%d[0-9a-f]{_CONT}"
    f"|%e0%[ab][0-9a-f]{_CONT}|%e[1-9a-c]{_CONT}{_CONT}|%ed%[89][0-9a-f]{_CONT}|%e[ef]{_CONT}{_CONT}"
    f"|%f0%(?:9[0-9a-f]|[ab][0-9a-f]){_CONT}{_CONT}|%f[1-3]{_CONT}{_CONT}{_CONT}|%f4%8[0-9a-f]{_CONT}{_CONT}"
    ")*$/i"
)


def request_expression(raw_dataset_prefix: str, layers: tuple[str, ...]) -> str:
    """The JSONata block that turns any start of the pipeline into $request (see README, "Starting a run")."""
    all_layers = "[" + ", ".join(f"'{layer}'" for layer in layers) + "]"
    allowed = "[" + ", ".join(f"'{k}'" for k in MANUAL_KEYS) + "]"
    expression = (
        "{% (\n"
        "  $in := $states.input;\n"
        + RUN_ID_CHECK
        + "  $arrival := $in.source = 'aws.s3' and $in.`detail-type` = 'Object Created';\n"
        # S3 may URL-encode keys in events (a space as +, = as %3D); decode unless that would fail.
        "  $raw := $arrival ? $string($in.detail.object.key) : '';\n"
        f"  $key := $contains($raw, {DECODABLE}) ? $decodeUrlComponent($replace($raw, '+', ' ')) : $raw;\n"
        "  $found := $match($key, /(^|[/])run_id=([^/]*)[/]/);\n"
        # What the arrival rule lets through only; anything else that reaches here starts nothing either. The
        # rule's `*` spans `/`, so a marker in a sub-folder of a drop (Spark's own _SUCCESS in a copied output
        # folder, which can land before the drop's other files) also gets here: only the marker directly in
        # the run folder starts the run.
        f"  $ignore := $arrival and ($in.detail.object.size = 0 or $not($contains($key, /[/]{DROP_MARKER}$/))"
        f" or ($exists($found) and $key != $substring($key, 0, $found[0].index + $length($found[0].match))"
        f" & '{DROP_MARKER}'));\n"
        f"  $unknown := $arrival ? [] : $filter($keys($in), function($k) {{ $not($k in {allowed}) }});\n"
        "  $run_id := $arrival ? ($exists($found) ? $found[0].groups[1] : '')"
        f" : ($exists($in.run_id) ? $in.run_id : {NOW_RUN_ID});\n"
        f"  $layers := $arrival or $not($exists($in.layers)) ? {all_layers} : $in.layers;\n"
        "  $dry_run := $arrival ? false : ($exists($in.dry_run) ? $in.dry_run : false);\n"
        "  $raw_run_id := $arrival ? 'none' : ($exists($in.raw_run_id) ? $in.raw_run_id : 'none');\n"
        "  $problem := $not($arrival) and $type($in) != 'object' ?\n"
        "      'the input ' & $string($in) & ' is not a JSON object: start the pipeline with {} or with fields "
        f"{', '.join(MANUAL_KEYS)}'\n"
        "    : $arrival and $substring($key, 0, "
        f"{len(raw_dataset_prefix)}) != '{raw_dataset_prefix}' ?\n"
        f"      'the object ' & $key & ' is not under {raw_dataset_prefix}: this pipeline only takes drops there'\n"
        "    : $arrival and $not($exists($found)) ?\n"
        "      'the object ' & $key & ' has no run_id=YYYYMMDDTHHMMSSZ/ folder in its key: put a drop under "
        f"{raw_dataset_prefix}run_id=YYYYMMDDTHHMMSSZ/ and write its marker last'\n"
        "    : $count($unknown) > 0 ?\n"
        f"      'unknown input field(s) ' & $join($unknown, ', ') & ': the pipeline takes {', '.join(MANUAL_KEYS)}'\n"
        "    : $not($run_id_ok($run_id)) ?\n"
        "      'run id ' & $string($run_id) & ($arrival ? ' (from the object ' & $key & ')' : '')"
        " & ' is not a moment in time written YYYYMMDDTHHMMSSZ, such as 20261121T060000Z'\n"
        "    : $raw_run_id != 'none' and $not($run_id_ok($raw_run_id)) ?\n"
        "      'raw_run_id ' & $string($raw_run_id) & ' is not a moment in time written YYYYMMDDTHHMMSSZ, such as 20261121T060000Z'\n"
        "    : $type($layers) != 'array' or $count($layers) = 0"
        f" or $count($filter($layers, function($l) {{ $not($l in {all_layers}) }})) > 0 ?\n"
        f"      'layers ' & $string($layers) & ' must be a non-empty list of {', '.join(layers)}'"
        + (
            " & ($count($filter($layers, function($l) { $l = 'gold' })) > 0 ? ' (this dataset has no gold models)' : '')"
            if "gold" not in layers
            else ""
        )
        + "\n"
        "    : $type($dry_run) != 'boolean' ? 'dry_run ' & $string($dry_run) & ' must be true or false'\n"
        "    : null;\n"
        "  {'arrival': $arrival, 'ignore': $ignore, 'key': $key, 'run_id': $run_id, 'raw_run_id': $raw_run_id,\n"
        "   'layers': $layers, 'dry_run': $dry_run, 'problem': $problem}\n"
        ") %}"
    )
    # One line: asl-validator (and the ASL schema it follows) takes "{% expr %}" without line breaks.
    return " ".join(line.strip() for line in expression.splitlines())


JOB_FAILURE_STATES = ("FAILED", "TIMEOUT", "STOPPED", "ERROR")


# Transient Glue API errors only: throttling, the one-run concurrency slot still taken, the account's quota of
# concurrent runs or DPUs reached (many datasets scheduled at one hour), internal errors. Not a wrong request
# (InvalidInput, EntityNotFound). A job run that FAILED (bad data, a failed quality budget) surfaces as
# States.TaskFailed: never retried.
TRANSIENT_GLUE_ERRORS = (
    "Glue.ConcurrentRunsExceededException",
    "Glue.InternalServiceException",
    "Glue.OperationTimeoutException",
    "Glue.ResourceNumberLimitExceededException",
    "Glue.ThrottlingException",
    # Glue's API models no ThrottlingException: a throttled start reaches Step Functions as the SDK's base
    # class, "Glue.AWSGlueException" with "Rate exceeded ... Error Code: ThrottlingException" as its cause
    # (AWS knowledge center, "glue-throttling-rate-exceeded"). Errors Glue does model keep their own names.
    "Glue.AWSGlueException",
)
RETRY = {"IntervalSeconds": 60, "MaxAttempts": 3, "BackoffRate": 2.0, "MaxDelaySeconds": 300, "JitterStrategy": "FULL"}
# With MaxRetries 0, Glue itself may hold a new run WAITING for capacity up to 15 minutes before it starts.
GLUE_CAPACITY_WAIT_S = 15 * 60
PIPELINE_MARGIN_S = 5 * 60


def retry_wait_seconds(retry: dict = RETRY) -> int:
    """The longest the retries of one task can wait in all (full jitter only shortens each wait)."""
    return int(
        sum(
            min(retry["IntervalSeconds"] * retry["BackoffRate"] ** i, retry["MaxDelaySeconds"])
            for i in range(retry["MaxAttempts"])
        )
    )


def pipeline_timeout_seconds(job_timeout_minutes: int, jobs: int) -> int:
    """Each job in turn: its own timeout, Glue's capacity wait and our retries' waits; then a margin."""
    return jobs * (job_timeout_minutes * 60 + GLUE_CAPACITY_WAIT_S + retry_wait_seconds()) + PIPELINE_MARGIN_S


def _js_numbers(value):
    """Whole floats as integers, as JavaScript prints them."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _js_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_js_numbers(v) for v in value]
    return value


class StateGraph:
    """The order the CDK's state graph lists states in (aws-stepfunctions' State.bindToGraph): from the
    start, depth first, each state's not yet listed predecessors (in the order they were wired), then
    its successors (next, default, choices, catches)."""

    def __init__(self):
        self.states: dict[str, dict] = {}
        self.incoming: dict[str, list[str]] = {}

    def add(self, name: str, state: dict) -> None:
        self.states[name] = _js_numbers(state)
        self.incoming.setdefault(name, [])
        self.wire(name)

    def wire(self, name: str) -> None:
        """Record `name` as a predecessor of its successors (a state's wiring, once all of them exist)."""
        for target in self.successors(name):
            if target in self.states and name not in self.incoming.setdefault(target, []):
                self.incoming[target].append(name)

    def successors(self, name: str) -> list[str]:
        state = self.states[name]
        found = [state[k] for k in ("Next", "Default") if k in state]
        found += [c["Next"] for c in state.get("Choices", [])]
        found += [c["Next"] for c in state.get("Catch", [])]
        return found

    def ordered(self, start: str) -> dict[str, dict]:
        listed: dict[str, dict] = {}

        def bind(name: str) -> None:
            if name in listed:
                return
            listed[name] = self.states[name]
            for other in [*self.incoming[name], *self.successors(name)]:
                bind(other)

        bind(start)
        if listed.keys() != self.states.keys():
            raise ValueError(f"states not reachable from {start}: {sorted(self.states.keys() - listed.keys())}")
        return listed


class Pipeline:
    """State machine, its log group and its two failure rules, created in the dataset stack's own scope:
    the construct IDs (and so the logical IDs) are the ones the stack always had."""

    def __init__(
        self,
        stack: Stack,
        *,
        naming: Naming,
        dataset: str,
        layers: Sequence[str],
        timeout_minutes: int,
        topic_arn: str,
    ):
        self.stack, self.naming, self.dataset, self.layers = stack, naming, dataset, tuple(layers)
        self.state_machine = self._state_machine(timeout_minutes)
        self.topic_arn = topic_arn
        acknowledge(
            self.state_machine,
            "AwsSolutions-IAM5",
            "Step Functions' own policy for X-Ray and log delivery has no resource-level scoping",
            ["Resource::*"],
        )

    def _glue_step(self, layer: str) -> dict:
        """glue:startJobRun.sync written out, so its arguments are exactly ours (no NotificationProperty)."""
        arguments = {"--run_id": "{% $request.run_id %}", "--dry_run": "{% $request.dry_run ? 'true' : 'false' %}"}
        if layer == "bronze":
            arguments["--raw_run_id"] = "{% $request.raw_run_id %}"
        job = self.naming.job(layer, self.dataset)
        return {
            "Type": "Task",
            "Comment": f"Runs the Glue job {job} and waits for it",
            "Resource": f"arn:{Aws.PARTITION}:states:::glue:startJobRun.sync",
            "Arguments": {"JobName": job, "Arguments": arguments},
            "Output": {
                "run_id": "{% $request.run_id %}",
                "layer": layer,
                "job_run_id": "{% $states.result.Id %}",
                "state": "{% $states.result.JobRunState %}",
            },
            "Retry": [{"ErrorEquals": list(TRANSIENT_GLUE_ERRORS), **RETRY}],
        }

    def definition(self, timeout_seconds: int) -> dict:
        """The Amazon States Language definition, written as the data it is: one string handed to the
        CDK once, instead of a dozen state constructs and their calls into the CDK's Node process. The
        states are listed in the order the CDK's own state graph lists them, so the template is the one
        the state constructs gave."""
        name = self.dataset
        machine_name = self.naming.state_machine(name)
        own_arn = f"arn:{Aws.PARTITION}:states:{Aws.REGION}:{Aws.ACCOUNT_ID}:stateMachine:{machine_name}"
        graph = StateGraph()
        graph.add(
            "ReadInput",
            {
                "Type": "Pass",
                "Comment": "A schedule, a start by hand or a drop's marker: one $request, or the problem with it",
                "Next": "CheckInput",
                "Assign": {"request": request_expression(self.naming.raw_dataset_prefix(name), self.layers)},
            },
        )
        # Wired in the order the state constructs were: the drop's start and its catch, the input
        # check's choices, the layers from the last to the first, then the input check's default.
        graph.add(
            "StartRunOfDrop",
            {
                "End": True,
                "Type": "Task",
                "Comment": "Starts this pipeline once per run id, with the drop's run id",
                "Resource": f"arn:{Aws.PARTITION}:states:::states:startExecution",
                "Arguments": {
                    "StateMachineArn": own_arn,
                    "Name": "{% $request.run_id %}",
                    "Input": {"run_id": "{% $request.run_id %}"},
                },
                "Output": {"run_id": "{% $request.run_id %}", "started": "{% $states.result.ExecutionArn %}"},
                "Catch": [{"ErrorEquals": ["StepFunctions.ExecutionAlreadyExistsException"], "Next": "AlreadyStarted"}],
            },
        )
        graph.add(
            "AlreadyStarted",
            {
                "Type": "Succeed",
                "Comment": "This run id already ran or runs: a repeated marker event starts nothing",
            },
        )
        graph.add(
            "NotAMarker",
            {"Type": "Succeed", "Comment": "An empty object or a file that is not a drop's marker starts nothing"},
        )
        graph.add("BadInput", {"Type": "Fail", "Error": "pp-dw.BadInput", "Cause": "{% $request.problem %}"})
        graph.add(
            "CheckInput",
            {
                "Type": "Choice",
                "Choices": [
                    {"Condition": "{% $request.ignore %}", "Next": "NotAMarker"},
                    {"Condition": "{% $type($request.problem) = 'string' %}", "Next": "BadInput"},
                    {"Condition": "{% $request.arrival %}", "Next": "StartRunOfDrop"},
                ],
            },
        )
        graph.add("Done", {"Type": "Succeed", "Output": "{% $states.input %}"})
        after = "Done"
        for layer in reversed(self.layers):
            step, choice = f"{layer.title()}JobRun", f"Run{layer.title()}"
            graph.add(step, {"Next": after, **self._glue_step(layer)})
            graph.add(
                choice,
                {
                    "Type": "Choice",
                    "Comment": "Only the layers asked for",
                    "Choices": [{"Condition": f"{{% '{layer}' in $request.layers %}}", "Next": step}],
                    "Default": after,
                },
            )
            after = choice
        graph.states["CheckInput"]["Default"] = after
        graph.wire("CheckInput")
        graph.wire("ReadInput")
        return {
            "StartAt": "ReadInput",
            "States": graph.ordered("ReadInput"),
            "TimeoutSeconds": timeout_seconds,
            "QueryLanguage": "JSONata",
        }

    def _state_machine(self, timeout_minutes: int) -> sfn.StateMachine:
        stack, naming, name = self.stack, self.naming, self.dataset
        machine_name = naming.state_machine(name)
        own_arn = f"arn:{Aws.PARTITION}:states:{Aws.REGION}:{Aws.ACCOUNT_ID}:stateMachine:{machine_name}"
        definition = self.definition(pipeline_timeout_seconds(timeout_minutes, len(self.layers)))
        log_group = defaults.log_group(stack, "PipelineLogs", f"/aws/vendedlogs/states/{machine_name}")
        machine = sfn.StateMachine(
            stack,
            "Pipeline",
            state_machine_name=machine_name,
            # JSON.stringify's text, as the CDK writes a definition (2.0 is 2 there).
            definition_body=sfn.DefinitionBody.from_string(
                json.dumps(definition, separators=(",", ":"), ensure_ascii=False)
            ),
            logs=sfn.LogOptions(destination=log_group, **defaults.STATE_MACHINE_LOGS),
            **defaults.STATE_MACHINE,
        )
        job_arns = [
            f"arn:{Aws.PARTITION}:glue:{Aws.REGION}:{Aws.ACCOUNT_ID}:job/{naming.job(layer, name)}"
            for layer in self.layers
        ]
        machine.add_to_role_policy(
            iam.PolicyStatement(
                actions=["glue:StartJobRun", "glue:GetJobRun", "glue:GetJobRuns", "glue:BatchStopJobRun"],
                resources=job_arns,
            )
        )
        machine.add_to_role_policy(iam.PolicyStatement(actions=["states:StartExecution"], resources=[own_arn]))
        return machine

    def failure_rules(self) -> None:
        """Failed pipeline runs, and failed runs of its jobs (also those started by hand), to the topic.

        L1 rules from plain data (pattern keys in the order the L2 wrote them), each as `{Id}/Resource` so
        the logical ID is the one the L2 rules had:
        the L2 Rule, its SNS target and its input are each a call into the CDK's Node process, and warn
        about the topic's environment, which is the stack's own (make bench, synth)."""
        naming, name, topic_arn = self.naming, self.dataset, self.topic_arn
        self.failure_rule = self._rule(
            "FailureRule",
            naming.failure_rule(name),
            f"Failed, timed out or aborted {name} pipeline runs go to the failure topic",
            {
                "detail": {
                    "status": ["FAILED", "TIMED_OUT", "ABORTED"],
                    "stateMachineArn": [self.state_machine.state_machine_arn],
                },
                "detail-type": ["Step Functions Execution Status Change"],
                "source": ["aws.states"],
            },
            events.CfnRule.TargetProperty(arn=topic_arn, id="Target0"),
        )
        # The message the L2's RuleTargetInput.from_text wrote: each field an input path, the text a JSON string.
        fields = ("jobName", "jobRunId", "state", "message")
        self.job_failure_rule = self._rule(
            "JobFailureRule",
            naming.job_failure_rule(name),
            f"Failed, timed out, stopped or errored {name} Glue job runs (also those started by hand)",
            {
                "detail": {
                    "jobName": [naming.job(layer, name) for layer in self.layers],
                    "state": list(JOB_FAILURE_STATES),
                },
                "detail-type": ["Glue Job State Change"],
                "source": ["aws.glue"],
            },
            events.CfnRule.TargetProperty(
                arn=topic_arn,
                id="Target0",
                input_transformer=events.CfnRule.InputTransformerProperty(
                    input_paths_map={f"detail-{f}": f"$.detail.{f}" for f in fields},
                    input_template=json.dumps(
                        "Glue job <detail-jobName> run <detail-jobRunId> ended <detail-state>: <detail-message>"
                    ),
                ),
            ),
        )

    def _rule(
        self, construct_id: str, rule_name: str, description: str, pattern: dict, target: events.CfnRule.TargetProperty
    ) -> events.CfnRule:
        return events.CfnRule(
            Construct(self.stack, construct_id),
            "Resource",
            name=rule_name,
            description=description,
            event_pattern=pattern,
            state="ENABLED",
            targets=[target],
        )
