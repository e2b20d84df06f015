# agentcore-bridge as an always-on server: ECS on Fargate behind an ALB.
#
#   client --wss:443--> ALB (HTTPS, idle timeout raised) --ws:8080--> task
#   task (agentcore-bridge serve) --https/wss--> AgentCore Runtime
#
# Build and push the image first (examples/fargate/README.md), then
# terraform init and apply.

data "aws_caller_identity" "current" {}

locals {
  container_name = "bridge"

  # The runtime and its endpoints (AgentCore authorizes against both the
  # runtime ARN and ARN/runtime-endpoint/NAME).
  agentcore_resources = [
    var.agentcore_runtime_arn,
    "${var.agentcore_runtime_arn}/*",
  ]

  environment = merge(
    {
      AGENTCORE_RUNTIME_ARN = var.agentcore_runtime_arn
      BRIDGE_HOST           = "0.0.0.0"
      BRIDGE_PORT           = tostring(var.container_port)
      # Finish or close every stream with 1001 before ECS's SIGKILL.
      BRIDGE_SHUTDOWN_TIMEOUT = tostring(var.stop_timeout - 10)
      BRIDGE_LOG_FORMAT       = "json"
    },
    var.agentcore_qualifier == null ? {} : { AGENTCORE_QUALIFIER = var.agentcore_qualifier },
    var.extra_environment,
  )

  # The same probe as the Dockerfile's HEALTHCHECK (ECS ignores that one):
  # the standard library only, since the image has no curl.
  health_probe = "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('BRIDGE_PORT', '8080') + '/healthz', timeout=4)"

  container = {
    name                   = local.container_name
    image                  = var.image
    essential              = true
    readonlyRootFilesystem = true
    portMappings = [
      { containerPort = var.container_port, protocol = "tcp" },
    ]
    environment = [for key in sort(keys(local.environment)) : { name = key, value = local.environment[key] }]
    secrets     = [for key in sort(keys(var.secret_arns)) : { name = key, valueFrom = var.secret_arns[key] }]

    # SIGTERM comes once the target group has drained; the server then
    # closes what is left with 1001 and exits before this runs out.
    stopTimeout = var.stop_timeout

    healthCheck = {
      command     = ["CMD", "python", "-c", local.health_probe]
      interval    = 15
      timeout     = 5
      retries     = 3
      startPeriod = 10
    }

    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.bridge.name
        awslogs-region        = var.region
        awslogs-stream-prefix = local.container_name
      }
    }
  }
}

# ---------------------------------------------------------------- logs

resource "aws_cloudwatch_log_group" "bridge" {
  name              = "/ecs/${var.name}"
  retention_in_days = var.log_retention_days
}

# ---------------------------------------------------------------- roles

data "aws_iam_policy_document" "ecs_tasks_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
}

# The task role: what the bridge itself may do.
resource "aws_iam_role" "task" {
  name               = "${var.name}-task"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

data "aws_iam_policy_document" "task" {
  statement {
    sid = "InvokeTheOneAgentRuntime"
    actions = [
      "bedrock-agentcore:InvokeAgentRuntime",
      # /agent/ws, the pass-through to the agent's own WebSocket.
      "bedrock-agentcore:InvokeAgentRuntimeWithWebSocketStream",
      "bedrock-agentcore:StopRuntimeSession",
    ]
    resources = local.agentcore_resources
  }
}

resource "aws_iam_role_policy" "task" {
  name   = "bridge"
  role   = aws_iam_role.task.id
  policy = data.aws_iam_policy_document.task.json
}

# The execution role: what ECS needs to start the task (pull the image,
# write logs, read the secrets). Written out instead of the managed
# AmazonECSTaskExecutionRolePolicy, whose every statement is on "*".
resource "aws_iam_role" "execution" {
  name               = "${var.name}-execution"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

data "aws_iam_policy_document" "execution" {
  statement {
    sid       = "WriteOwnLogGroup"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.bridge.arn}:*"]
  }

  dynamic "statement" {
    for_each = var.ecr_repository_arn == null ? [] : [var.ecr_repository_arn]

    content {
      sid       = "PullTheImage"
      actions   = ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"]
      resources = [statement.value]
    }
  }

  dynamic "statement" {
    for_each = var.ecr_repository_arn == null ? [] : [var.ecr_repository_arn]

    content {
      # ECR's GetAuthorizationToken applies to no resource: AWS accepts
      # only "*" for it. The token alone reads nothing; the statement
      # above limits pulls to the one repository.
      sid       = "GetRegistryToken"
      actions   = ["ecr:GetAuthorizationToken"]
      resources = ["*"]
    }
  }

  dynamic "statement" {
    for_each = length(var.secret_arns) == 0 ? [] : [sort(values(var.secret_arns))]

    content {
      sid       = "ReadTheSettingsSecrets"
      actions   = ["secretsmanager:GetSecretValue"]
      resources = statement.value
    }
  }
}

resource "aws_iam_role_policy" "execution" {
  name   = "start-task"
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.execution.json
}

# ---------------------------------------------------------------- network

resource "aws_security_group" "alb" {
  name        = "${var.name}-alb"
  description = "HTTPS from clients to the bridge load balancer"
  vpc_id      = var.vpc_id
}

resource "aws_vpc_security_group_ingress_rule" "alb_https" {
  for_each = toset(var.allowed_cidrs)

  security_group_id = aws_security_group.alb.id
  description       = "WebSocket clients"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = each.value
}

resource "aws_vpc_security_group_egress_rule" "alb_to_tasks" {
  security_group_id            = aws_security_group.alb.id
  description                  = "Forward to the bridge tasks"
  ip_protocol                  = "tcp"
  from_port                    = var.container_port
  to_port                      = var.container_port
  referenced_security_group_id = aws_security_group.task.id
}

resource "aws_security_group" "task" {
  name        = "${var.name}-task"
  description = "Bridge tasks: from the load balancer in, HTTPS out"
  vpc_id      = var.vpc_id
}

resource "aws_vpc_security_group_ingress_rule" "task_from_alb" {
  security_group_id            = aws_security_group.task.id
  description                  = "Load balancer traffic and health checks"
  ip_protocol                  = "tcp"
  from_port                    = var.container_port
  to_port                      = var.container_port
  referenced_security_group_id = aws_security_group.alb.id
}

resource "aws_vpc_security_group_egress_rule" "task_https" {
  security_group_id = aws_security_group.task.id
  description       = "AgentCore, ECR, CloudWatch Logs, Secrets Manager (HTTPS only)"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = "0.0.0.0/0"
}

# ---------------------------------------------------------------- load balancer

resource "aws_lb" "bridge" {
  name               = var.name
  load_balancer_type = "application"
  internal           = false
  security_groups    = [aws_security_group.alb.id]
  subnets            = var.public_subnet_ids

  # A WebSocket stays open as long as bytes flow; the ALB's default 60 s
  # would cut an agent that thinks quietly for a minute.
  idle_timeout = var.idle_timeout

  drop_invalid_header_fields = true
}

resource "aws_lb_target_group" "bridge" {
  name        = var.name
  port        = var.container_port
  protocol    = "HTTP"
  target_type = "ip"
  vpc_id      = var.vpc_id

  # Shorter than the container's stopTimeout: a task that is stopped while
  # still registered (Fargate Spot, a failed health check) has left the
  # load balancer before ECS gives up on SIGTERM and kills it.
  deregistration_delay = var.deregistration_delay

  # No stickiness: an upgraded WebSocket stays on the task that answered
  # 101 by itself, and a client that reconnects may land on any task: its
  # agent session lives in AgentCore, and the resume token is checked with
  # the BRIDGE_SESSION_SECRET every task shares.

  health_check {
    path                = "/healthz"
    matcher             = "200"
    interval            = 10
    timeout             = 5
    healthy_threshold   = 2
    unhealthy_threshold = 2
  }

  lifecycle {
    precondition {
      condition     = var.deregistration_delay < var.stop_timeout
      error_message = "deregistration_delay must be shorter than stop_timeout."
    }
  }
}

resource "aws_lb_listener" "https" {
  load_balancer_arn = aws_lb.bridge.arn
  port              = 443
  protocol          = "HTTPS"
  ssl_policy        = var.ssl_policy
  certificate_arn   = var.certificate_arn

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.bridge.arn
  }
}

# ---------------------------------------------------------------- ECS

resource "aws_ecs_cluster" "bridge" {
  name = var.name
}

resource "aws_ecs_task_definition" "bridge" {
  family                   = var.name
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.cpu
  memory                   = var.memory
  task_role_arn            = aws_iam_role.task.arn
  execution_role_arn       = aws_iam_role.execution.arn
  container_definitions    = jsonencode([local.container])

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = "X86_64"
  }
}

resource "aws_ecs_service" "bridge" {
  name            = var.name
  cluster         = aws_ecs_cluster.bridge.id
  task_definition = aws_ecs_task_definition.bridge.arn
  desired_count   = var.min_count
  launch_type     = "FARGATE"

  # New tasks come up before old ones drain, and a deployment whose tasks
  # never turn healthy rolls back by itself.
  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200
  health_check_grace_period_seconds  = 30

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  network_configuration {
    subnets          = var.private_subnet_ids
    security_groups  = [aws_security_group.task.id]
    assign_public_ip = var.assign_public_ip
  }

  load_balancer {
    target_group_arn = aws_lb_target_group.bridge.arn
    container_name   = local.container_name
    container_port   = var.container_port
  }

  # The autoscaler owns the count once the service exists.
  lifecycle {
    ignore_changes = [desired_count]
  }

  depends_on = [aws_lb_listener.https, aws_iam_role_policy.execution]
}

# ---------------------------------------------------------------- autoscaling

resource "aws_appautoscaling_target" "bridge" {
  service_namespace  = "ecs"
  resource_id        = "service/${aws_ecs_cluster.bridge.name}/${aws_ecs_service.bridge.name}"
  scalable_dimension = "ecs:service:DesiredCount"
  min_capacity       = var.min_count
  max_capacity       = var.max_count
}

# Scaling in stops tasks with open streams (drain, then SIGTERM, then 1001
# to the clients still there), so it waits longer than scaling out.
resource "aws_appautoscaling_policy" "cpu" {
  name               = "${var.name}-cpu"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.bridge.service_namespace
  resource_id        = aws_appautoscaling_target.bridge.resource_id
  scalable_dimension = aws_appautoscaling_target.bridge.scalable_dimension

  target_tracking_scaling_policy_configuration {
    target_value       = var.cpu_target
    scale_out_cooldown = 60
    scale_in_cooldown  = 600

    predefined_metric_specification {
      predefined_metric_type = "ECSServiceAverageCPUUtilization"
    }
  }
}

resource "aws_appautoscaling_policy" "memory" {
  name               = "${var.name}-memory"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.bridge.service_namespace
  resource_id        = aws_appautoscaling_target.bridge.resource_id
  scalable_dimension = aws_appautoscaling_target.bridge.scalable_dimension

  target_tracking_scaling_policy_configuration {
    target_value       = var.memory_target
    scale_out_cooldown = 60
    scale_in_cooldown  = 600

    predefined_metric_specification {
      predefined_metric_type = "ECSServiceAverageMemoryUtilization"
    }
  }
}
