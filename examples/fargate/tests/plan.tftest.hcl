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
  image                 = "123456789012.dkr.ecr.us-east-1.amazonaws.com/agentcore-bridge:test"
  vpc_id                = "vpc-0123456789abcdef0"
  public_subnet_ids     = ["subnet-0000000000000000a", "subnet-0000000000000000b"]
  private_subnet_ids    = ["subnet-0000000000000000c", "subnet-0000000000000000d"]
  certificate_arn       = "arn:aws:acm:us-east-1:123456789012:certificate/00000000-0000-0000-0000-000000000000"
}

run "defaults" {
  command = plan

  assert {
    condition     = jsondecode(aws_ecs_task_definition.bridge.container_definitions)[0].stopTimeout == 120
    error_message = "stopTimeout must be Fargate's maximum, 120 s"
  }

  assert {
    condition     = aws_lb_target_group.bridge.deregistration_delay == "60"
    error_message = "the deregistration delay must stay under stopTimeout"
  }

  assert {
    condition     = aws_lb.bridge.idle_timeout == 900
    error_message = "the ALB idle timeout must be raised"
  }

  assert {
    condition     = aws_lb_target_group.bridge.health_check[0].path == "/healthz"
    error_message = "the target group must check /healthz"
  }

  assert {
    condition = contains(
      jsondecode(aws_ecs_task_definition.bridge.container_definitions)[0].environment,
      { name = "BRIDGE_SHUTDOWN_TIMEOUT", value = "110" },
    )
    error_message = "the server must exit 10 s before SIGKILL"
  }

  assert {
    condition     = aws_lb_listener.https.protocol == "HTTPS" && aws_lb_listener.https.port == 443
    error_message = "clients must connect over HTTPS on 443"
  }
}

run "secrets_come_from_secrets_manager" {
  command = plan

  variables {
    secret_arns = {
      BRIDGE_SESSION_SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:bridge-session-AbCdEf"
    }
  }

  assert {
    condition = jsondecode(aws_ecs_task_definition.bridge.container_definitions)[0].secrets == [
      { name = "BRIDGE_SESSION_SECRET", valueFrom = "arn:aws:secretsmanager:us-east-1:123456789012:secret:bridge-session-AbCdEf" },
    ]
    error_message = "secrets must be read by ECS, not put in the environment"
  }
}

run "deregistration_delay_at_stop_timeout_is_refused" {
  command = plan

  variables {
    deregistration_delay = 120
  }

  expect_failures = [aws_lb_target_group.bridge]
}

run "default_alb_idle_timeout_is_refused" {
  command = plan

  variables {
    idle_timeout = 59
  }

  expect_failures = [var.idle_timeout]
}

run "malformed_qualifier_is_refused" {
  command = plan

  variables {
    agentcore_qualifier = "has spaces"
  }

  expect_failures = [var.agentcore_qualifier]
}
