output "vpc_id" {
  description = "This region's VPC (peer it with the other regions')."
  value       = aws_vpc.this.id
}

output "private_route_table_id" {
  description = "Route table of the nodes' subnets (add the peering routes to it)."
  value       = aws_route_table.private.id
}

output "http_load_balancer_dns" {
  description = "The region's HTTPS load balancer."
  value       = aws_lb.http.dns_name
}

output "rtmp_load_balancer_dns" {
  description = "The region's RTMP (TCP) load balancer."
  value       = aws_lb.rtmp.dns_name
}

output "node_security_group_id" {
  description = "The nodes' security group."
  value       = aws_security_group.node.id
}

output "private_subnet_ids" {
  description = "The nodes' subnets (a database subnet group can use them)."
  value       = aws_subnet.private[*].id
}
