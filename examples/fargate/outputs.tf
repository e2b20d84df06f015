output "websocket_url" {
  description = "Where protocol v1 clients connect; point the certificate's domain at the load balancer first."
  value       = "wss://${coalesce(var.domain_name, aws_lb.bridge.dns_name)}/ws"
}

output "load_balancer_dns_name" {
  description = "DNS name of the load balancer (the target of your domain's alias or CNAME record)."
  value       = aws_lb.bridge.dns_name
}

output "load_balancer_zone_id" {
  description = "Hosted zone of the load balancer, for a Route 53 alias record."
  value       = aws_lb.bridge.zone_id
}

output "cluster_name" {
  description = "ECS cluster name."
  value       = aws_ecs_cluster.bridge.name
}

output "service_name" {
  description = "ECS service name."
  value       = aws_ecs_service.bridge.name
}

output "log_group" {
  description = "The service's log group."
  value       = aws_cloudwatch_log_group.bridge.name
}
