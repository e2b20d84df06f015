"""The deployment examples say what the docs promise.

Both Terraform trees are parsed with python-hcl2, the SAM template with
cfn-lint's loader (and linted by cfn-lint itself), the Dockerfile by its
instructions; each test checks one property of what would be deployed.
What needs an AWS account (that AWS accepts and runs it) is out of reach
here; docs/deploy-lambda.md and docs/deploy-fargate.md say what was not
verified. Where the Terraform CLI and a local copy of the AWS provider are
present (``TERRAFORM_PLUGIN_DIR``, default ``/opt/tf-plugins``), the
examples' own ``terraform test`` plans run too, on a mocked provider.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from agentcore_bridge.config import Settings
from agentcore_bridge.exceptions import ValidationError
from examples_files import (
    FARGATE,
    LAMBDA,
    ROOT,
    TerraformTree,
    dockerfile_env,
    exec_form,
    healthcheck_command,
    load_dockerfile,
    load_sam,
    load_terraform,
)

# A resource of "*" only where AWS accepts nothing narrower, each with why.
STAR_RESOURCE_ALLOWED = {
    # GetAuthorizationToken is an account-level call with no resource type;
    # the pull itself is limited to one repository by another statement.
    frozenset({"ecr:GetAuthorizationToken"}): "ECR registry token",
}

AGENTCORE_ARN = re.compile(r"^\$\{var\.agentcore_runtime_arn\}(/\*)?$")


@pytest.fixture(scope="module")
def lam() -> TerraformTree:
    return load_terraform(LAMBDA)


@pytest.fixture(scope="module")
def fargate() -> TerraformTree:
    return load_terraform(FARGATE)


@pytest.fixture(scope="module")
def sam() -> dict[str, Any]:
    return load_sam()


def _as_list(value: object) -> list[Any]:
    return value if isinstance(value, list) else [value]


# ---------------------------------------------------------------- Lambda, Terraform


def test_lambda_function_is_python_313_published_with_snapstart(
    lam: TerraformTree,
) -> None:
    function = lam.resource("aws_lambda_function", "bridge")
    assert function["runtime"] == "python3.13"
    assert function["handler"] == "handler.handler"
    assert function["publish"] is True
    assert function["snap_start"] == [{"apply_on": "PublishedVersions"}]


def test_the_package_bytecode_is_for_the_functions_runtime(
    lam: TerraformTree, sam: dict[str, Any]
) -> None:
    """build.py compiles for the Python that both templates deploy."""
    text = (LAMBDA / "build.py").read_text()
    (version,) = re.findall(r'^RUNTIME_VERSION = "(\d+\.\d+)"$', text, flags=re.M)
    function = lam.resource("aws_lambda_function", "bridge")
    assert function["runtime"] == f"python{version}"
    properties = sam["Resources"]["BridgeFunction"]["Properties"]
    assert properties["Runtime"] == f"python{version}"


def test_lambda_timeout_outlasts_api_gateway_and_logs_reach_info(
    lam: TerraformTree,
) -> None:
    """Answers stream long after API Gateway's 29 s; INFO lines need JSON logs."""
    function = lam.resource("aws_lambda_function", "bridge")
    assert lam.default(function["timeout"]) == 900
    assert 128 <= lam.default(function["memory_size"]) <= 1024
    (logging,) = function["logging_config"]
    assert logging["log_format"] == "JSON"
    assert logging["application_log_level"] == "INFO"
    assert logging["log_group"] == "${aws_cloudwatch_log_group.bridge.name}"


def test_lambda_alias_follows_the_published_version(lam: TerraformTree) -> None:
    alias = lam.resource("aws_lambda_alias", "live")
    assert alias["function_version"] == "${aws_lambda_function.bridge.version}"
    assert alias["function_name"] == "${aws_lambda_function.bridge.function_name}"


def test_api_gateway_integrates_the_alias_not_the_function(lam: TerraformTree) -> None:
    (integration,) = lam.of_kind("aws_apigatewayv2_integration").values()
    assert integration["integration_type"] == "AWS_PROXY"
    assert integration["integration_uri"] == "${aws_lambda_alias.live.invoke_arn}"
    assert "aws_lambda_function" not in integration["integration_uri"]


def test_websocket_api_routes_connect_disconnect_and_default(
    lam: TerraformTree,
) -> None:
    (api,) = lam.of_kind("aws_apigatewayv2_api").values()
    assert api["protocol_type"] == "WEBSOCKET"
    assert api["route_selection_expression"] == "$request.body.action"
    routes = lam.of_kind("aws_apigatewayv2_route").values()
    assert sorted(r["route_key"] for r in routes) == [
        "$connect",
        "$default",
        "$disconnect",
    ]
    for route in routes:
        assert route["target"] == (
            "integrations/${aws_apigatewayv2_integration.bridge.id}"
        )


def test_api_gateway_may_invoke_only_the_alias_from_this_stage(
    lam: TerraformTree,
) -> None:
    permission = lam.resource("aws_lambda_permission", "apigw")
    assert permission["action"] == "lambda:InvokeFunction"
    assert permission["principal"] == "apigateway.amazonaws.com"
    assert permission["qualifier"] == "${aws_lambda_alias.live.name}"
    assert permission["source_arn"] == (
        "${aws_apigatewayv2_api.ws.execution_arn}/${var.stage_name}/*"
    )


def test_warmer_schedule_pings_the_alias_with_n_from_a_variable(
    lam: TerraformTree,
) -> None:
    schedule = lam.resource("aws_scheduler_schedule", "warmer")
    (target,) = schedule["target"]
    assert target["arn"] == "${aws_lambda_alias.live.arn}"
    compact = target["input"].replace(" ", "")
    assert "agentcore_bridge_warmer={concurrency=var.warmer_concurrency}" in compact
    assert lam.variables["warmer_concurrency"]["type"] == "number"
    assert lam.variables["warmer_concurrency"]["default"] >= 1
    assert schedule["flexible_time_window"] == [{"mode": "OFF"}]


def test_lambda_function_role_grants_exactly_what_the_adapter_calls(
    lam: TerraformTree,
) -> None:
    statements = {s["sid"]: s for _, s in lam.policy_statements() if "sid" in s}

    agentcore = statements["InvokeTheOneAgentRuntime"]
    assert sorted(agentcore["actions"]) == [
        "bedrock-agentcore:InvokeAgentRuntime",
        "bedrock-agentcore:StopRuntimeSession",
    ]
    assert lam.locals["agentcore_resources"] == [
        "${var.agentcore_runtime_arn}",
        "${var.agentcore_runtime_arn}/*",
    ]
    assert agentcore["resources"] == "${local.agentcore_resources}"

    connections = statements["AnswerClientsOfThisApiStage"]
    assert connections["actions"] == ["execute-api:ManageConnections"]
    assert lam.locals["connections_base"] == (
        "${aws_apigatewayv2_api.ws.execution_arn}/${var.stage_name}"
    )
    assert sorted(connections["resources"]) == [
        f"${{local.connections_base}}/{method}/@connections/*"
        for method in ("GET", "POST")
    ]

    assert statements["InvokeOwnAlias"]["actions"] == ["lambda:InvokeFunction"]
    assert statements["InvokeOwnAlias"]["resources"] == ["${aws_lambda_alias.live.arn}"]
    assert statements["WriteOwnLogGroup"]["resources"] == [
        "${aws_cloudwatch_log_group.bridge.arn}:*"
    ]
    assert statements["PingTheAlias"]["resources"] == ["${aws_lambda_alias.live.arn}"]


# ---------------------------------------------------------------- both Terraform trees


@pytest.mark.parametrize("folder", [LAMBDA, FARGATE], ids=["lambda", "fargate"])
def test_no_provisioned_concurrency_anywhere(folder: Path) -> None:
    tree = load_terraform(folder)
    assert "aws_lambda_provisioned_concurrency_config" not in tree.resources
    assert "provisioned_concurrent_executions" not in tree.text


@pytest.mark.parametrize("folder", [LAMBDA, FARGATE], ids=["lambda", "fargate"])
def test_iam_statements_name_every_action_and_scope_every_resource(
    folder: Path,
) -> None:
    tree = load_terraform(folder)
    statements = list(tree.policy_statements())
    assert statements
    for document, statement in statements:
        actions = statement["actions"]
        assert actions and all("*" not in a for a in actions), (document, actions)
        if document.endswith("_assume"):
            continue
        resources = _as_list(statement["resources"])
        if "*" in resources:
            assert frozenset(actions) in STAR_RESOURCE_ALLOWED, (document, actions)
            continue
        for resource in resources:
            # Resources are this stack's own ARNs (or ARNs given as
            # variables), never a pattern over an account or a service.
            assert resource.startswith("${"), (document, resource)


@pytest.mark.parametrize("folder", [LAMBDA, FARGATE], ids=["lambda", "fargate"])
def test_every_role_policy_is_a_checked_policy_document(folder: Path) -> None:
    """No inline JSON policies and no managed policies escape the checks above."""
    tree = load_terraform(folder)
    assert "aws_iam_role_policy_attachment" not in tree.resources
    assert "aws_iam_policy" not in tree.resources
    for role_policy in tree.of_kind("aws_iam_role_policy").values():
        assert re.fullmatch(
            r"\$\{data\.aws_iam_policy_document\.\w+\.json\}", role_policy["policy"]
        )
    for role in tree.of_kind("aws_iam_role").values():
        assert "managed_policy_arns" not in role
        assert "inline_policy" not in role


@pytest.mark.parametrize("folder", [LAMBDA, FARGATE], ids=["lambda", "fargate"])
def test_terraform_files_are_the_four_the_examples_document(folder: Path) -> None:
    names = sorted(p.name for p in folder.glob("*.tf"))
    assert names == ["main.tf", "outputs.tf", "variables.tf", "versions.tf"]


@pytest.mark.parametrize(
    ("folder", "page"),
    [(LAMBDA, "deploy-lambda.md"), (FARGATE, "deploy-fargate.md")],
    ids=["lambda", "fargate"],
)
def test_deploy_page_lists_every_variable_with_its_default(
    folder: Path, page: str
) -> None:
    """The page's variables table names each variable of variables.tf once,
    and a default it writes as a number or in backticks is the tree's."""
    tree = load_terraform(folder)
    text = (ROOT / "docs" / page).read_text(encoding="utf-8")
    start = text.index("| variable | default | what |")
    rows = []
    for line in text[start:].splitlines()[2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    shown: dict[str, str] = {}
    for names_cell, defaults_cell, _ in rows:
        names = re.findall(r"`(\w+)`", names_cell)
        defaults = [d.strip() for d in defaults_cell.split(",")]
        if len(defaults) != len(names):
            defaults = [defaults_cell] * len(names)
        for name, default in zip(names, defaults, strict=True):
            assert name not in shown, name
            shown[name] = default
    assert sorted(shown) == sorted(tree.variables)
    for name, written in shown.items():
        variable = tree.variables[name]
        assert (written == "(required)") == ("default" not in variable), name
        default = variable.get("default")
        if isinstance(default, list) and len(default) == 1:
            default = default[0]
        if re.fullmatch(r"\d+", written):
            assert default == int(written), name
        elif re.fullmatch(r"`[^`]+`", written) and default is not None:
            value = written.strip("`")
            expected = str(default).lower() if isinstance(default, bool) else default
            assert str(expected if expected != {} else "{}") == value, name


# ---------------------------------------------------------------- Fargate, Terraform


def test_stop_timeout_is_longer_than_the_deregistration_delay(
    fargate: TerraformTree,
) -> None:
    container = fargate.locals["container"]
    stop_timeout = fargate.default(container["stopTimeout"])
    group = fargate.resource("aws_lb_target_group", "bridge")
    delay = fargate.default(group["deregistration_delay"])
    assert stop_timeout == 120
    assert 0 < delay < stop_timeout
    # Changing either variable so that they cross fails the plan.
    (precondition,) = group["lifecycle"][0]["precondition"]
    assert precondition["condition"] == (
        "${var.deregistration_delay < var.stop_timeout}"
    )


def test_server_exits_before_ecs_kills_it(fargate: TerraformTree) -> None:
    environment = fargate.locals["environment"]
    assert "BRIDGE_SHUTDOWN_TIMEOUT = tostring(var.stop_timeout - 10)" in environment


def test_service_runs_the_task_on_the_cluster_behind_the_listener(
    fargate: TerraformTree,
) -> None:
    """Cluster, task definition, service, target group and listener are wired."""
    assert fargate.of_kind("aws_ecs_cluster").keys() == {"bridge"}
    service = fargate.resource("aws_ecs_service", "bridge")
    assert service["cluster"] == "${aws_ecs_cluster.bridge.id}"
    assert service["task_definition"] == "${aws_ecs_task_definition.bridge.arn}"
    assert service["launch_type"] == "FARGATE"
    (balancer,) = service["load_balancer"]
    assert balancer["target_group_arn"] == "${aws_lb_target_group.bridge.arn}"
    assert balancer["container_name"] == "${local.container_name}"
    assert balancer["container_port"] == "${var.container_port}"
    task = fargate.resource("aws_ecs_task_definition", "bridge")
    assert task["container_definitions"] == "${jsonencode([local.container])}"
    container = fargate.locals["container"]
    assert container["name"] == "${local.container_name}"
    assert container["portMappings"] == [
        {"containerPort": "${var.container_port}", "protocol": "tcp"}
    ]
    group = fargate.resource("aws_lb_target_group", "bridge")
    assert group["port"] == "${var.container_port}"
    listener = fargate.resource("aws_lb_listener", "https")
    (action,) = listener["default_action"]
    assert action["type"] == "forward"
    assert action["target_group_arn"] == "${aws_lb_target_group.bridge.arn}"
    # The server listens where the task maps its port.
    assert "BRIDGE_PORT" in fargate.locals["environment"]
    assert "tostring(var.container_port)" in fargate.locals["environment"]


def test_alb_idle_timeout_is_raised_for_long_streams(fargate: TerraformTree) -> None:
    balancer = fargate.resource("aws_lb", "bridge")
    assert balancer["load_balancer_type"] == "application"
    assert fargate.default(balancer["idle_timeout"]) > 60


def test_health_checks_hit_healthz(fargate: TerraformTree) -> None:
    group = fargate.resource("aws_lb_target_group", "bridge")
    assert group["health_check"][0]["path"] == "/healthz"
    assert group["health_check"][0]["matcher"] == "200"
    assert "/healthz" in fargate.locals["health_probe"]
    command = fargate.locals["container"]["healthCheck"]["command"]
    assert command == ["CMD", "python", "-c", "${local.health_probe}"]


def test_task_health_check_is_the_dockerfiles_healthcheck(
    fargate: TerraformTree,
) -> None:
    """ECS ignores the image's HEALTHCHECK, so the task repeats it word for word."""
    final = load_dockerfile()[-1]
    assert healthcheck_command(final) == [
        "python",
        "-c",
        fargate.locals["health_probe"],
    ]


def test_target_group_has_no_stickiness(fargate: TerraformTree) -> None:
    group = fargate.resource("aws_lb_target_group", "bridge")
    assert "stickiness" not in group
    assert group["target_type"] == "ip"


def test_https_listener_uses_the_certificate_variable(fargate: TerraformTree) -> None:
    listener = fargate.resource("aws_lb_listener", "https")
    assert listener["protocol"] == "HTTPS"
    assert listener["port"] == 443
    assert listener["certificate_arn"] == "${var.certificate_arn}"
    assert fargate.of_kind("aws_lb_listener").keys() == {"https"}


def test_service_scales_by_target_tracking(fargate: TerraformTree) -> None:
    policies = fargate.of_kind("aws_appautoscaling_policy").values()
    assert policies
    for policy in policies:
        assert policy["policy_type"] == "TargetTrackingScaling"
        assert policy["resource_id"] == (
            "${aws_appautoscaling_target.bridge.resource_id}"
        )
    target = fargate.resource("aws_appautoscaling_target", "bridge")
    assert target["scalable_dimension"] == "ecs:service:DesiredCount"
    service = fargate.resource("aws_ecs_service", "bridge")
    assert service["lifecycle"][0]["ignore_changes"] == ["desired_count"]


def test_task_runs_on_fargate_with_two_roles_and_a_read_only_root(
    fargate: TerraformTree,
) -> None:
    task = fargate.resource("aws_ecs_task_definition", "bridge")
    assert task["requires_compatibilities"] == ["FARGATE"]
    assert task["network_mode"] == "awsvpc"
    assert task["task_role_arn"] == "${aws_iam_role.task.arn}"
    assert task["execution_role_arn"] == "${aws_iam_role.execution.arn}"
    assert fargate.locals["container"]["readonlyRootFilesystem"] is True


def test_task_role_may_invoke_stream_and_stop_the_one_runtime(
    fargate: TerraformTree,
) -> None:
    statements = {s["sid"]: s for _, s in fargate.policy_statements() if "sid" in s}
    agentcore = statements["InvokeTheOneAgentRuntime"]
    assert sorted(agentcore["actions"]) == [
        "bedrock-agentcore:InvokeAgentRuntime",
        "bedrock-agentcore:InvokeAgentRuntimeWithWebSocketStream",
        "bedrock-agentcore:StopRuntimeSession",
    ]
    assert agentcore["resources"] == "${local.agentcore_resources}"
    assert all(AGENTCORE_ARN.match(r) for r in fargate.locals["agentcore_resources"])
    assert statements["WriteOwnLogGroup"]["resources"] == [
        "${aws_cloudwatch_log_group.bridge.arn}:*"
    ]


def test_security_groups_open_443_to_clients_and_the_port_to_the_alb_only(
    fargate: TerraformTree,
) -> None:
    ingress = fargate.of_kind("aws_vpc_security_group_ingress_rule")
    assert ingress["alb_https"]["from_port"] == 443
    assert ingress["task_from_alb"]["referenced_security_group_id"] == (
        "${aws_security_group.alb.id}"
    )
    egress = fargate.of_kind("aws_vpc_security_group_egress_rule")
    assert egress["task_https"]["from_port"] == egress["task_https"]["to_port"] == 443


# ---------------------------------------------------------------- Dockerfile


def test_dockerfile_runs_as_a_non_root_user() -> None:
    final = load_dockerfile()[-1]
    users = [i.arguments for i in final if i.keyword == "USER"]
    assert users, "the final stage sets no USER"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}
    # No instruction after USER runs as root again.
    last_user = max(n for n, i in enumerate(final) if i.keyword == "USER")
    assert all(i.keyword != "RUN" for i in final[last_user:])


def test_dockerfile_is_slim_python_and_installs_the_server_extra() -> None:
    stages = load_dockerfile()
    final = stages[-1]
    assert re.fullmatch(r"python:3\.1[0-9]-slim", final[0].arguments)
    runs = " ".join(i.arguments for i in final if i.keyword == "RUN")
    assert "'agentcore-bridge[server]'" in runs
    assert "pip wheel" in " ".join(i.arguments for i in stages[0])


def test_dockerfile_copies_every_file_the_wheel_build_reads() -> None:
    """pyproject.toml's readme and license files reach the wheel stage."""
    project = (ROOT / "pyproject.toml").read_text()
    readme = re.search(r'(?m)^readme = "([^"]+)"$', project)
    licenses = re.search(r"(?m)^license-files = \[(.*)\]$", project)
    assert readme and licenses
    needed = {"pyproject.toml", "src", readme.group(1)}
    needed |= set(re.findall(r'"([^"]+)"', licenses.group(1)))
    copied: set[str] = set()
    for instruction in load_dockerfile()[0]:
        if instruction.keyword == "COPY":
            copied.update(
                Path(p).as_posix() for p in instruction.arguments.split()[:-1]
            )
    assert needed <= copied, needed - copied
    for name in needed:
        assert (ROOT / name).exists(), name

    # The context is the repository root: .dockerignore keeps out .venv and
    # .git, and must let in what the stage copies.
    rules = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert rules[0] == "*"
    allowed = {rule[1:].rstrip("/") for rule in rules if rule.startswith("!")}
    assert needed <= allowed, needed - allowed


def test_dockerfile_serves_with_sigterm_and_a_stdlib_healthcheck() -> None:
    final = load_dockerfile()[-1]
    (cmd,) = [i for i in final if i.keyword == "CMD"]
    assert exec_form(cmd.arguments) == ["agentcore-bridge", "serve"]
    (signal,) = [i for i in final if i.keyword == "STOPSIGNAL"]
    assert signal.arguments == "SIGTERM"
    probe = healthcheck_command(final)
    assert probe[:2] == ["python", "-c"]
    assert "urllib.request" in probe[2] and "/healthz" in probe[2]
    assert dockerfile_env(final)["BRIDGE_PORT"] == "8080"


# ---------------------------------------------------------------- SAM


def test_sam_template_passes_cfn_lint() -> None:
    script = Path(sys.executable).with_name("cfn-lint")
    command = [str(script)] if script.exists() else [shutil.which("cfn-lint") or ""]
    result = subprocess.run(
        [*command, str(LAMBDA / "template.yaml")],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_sam_function_is_python_313_with_snapstart_on_an_alias(
    sam: dict[str, Any],
) -> None:
    function = sam["Resources"]["BridgeFunction"]
    assert function["Type"] == "AWS::Serverless::Function"
    properties = function["Properties"]
    assert properties["Runtime"] == "python3.13"
    assert properties["Handler"] == "handler.handler"
    assert properties["AutoPublishAlias"] == "live"
    assert properties["SnapStart"] == {"ApplyOn": "PublishedVersions"}
    assert "ProvisionedConcurrencyConfig" not in properties
    assert properties["CodeUri"] == "build/package"
    assert sam["Parameters"]["TimeoutSeconds"]["Default"] == 900
    assert properties["LoggingConfig"]["LogFormat"] == "JSON"
    assert properties["LoggingConfig"]["ApplicationLogLevel"] == "INFO"
    # Our own role: SAM's generated one would bring logs on "*".
    assert properties["Role"] == {"Fn::GetAtt": ["BridgeRole", "Arn"]}
    assert "Policies" not in properties


def test_sam_integration_and_permission_target_the_alias(
    sam: dict[str, Any],
) -> None:
    resources = sam["Resources"]
    uri = resources["BridgeIntegration"]["Properties"]["IntegrationUri"]["Fn::Sub"]
    assert uri[1] == {"AliasArn": {"Ref": "BridgeFunction.Alias"}}
    assert "/functions/${AliasArn}/invocations" in uri[0]
    permission = resources["ApiInvokePermission"]["Properties"]
    assert permission["FunctionName"] == {"Ref": "BridgeFunction.Alias"}
    assert permission["Principal"] == "apigateway.amazonaws.com"


def test_sam_websocket_api_and_routes(sam: dict[str, Any]) -> None:
    resources = sam["Resources"].values()
    (api,) = [r for r in resources if r["Type"] == "AWS::ApiGatewayV2::Api"]
    assert api["Properties"]["ProtocolType"] == "WEBSOCKET"
    assert api["Properties"]["RouteSelectionExpression"] == "$request.body.action"
    routes = [r for r in resources if r["Type"] == "AWS::ApiGatewayV2::Route"]
    assert sorted(r["Properties"]["RouteKey"] for r in routes) == [
        "$connect",
        "$default",
        "$disconnect",
    ]
    assert not [r for r in resources if "ProvisionedConcurrency" in str(r)]


def test_sam_warmer_schedule_pings_the_alias_with_n_from_a_parameter(
    sam: dict[str, Any],
) -> None:
    schedule = sam["Resources"]["WarmerSchedule"]
    assert schedule["Type"] == "AWS::Scheduler::Schedule"
    target = schedule["Properties"]["Target"]
    assert target["Arn"] == {"Ref": "BridgeFunction.Alias"}
    assert target["Input"]["Fn::Sub"] == (
        '{"agentcore_bridge_warmer": {"concurrency": ${WarmerConcurrency}}}'
    )
    assert sam["Parameters"]["WarmerConcurrency"]["Type"] == "Number"


def test_sam_iam_statements_name_every_action_and_scope_every_resource(
    sam: dict[str, Any],
) -> None:
    roles = [r for r in sam["Resources"].values() if r["Type"] == "AWS::IAM::Role"]
    assert roles
    for role in roles:
        assert "ManagedPolicyArns" not in role["Properties"]
        for policy in role["Properties"]["Policies"]:
            for statement in policy["PolicyDocument"]["Statement"]:
                actions = _as_list(statement["Action"])
                assert all("*" not in a for a in actions), actions
                for resource in _as_list(statement["Resource"]):
                    assert resource != "*", actions
                    # A Ref, GetAtt or Sub of this stack's own names.
                    assert isinstance(resource, dict), resource

    bridge = sam["Resources"]["BridgeRole"]["Properties"]["Policies"][0]
    statements = {s["Sid"]: s for s in bridge["PolicyDocument"]["Statement"]}
    assert statements["InvokeTheOneAgentRuntime"]["Resource"] == [
        {"Ref": "AgentCoreRuntimeArn"},
        {"Fn::Sub": "${AgentCoreRuntimeArn}/*"},
    ]
    for resource in statements["AnswerClientsOfThisApiStage"]["Resource"]:
        assert re.fullmatch(
            r".*:\$\{WebSocketApi\}/\$\{StageName\}/(POST|GET)/@connections/\*",
            resource["Fn::Sub"],
        )
    assert statements["InvokeOwnAlias"]["Resource"]["Fn::Sub"].endswith(
        ":function:${AWS::StackName}-bridge:live"
    )
    function = sam["Resources"]["BridgeFunction"]["Properties"]
    assert function["FunctionName"] == {"Fn::Sub": "${AWS::StackName}-bridge"}
    assert function["AutoPublishAlias"] == "live"


# Values each side of the rules Settings applies; "" is the template's
# default, which the function reads as unset.
SAM_SETTING_SAMPLES = {
    "SessionSecret": (
        "BRIDGE_SESSION_SECRET",
        ["", "x" * 31, "x" * 32, "too short", "s" * 64],
    ),
    "AgentCoreQualifier": (
        "AGENTCORE_QUALIFIER",
        ["", "DEFAULT", "prod_v2-a", "-dash", "has space", "a" * 100, "a" * 101],
    ),
}


@pytest.mark.parametrize("parameter", sorted(SAM_SETTING_SAMPLES))
def test_sam_parameters_refuse_what_the_function_would_refuse_at_start(
    sam: dict[str, Any], parameter: str
) -> None:
    """A value the function's Settings refuses fails the deployment instead."""
    variable, samples = SAM_SETTING_SAMPLES[parameter]
    pattern = sam["Parameters"][parameter].get("AllowedPattern")
    assert pattern is not None, f"{parameter} has no AllowedPattern"
    runtime_arn = "arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/a-1"
    for value in samples:
        environment = {"AGENTCORE_RUNTIME_ARN": runtime_arn, variable: value}
        try:
            Settings.from_env(environment)
        except ValidationError:
            accepted = False
        else:
            accepted = True
        # CloudFormation matches the pattern against the whole value.
        assert (re.fullmatch(pattern, value) is not None) == accepted, value


# ---------------------------------------------------------------- Terraform CLI

PLUGIN_DIR = Path(os.environ.get("TERRAFORM_PLUGIN_DIR", "/opt/tf-plugins"))


def _terraform() -> str:
    terraform = shutil.which("terraform")
    if terraform is None:
        pytest.skip("the terraform command is not installed")
    return terraform


def _run(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1"}
    return subprocess.run(
        command,
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


@pytest.mark.parametrize("folder", [LAMBDA, FARGATE], ids=["lambda", "fargate"])
def test_terraform_files_are_formatted(folder: Path) -> None:
    result = _run([_terraform(), "fmt", "-check", "-diff", "-recursive"], folder)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("folder", [LAMBDA, FARGATE], ids=["lambda", "fargate"])
def test_terraform_plans_on_a_mocked_provider(folder: Path, tmp_path: Path) -> None:
    """The example's own ``terraform test`` plans (which validate the tree first)."""
    terraform = _terraform()
    if not (PLUGIN_DIR / "registry.terraform.io" / "hashicorp" / "aws").is_dir():
        pytest.skip(f"no local copy of the AWS provider in {PLUGIN_DIR}")
    work = tmp_path / folder.name
    shutil.copytree(
        folder,
        work,
        ignore=shutil.ignore_patterns(".terraform*", "build", "*.tfstate*"),
    )
    steps = [
        [
            terraform,
            "init",
            "-backend=false",
            "-input=false",
            f"-plugin-dir={PLUGIN_DIR}",
        ],
        [terraform, "test", "-no-color"],
    ]
    for step in steps:
        result = _run(step, work)
        assert result.returncode == 0, f"{step[1]}:\n{result.stdout}{result.stderr}"
