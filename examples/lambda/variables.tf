variable "region" {
  description = "AWS region to deploy to; AgentCore Runtime must be available there."
  type        = string
  default     = "us-east-1"
}

variable "name" {
  description = "Name of the function, the API, the log group and the roles."
  type        = string
  default     = "agentcore-bridge"

  validation {
    # The function name is used in role names with a suffix of up to 10
    # characters, and IAM role names stop at 64.
    condition     = can(regex("^[A-Za-z0-9_-]{1,50}$", var.name))
    error_message = "name must be 1 to 50 of A-Z a-z 0-9 _ -."
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
    # The rule the function applies at start: refused here, a bad value
    # fails the plan instead of every client's $connect.
    condition     = var.agentcore_qualifier == null || can(regex("^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$", coalesce(var.agentcore_qualifier, "x")))
    error_message = "agentcore_qualifier must be 1 to 100 of A-Z a-z 0-9 _ - starting with a letter or digit."
  }
}

variable "stage_name" {
  description = "Stage of the WebSocket API; clients connect to wss://API.execute-api.REGION.amazonaws.com/STAGE."
  type        = string
  default     = "live"
}

variable "memory_size" {
  description = "Memory of the function in MB. The bridge waits on the network, so 512 MB is plenty; CPU grows with memory (1,769 MB is one vCPU) and SnapStart restores are billed per GB."
  type        = number
  default     = 512

  validation {
    condition     = var.memory_size >= 128 && var.memory_size <= 10240
    error_message = "memory_size must be between 128 and 10240 MB."
  }
}

variable "timeout_seconds" {
  description = "Function timeout. A message's invocation streams its answer through @connections long after API Gateway's 29 s integration timeout, so this bounds the longest answer."
  type        = number
  default     = 900

  validation {
    condition     = var.timeout_seconds >= 60 && var.timeout_seconds <= 900
    error_message = "timeout_seconds must be between 60 and 900 (Lambda's maximum)."
  }
}

variable "warmer_concurrency" {
  description = "N: how many execution environments the scheduled warmer keeps warm (0 turns the warmer off)."
  type        = number
  default     = 2

  validation {
    condition     = var.warmer_concurrency >= 0 && var.warmer_concurrency <= 50 && floor(var.warmer_concurrency) == var.warmer_concurrency
    error_message = "warmer_concurrency must be a whole number from 0 to 50 (BRIDGE_WARMER_MAX_CONCURRENCY caps it at 50)."
  }
}

variable "warmer_schedule" {
  description = "How often the warmer pings, as an EventBridge Scheduler expression."
  type        = string
  default     = "rate(5 minutes)"
}

variable "session_secret" {
  description = "BRIDGE_SESSION_SECRET: 32+ characters shared by every environment, so a client can resume its agent session after reconnecting. null disables resume tokens."
  type        = string
  default     = null
  sensitive   = true

  validation {
    condition     = var.session_secret == null || length(coalesce(var.session_secret, "x")) >= 32
    error_message = "session_secret must be at least 32 characters long."
  }
}

variable "warmup_payload" {
  description = "BRIDGE_WARMUP_PAYLOAD: a payload sent to the agent when a client connects, so the agent session's own cold start is over before the first message. null: no warm-up."
  type        = any
  default     = null
}

variable "extra_environment" {
  description = "More BRIDGE_* settings for the function (the table in docs/lambda.md), for example { BRIDGE_COALESCE_WINDOW = \"0.05\" }."
  type        = map(string)
  default     = {}
}

variable "throttling_rate_limit" {
  description = "Steady messages per second the stage accepts across all clients."
  type        = number
  default     = 100
}

variable "throttling_burst_limit" {
  description = "Burst of messages the stage accepts above the steady rate."
  type        = number
  default     = 200
}

variable "log_retention_days" {
  description = "How long the function's log group keeps its logs."
  type        = number
  default     = 30
}

variable "package_path" {
  description = "The zip that build.py writes; null means build/bridge.zip next to this file."
  type        = string
  default     = null
}

variable "tags" {
  description = "Tags put on every resource."
  type        = map(string)
  default     = {}
}
