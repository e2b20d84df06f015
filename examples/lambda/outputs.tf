output "websocket_url" {
  description = "Where clients connect (wss://...)."
  value       = aws_apigatewayv2_stage.live.invoke_url
}

output "connections_url" {
  description = "The @connections endpoint of the stage (https://...)."
  value       = "https://${aws_apigatewayv2_api.ws.id}.execute-api.${var.region}.amazonaws.com/${var.stage_name}"
}

output "function_name" {
  description = "Name of the Lambda function."
  value       = aws_lambda_function.bridge.function_name
}

output "alias_arn" {
  description = "ARN of the alias API Gateway and the warmer invoke."
  value       = aws_lambda_alias.live.arn
}

output "published_version" {
  description = "The version the alias points at (the one with the SnapStart snapshot)."
  value       = aws_lambda_function.bridge.version
}

output "log_group" {
  description = "The function's log group."
  value       = aws_cloudwatch_log_group.bridge.name
}
