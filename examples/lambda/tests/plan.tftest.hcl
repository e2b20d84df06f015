# Plans of this example against a mocked AWS provider: no account, no
# credentials, nothing created. Run with `terraform test` after
# `terraform init`.

mock_provider "aws" {
  mock_data "aws_caller_identity" {
    defaults = { account_id = "123456789012" }
  }

  mock_data "aws_iam_policy_document" {
    defaults = { json = "{}" }
  }
}

variables {
  agentcore_runtime_arn = "arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/demo_agent-Abc123"
  # Any existing file: the mocked provider uploads nothing.
  package_path = "handler.py"
}

run "defaults" {
  command = plan

  assert {
    condition     = aws_lambda_function.bridge.runtime == "python3.13" && aws_lambda_function.bridge.publish
    error_message = "the function must be python3.13 and published"
  }

  assert {
    condition     = aws_lambda_function.bridge.snap_start[0].apply_on == "PublishedVersions"
    error_message = "SnapStart must apply to published versions"
  }

  assert {
    condition     = aws_lambda_function.bridge.timeout == 900 && aws_lambda_function.bridge.logging_config[0].application_log_level == "INFO"
    error_message = "the function must stream for up to 15 minutes and log at INFO"
  }

  assert {
    condition     = !contains(keys(aws_lambda_function.bridge.environment[0].variables), "BRIDGE_SESSION_SECRET")
    error_message = "no session secret unless one is given"
  }

  assert {
    condition     = jsondecode(aws_scheduler_schedule.warmer[0].target[0].input) == { agentcore_bridge_warmer = { concurrency = 2 } }
    error_message = "the warmer must ask for var.warmer_concurrency environments"
  }

  assert {
    condition     = aws_apigatewayv2_api.ws.protocol_type == "WEBSOCKET"
    error_message = "the API must be a WebSocket API"
  }
}

run "warmer_concurrency_is_n" {
  command = plan

  variables {
    warmer_concurrency = 7
  }

  assert {
    condition     = jsondecode(aws_scheduler_schedule.warmer[0].target[0].input).agentcore_bridge_warmer.concurrency == 7
    error_message = "the warmer input must carry N"
  }
}

run "warmer_off" {
  command = plan

  variables {
    warmer_concurrency = 0
  }

  assert {
    condition     = length(aws_scheduler_schedule.warmer) == 0 && length(aws_iam_role.scheduler) == 0
    error_message = "N = 0 must remove the schedule and its role"
  }
}

run "optional_settings_reach_the_environment" {
  command = plan

  variables {
    agentcore_qualifier = "prod"
    session_secret      = "0123456789abcdef0123456789abcdef"
    warmup_payload      = { prompt = "hello" }
  }

  assert {
    condition     = aws_lambda_function.bridge.environment[0].variables["AGENTCORE_QUALIFIER"] == "prod"
    error_message = "the qualifier must reach AGENTCORE_QUALIFIER"
  }

  assert {
    condition     = jsondecode(aws_lambda_function.bridge.environment[0].variables["BRIDGE_WARMUP_PAYLOAD"]) == { prompt = "hello" }
    error_message = "the warm-up payload must reach BRIDGE_WARMUP_PAYLOAD as JSON"
  }
}

run "short_session_secret_is_refused" {
  command = plan

  variables {
    session_secret = "too short"
  }

  expect_failures = [var.session_secret]
}

run "malformed_runtime_arn_is_refused" {
  command = plan

  variables {
    agentcore_runtime_arn = "arn:aws:lambda:us-east-1:123456789012:function:nope"
  }

  expect_failures = [var.agentcore_runtime_arn]
}

run "malformed_qualifier_is_refused" {
  command = plan

  variables {
    agentcore_qualifier = "-starts-with-a-dash"
  }

  expect_failures = [var.agentcore_qualifier]
}
