variable "region" {
  description = "AWS region to deploy to; AgentCore Runtime must be available there."
  type        = string
  default     = "us-east-1"
}

variable "name" {
  description = "Name of the cluster, service, load balancer, target group, roles and log group."
  type        = string
  default     = "agentcore-bridge"

  validation {
    # Load balancer and target group names stop at 32 characters.
    condition     = can(regex("^[A-Za-z0-9-]{1,32}$", var.name)) && !startswith(var.name, "-") && !endswith(var.name, "-")
    error_message = "name must be 1 to 32 of A-Z a-z 0-9 and -, not starting or ending with -."
  }
}

variable "agentcore_runtime_arn" {
  description = "ARN of the AgentCore agent runtime the bridge invokes (AGENTCORE_RUNTIME_ARN)."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:bedrock-agentcore:[a-z0-9-]+:[0-9]{12}:runtime/[A-Za-z0-9_-]+$", var.agentcore_runtime_arn))
    error_message = "agentcore_runtime_arn must look like arn:aws:bedrock-agentcore:REGION:ACCOUNT:runtime/NAME-ID."
  }
}

variable "agentcore_qualifier" {
  description = "Endpoint of the runtime to invoke (AGENTCORE_QUALIFIER); null means the runtime's DEFAULT endpoint."
  type        = string
  default     = null

  validation {
    # The rule the server applies at start: refused here, a bad value
    # fails the plan instead of every task, which would exit with status 2.
    condition     = var.agentcore_qualifier == null || can(regex("^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$", coalesce(var.agentcore_qualifier, "x")))
    error_message = "agentcore_qualifier must be 1 to 100 of A-Z a-z 0-9 _ - starting with a letter or digit."
  }
}

variable "image" {
  description = "Container image built from examples/fargate/Dockerfile, for example ACCOUNT.dkr.ecr.REGION.amazonaws.com/agentcore-bridge:0.1.0."
  type        = string
}

variable "ecr_repository_arn" {
  description = "ARN of the ECR repository holding the image, so the execution role may pull from it (and nothing else); null for a public image."
  type        = string
  default     = null
}

variable "vpc_id" {
  description = "VPC of the load balancer and the tasks."
  type        = string
}

variable "public_subnet_ids" {
  description = "Subnets of the internet-facing load balancer (two or more availability zones)."
  type        = list(string)
}

variable "private_subnet_ids" {
  description = "Subnets of the tasks. They need a route to AgentCore (NAT gateway or VPC endpoints) and to ECR and CloudWatch Logs."
  type        = list(string)
}

variable "assign_public_ip" {
  description = "Give tasks public IPs (only for tasks in public subnets without NAT)."
  type        = bool
  default     = false
}

variable "certificate_arn" {
  description = "ACM certificate of the HTTPS listener, for the domain clients connect to."
  type        = string
}

variable "domain_name" {
  description = "The domain the certificate covers and whose DNS points at the load balancer; only used to print the URL."
  type        = string
  default     = null
}

variable "ssl_policy" {
  description = "TLS policy of the HTTPS listener."
  type        = string
  default     = "ELBSecurityPolicy-TLS13-1-2-2021-06"
}

variable "allowed_cidrs" {
  description = "Client networks allowed to reach the load balancer on 443."
  type        = list(string)
  default     = ["0.0.0.0/0"]
}

variable "container_port" {
  description = "Port the server listens on inside the task (BRIDGE_PORT)."
  type        = number
  default     = 8080
}

variable "cpu" {
  description = "Task CPU units (1024 = 1 vCPU)."
  type        = number
  default     = 512
}

variable "memory" {
  description = "Task memory in MiB (a valid Fargate pairing with cpu)."
  type        = number
  default     = 1024
}

variable "min_count" {
  description = "Fewest tasks; two keeps a task up in another zone while one is replaced."
  type        = number
  default     = 2
}

variable "max_count" {
  description = "Most tasks the autoscaler may run."
  type        = number
  default     = 10
}

variable "cpu_target" {
  description = "Average CPU utilisation (percent) the autoscaler aims for."
  type        = number
  default     = 60
}

variable "memory_target" {
  description = "Average memory utilisation (percent) the autoscaler aims for; open connections hold memory."
  type        = number
  default     = 70
}

variable "idle_timeout" {
  description = "Seconds the load balancer keeps a silent connection open (ALB default 60). The server pings clients more often than this; raise it for agents that think in silence."
  type        = number
  default     = 900

  validation {
    condition     = var.idle_timeout >= 60 && var.idle_timeout <= 4000
    error_message = "idle_timeout must be between 60 and 4000 seconds."
  }
}

variable "stop_timeout" {
  description = "Seconds ECS waits after SIGTERM before SIGKILL (Fargate's maximum is 120)."
  type        = number
  default     = 120

  validation {
    condition     = var.stop_timeout >= 10 && var.stop_timeout <= 120
    error_message = "stop_timeout must be between 10 and 120 seconds."
  }
}

variable "deregistration_delay" {
  description = "Seconds the target group lets a deregistering task keep its connections; must be shorter than stop_timeout."
  type        = number
  default     = 60

  validation {
    condition     = var.deregistration_delay >= 0 && var.deregistration_delay <= 3600
    error_message = "deregistration_delay must be between 0 and 3600 seconds."
  }
}

variable "secret_arns" {
  description = "Settings taken from Secrets Manager: variable name to secret ARN, for example { BRIDGE_SESSION_SECRET = \"arn:aws:secretsmanager:...\" }. Every task needs the same BRIDGE_SESSION_SECRET for session resume to work across tasks."
  type        = map(string)
  default     = {}
}

variable "extra_environment" {
  description = "More BRIDGE_* settings (the table in docs/server.md), for example { BRIDGE_PASSTHROUGH = \"true\" }."
  type        = map(string)
  default     = {}
}

variable "log_retention_days" {
  description = "How long the service's log group keeps its logs."
  type        = number
  default     = 30
}

variable "tags" {
  description = "Tags put on every resource."
  type        = map(string)
  default     = {}
}
