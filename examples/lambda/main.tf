# agentcore-bridge on AWS Lambda behind an API Gateway WebSocket API.
#
#   client --wss--> API Gateway --$connect/$default/$disconnect--> alias "live"
#                                                                 (SnapStart version)
#   function --InvokeAgentRuntime--> AgentCore Runtime
#   function --POST @connections--> API Gateway --> client
#
# Build the package first (python3.13 build.py), then terraform init and apply.

data "aws_caller_identity" "current" {}

locals {
  package_path = coalesce(var.package_path, "${path.module}/build/bridge.zip")

  # The runtime and its endpoints (InvokeAgentRuntime authorizes against
  # both the runtime ARN and ARN/runtime-endpoint/NAME).
  agentcore_resources = [
    var.agentcore_runtime_arn,
    "${var.agentcore_runtime_arn}/*",
  ]

  # The @connections calls the adapter makes (post a frame, ask whether a
  # silent client is still there), on this API's stage only.
  connections_base = "${aws_apigatewayv2_api.ws.execution_arn}/${var.stage_name}"

  # Everything else keeps the adapter's defaults (docs/lambda.md). An
  # invocation ends with a timeout error 2 s before the function's own
  # timeout, so there is no BRIDGE_INVOKE_TIMEOUT to keep in step.
  environment = merge(
    { AGENTCORE_RUNTIME_ARN = var.agentcore_runtime_arn },
    var.agentcore_qualifier == null ? {} : { AGENTCORE_QUALIFIER = var.agentcore_qualifier },
    var.session_secret == null ? {} : { BRIDGE_SESSION_SECRET = var.session_secret },
    var.warmup_payload == null ? {} : { BRIDGE_WARMUP_PAYLOAD = jsonencode(var.warmup_payload) },
    var.extra_environment,
  )
}

# ---------------------------------------------------------------- logs

resource "aws_cloudwatch_log_group" "bridge" {
  name              = "/aws/lambda/${var.name}"
  retention_in_days = var.log_retention_days
}

# ---------------------------------------------------------------- function role

data "aws_iam_policy_document" "lambda_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "bridge" {
  name               = "${var.name}-lambda"
  assume_role_policy = data.aws_iam_policy_document.lambda_assume.json
}

data "aws_iam_policy_document" "bridge" {
  statement {
    sid       = "InvokeTheOneAgentRuntime"
    actions   = ["bedrock-agentcore:InvokeAgentRuntime", "bedrock-agentcore:StopRuntimeSession"]
    resources = local.agentcore_resources
  }

  statement {
    sid     = "AnswerClientsOfThisApiStage"
    actions = ["execute-api:ManageConnections"]
    resources = [
      "${local.connections_base}/POST/@connections/*",
      "${local.connections_base}/GET/@connections/*",
    ]
  }

  statement {
    # The log group exists already (above), so no logs:CreateLogGroup.
    sid       = "WriteOwnLogGroup"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.bridge.arn}:*"]
  }
}

resource "aws_iam_role_policy" "bridge" {
  name   = "bridge"
  role   = aws_iam_role.bridge.id
  policy = data.aws_iam_policy_document.bridge.json
}

# Warmer fan-out and session warm-up invoke the function's own alias. A
# policy of its own, since it can only exist once the alias does.
data "aws_iam_policy_document" "self_invoke" {
  statement {
    sid       = "InvokeOwnAlias"
    actions   = ["lambda:InvokeFunction"]
    resources = [aws_lambda_alias.live.arn]
  }
}

resource "aws_iam_role_policy" "self_invoke" {
  name   = "self-invoke"
  role   = aws_iam_role.bridge.id
  policy = data.aws_iam_policy_document.self_invoke.json
}

# ---------------------------------------------------------------- function

resource "aws_lambda_function" "bridge" {
  function_name    = var.name
  description      = "agentcore-bridge: API Gateway WebSocket clients to ${var.agentcore_runtime_arn}"
  role             = aws_iam_role.bridge.arn
  runtime          = "python3.13"
  handler          = "handler.handler"
  filename         = local.package_path
  source_code_hash = filebase64sha256(local.package_path)
  memory_size      = var.memory_size
  timeout          = var.timeout_seconds

  # SnapStart snapshots published versions only, so every change publishes
  # a version and the alias below follows it. Each active version's
  # snapshot is billed while it exists: build.py makes identical sources
  # give an identical zip, so a plan without changes publishes nothing.
  publish = true

  snap_start {
    apply_on = "PublishedVersions"
  }

  environment {
    variables = local.environment
  }

  # The adapter's lifecycle lines are INFO; Lambda's Python runtime passes
  # them on only with an application log level, which needs the JSON log
  # format (each line becomes the "message" of Lambda's JSON record).
  logging_config {
    log_format            = "JSON"
    application_log_level = "INFO"
    system_log_level      = "WARN"
    log_group             = aws_cloudwatch_log_group.bridge.name
  }

  depends_on = [aws_iam_role_policy.bridge]
}

resource "aws_lambda_alias" "live" {
  name             = "live"
  description      = "The SnapStart version API Gateway and the warmer invoke"
  function_name    = aws_lambda_function.bridge.function_name
  function_version = aws_lambda_function.bridge.version
}

# ---------------------------------------------------------------- WebSocket API

resource "aws_apigatewayv2_api" "ws" {
  name                       = var.name
  protocol_type              = "WEBSOCKET"
  route_selection_expression = "$request.body.action"
  description                = "WebSocket clients of agentcore-bridge"
}

resource "aws_apigatewayv2_integration" "bridge" {
  api_id             = aws_apigatewayv2_api.ws.id
  integration_type   = "AWS_PROXY"
  integration_method = "POST"
  # The alias, not the function: $LATEST has no SnapStart snapshot.
  integration_uri = aws_lambda_alias.live.invoke_arn
}

resource "aws_apigatewayv2_route" "connect" {
  api_id    = aws_apigatewayv2_api.ws.id
  route_key = "$connect"
  target    = "integrations/${aws_apigatewayv2_integration.bridge.id}"
}

resource "aws_apigatewayv2_route" "disconnect" {
  api_id    = aws_apigatewayv2_api.ws.id
  route_key = "$disconnect"
  target    = "integrations/${aws_apigatewayv2_integration.bridge.id}"
}

# Protocol v1 frames carry "type", not "action", so every message lands here.
resource "aws_apigatewayv2_route" "default" {
  api_id    = aws_apigatewayv2_api.ws.id
  route_key = "$default"
  target    = "integrations/${aws_apigatewayv2_integration.bridge.id}"
}

resource "aws_apigatewayv2_stage" "live" {
  api_id      = aws_apigatewayv2_api.ws.id
  name        = var.stage_name
  auto_deploy = true

  default_route_settings {
    throttling_rate_limit  = var.throttling_rate_limit
    throttling_burst_limit = var.throttling_burst_limit
  }

  # Clients arrive once the routes exist and the function may invoke
  # itself (session warm-up at $connect).
  depends_on = [
    aws_apigatewayv2_route.connect,
    aws_apigatewayv2_route.disconnect,
    aws_apigatewayv2_route.default,
    aws_iam_role_policy.self_invoke,
  ]
}

resource "aws_lambda_permission" "apigw" {
  statement_id  = "AllowWebSocketApiStage"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.bridge.function_name
  qualifier     = aws_lambda_alias.live.name
  principal     = "apigateway.amazonaws.com"
  source_arn    = "${aws_apigatewayv2_api.ws.execution_arn}/${var.stage_name}/*"
}

# ---------------------------------------------------------------- warmer

# One ping every few minutes; the environment that receives it invokes the
# alias N - 1 more times at once, so N environments stay warm.
resource "aws_scheduler_schedule" "warmer" {
  count = var.warmer_concurrency > 0 ? 1 : 0

  name                = "${var.name}-warmer"
  description         = "Keeps ${var.warmer_concurrency} environments of ${var.name} warm"
  schedule_expression = var.warmer_schedule

  flexible_time_window {
    mode = "OFF"
  }

  target {
    arn      = aws_lambda_alias.live.arn
    role_arn = aws_iam_role.scheduler[0].arn
    input = jsonencode({
      agentcore_bridge_warmer = { concurrency = var.warmer_concurrency }
    })

    # A late or repeated warmer ping only costs money.
    retry_policy {
      maximum_event_age_in_seconds = 60
      maximum_retry_attempts       = 0
    }
  }

  # The first ping fans out through the function's own role.
  depends_on = [aws_iam_role_policy.self_invoke]
}

data "aws_iam_policy_document" "scheduler_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["scheduler.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
}

resource "aws_iam_role" "scheduler" {
  count = var.warmer_concurrency > 0 ? 1 : 0

  name               = "${var.name}-warmer"
  assume_role_policy = data.aws_iam_policy_document.scheduler_assume.json
}

data "aws_iam_policy_document" "scheduler" {
  statement {
    sid       = "PingTheAlias"
    actions   = ["lambda:InvokeFunction"]
    resources = [aws_lambda_alias.live.arn]
  }
}

resource "aws_iam_role_policy" "scheduler" {
  count = var.warmer_concurrency > 0 ? 1 : 0

  name   = "ping-alias"
  role   = aws_iam_role.scheduler[0].id
  policy = data.aws_iam_policy_document.scheduler.json
}
