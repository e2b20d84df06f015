terraform {
  required_version = ">= 1.5.0"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # 5.80 knows the python3.13 runtime, SnapStart for Python, Lambda
      # logging_config and EventBridge Scheduler; 6.x works unchanged.
      version = ">= 5.80, < 7.0"
    }
  }
}

provider "aws" {
  region = var.region

  default_tags {
    tags = var.tags
  }
}
