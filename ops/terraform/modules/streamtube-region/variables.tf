variable "name" {
  description = "Name prefix for this region's resources."
  type        = string
  default     = "streamtube"
}

variable "region_label" {
  description = "The region's name as the nodes gossip it (--region), e.g. eu-west."
  type        = string
}

variable "vpc_cidr" {
  description = "Address range of this region's VPC (distinct per region: the regions' VPCs are peered)."
  type        = string
}

variable "availability_zones" {
  description = "Zones to spread the nodes over (one subnet each)."
  type        = list(string)
}

variable "node_count" {
  description = "Nodes in this region."
  type        = number
  default     = 3
}

variable "instance_type" {
  description = "EC2 instance type of a node (transcoding needs CPU: about one core per stream with the default ladder)."
  type        = string
  default     = "c7i.2xlarge"
}

variable "image" {
  description = "Container image of the node (ops/container/Containerfile), e.g. an ECR repository URL with a tag."
  type        = string
}

variable "seeds" {
  description = "Gossip seeds, host:port, comma-separated: nodes of any region (the first region's load balancer's private names, or fixed addresses)."
  type        = string
  default     = ""
}

variable "peer_cidrs" {
  description = "The other regions' VPC ranges: they reach this region's nodes for gossip, relays, replication and edge fetches (cluster TLS)."
  type        = list(string)
  default     = []
}

variable "secret_arn" {
  description = "Secrets Manager secret with the JSON keys cluster_key, admin_token and database (a postgres:// URL). Never in Terraform state."
  type        = string
}

variable "certificate_arn" {
  description = "ACM certificate for the public host name, in this region (TLS ends at the load balancer)."
  type        = string
}

variable "zone_id" {
  description = "Route 53 hosted zone of the public host name."
  type        = string
}

variable "host_name" {
  description = "Public host name viewers and broadcasters use, e.g. live.example.com (latency-based: each viewer gets the nearest healthy region)."
  type        = string
}

variable "kms_key_arn" {
  description = "KMS key encrypting the nodes' disks and the load balancers' log bucket."
  type        = string
}

variable "log_bucket" {
  description = "S3 bucket (in this region) for the load balancers' access logs."
  type        = string
}

variable "cache_disk_gb" {
  description = "Size of each node's data disk (edge cache, recordings)."
  type        = number
  default     = 200
}
