# StreamTube in three AWS regions: three nodes each, one PostgreSQL (Multi-AZ, in the first
# region) shared by all, the regions' VPCs peered so nodes talk over private addresses, and
# latency-based DNS sending each viewer and broadcaster to the nearest healthy region.
#   terraform init && terraform apply -var-file=my.tfvars
# See the README's "Deploy" section for the secret to create first and what to check afterwards.

terraform {
  required_version = ">= 1.6"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.40"
    }
  }
}

variable "image" {
  description = "The node's container image (ops/container/Containerfile), pushed to a registry the nodes can pull from."
  type        = string
}

variable "host_name" {
  description = "Public host name, e.g. live.example.com."
  type        = string
}

variable "zone_id" {
  description = "Route 53 hosted zone of host_name."
  type        = string
}

variable "certificate_arns" {
  description = "ACM certificate for host_name in each region: {eu = ..., us = ..., ap = ...}."
  type        = map(string)
}

variable "secret_arns" {
  description = "Secrets Manager secret (JSON: cluster_key, admin_token, database) in each region: {eu = ..., us = ..., ap = ...}."
  type        = map(string)
}

variable "kms_key_arns" {
  description = "KMS key in each region: {eu = ..., us = ..., ap = ...}."
  type        = map(string)
}

variable "log_buckets" {
  description = "S3 bucket for access logs in each region: {eu = ..., us = ..., ap = ...}."
  type        = map(string)
}

provider "aws" {
  alias  = "eu"
  region = "eu-west-1"
}

provider "aws" {
  alias  = "us"
  region = "us-east-1"
}

provider "aws" {
  alias  = "ap"
  region = "ap-southeast-1"
}

locals {
  cidrs = { eu = "10.10.0.0/16", us = "10.20.0.0/16", ap = "10.30.0.0/16" }
  # The first node of each region seeds the cluster (fixed addresses, see the module).
  seeds = join(",", [for r in ["eu", "us", "ap"] : "${cidrhost(cidrsubnet(local.cidrs[r], 8, 100), 10)}:7946"])
}

module "eu" {
  source             = "../../modules/streamtube-region"
  providers          = { aws = aws.eu }
  region_label       = "eu-west"
  vpc_cidr           = local.cidrs.eu
  availability_zones = ["eu-west-1a", "eu-west-1b", "eu-west-1c"]
  peer_cidrs         = [local.cidrs.us, local.cidrs.ap]
  seeds              = local.seeds
  image              = var.image
  host_name          = var.host_name
  zone_id            = var.zone_id
  certificate_arn    = var.certificate_arns["eu"]
  secret_arn         = var.secret_arns["eu"]
  kms_key_arn        = var.kms_key_arns["eu"]
  log_bucket         = var.log_buckets["eu"]
}

module "us" {
  source             = "../../modules/streamtube-region"
  providers          = { aws = aws.us }
  region_label       = "us-east"
  vpc_cidr           = local.cidrs.us
  availability_zones = ["us-east-1a", "us-east-1b", "us-east-1c"]
  peer_cidrs         = [local.cidrs.eu, local.cidrs.ap]
  seeds              = local.seeds
  image              = var.image
  host_name          = var.host_name
  zone_id            = var.zone_id
  certificate_arn    = var.certificate_arns["us"]
  secret_arn         = var.secret_arns["us"]
  kms_key_arn        = var.kms_key_arns["us"]
  log_bucket         = var.log_buckets["us"]
}

module "ap" {
  source             = "../../modules/streamtube-region"
  providers          = { aws = aws.ap }
  region_label       = "ap-southeast"
  vpc_cidr           = local.cidrs.ap
  availability_zones = ["ap-southeast-1a", "ap-southeast-1b", "ap-southeast-1c"]
  peer_cidrs         = [local.cidrs.eu, local.cidrs.us]
  seeds              = local.seeds
  image              = var.image
  host_name          = var.host_name
  zone_id            = var.zone_id
  certificate_arn    = var.certificate_arns["ap"]
  secret_arn         = var.secret_arns["ap"]
  kms_key_arn        = var.kms_key_arns["ap"]
  log_bucket         = var.log_buckets["ap"]
}

# --- The regions' VPCs peered (eu-us, eu-ap, us-ap) -----------------------------------------

resource "aws_vpc_peering_connection" "eu_us" {
  provider    = aws.eu
  vpc_id      = module.eu.vpc_id
  peer_vpc_id = module.us.vpc_id
  peer_region = "us-east-1"
}

resource "aws_vpc_peering_connection_accepter" "eu_us" {
  provider                  = aws.us
  vpc_peering_connection_id = aws_vpc_peering_connection.eu_us.id
  auto_accept               = true
}

resource "aws_vpc_peering_connection" "eu_ap" {
  provider    = aws.eu
  vpc_id      = module.eu.vpc_id
  peer_vpc_id = module.ap.vpc_id
  peer_region = "ap-southeast-1"
}

resource "aws_vpc_peering_connection_accepter" "eu_ap" {
  provider                  = aws.ap
  vpc_peering_connection_id = aws_vpc_peering_connection.eu_ap.id
  auto_accept               = true
}

resource "aws_vpc_peering_connection" "us_ap" {
  provider    = aws.us
  vpc_id      = module.us.vpc_id
  peer_vpc_id = module.ap.vpc_id
  peer_region = "ap-southeast-1"
}

resource "aws_vpc_peering_connection_accepter" "us_ap" {
  provider                  = aws.ap
  vpc_peering_connection_id = aws_vpc_peering_connection.us_ap.id
  auto_accept               = true
}

resource "aws_route" "eu_to_us" {
  provider                  = aws.eu
  route_table_id            = module.eu.private_route_table_id
  destination_cidr_block    = local.cidrs.us
  vpc_peering_connection_id = aws_vpc_peering_connection.eu_us.id
}

resource "aws_route" "us_to_eu" {
  provider                  = aws.us
  route_table_id            = module.us.private_route_table_id
  destination_cidr_block    = local.cidrs.eu
  vpc_peering_connection_id = aws_vpc_peering_connection.eu_us.id
}

resource "aws_route" "eu_to_ap" {
  provider                  = aws.eu
  route_table_id            = module.eu.private_route_table_id
  destination_cidr_block    = local.cidrs.ap
  vpc_peering_connection_id = aws_vpc_peering_connection.eu_ap.id
}

resource "aws_route" "ap_to_eu" {
  provider                  = aws.ap
  route_table_id            = module.ap.private_route_table_id
  destination_cidr_block    = local.cidrs.eu
  vpc_peering_connection_id = aws_vpc_peering_connection.eu_ap.id
}

resource "aws_route" "us_to_ap" {
  provider                  = aws.us
  route_table_id            = module.us.private_route_table_id
  destination_cidr_block    = local.cidrs.ap
  vpc_peering_connection_id = aws_vpc_peering_connection.us_ap.id
}

resource "aws_route" "ap_to_us" {
  provider                  = aws.ap
  route_table_id            = module.ap.private_route_table_id
  destination_cidr_block    = local.cidrs.us
  vpc_peering_connection_id = aws_vpc_peering_connection.us_ap.id
}

# --- The database: one PostgreSQL for every region, Multi-AZ in the first ------------------

resource "aws_db_subnet_group" "streamtube" {
  provider   = aws.eu
  name       = "streamtube"
  subnet_ids = module.eu.private_subnet_ids
}

resource "aws_security_group" "database" {
  provider    = aws.eu
  name        = "streamtube-database"
  description = "PostgreSQL: from the nodes of every region only"
  vpc_id      = module.eu.vpc_id
}

resource "aws_vpc_security_group_ingress_rule" "database_from_nodes" {
  for_each          = local.cidrs
  provider          = aws.eu
  security_group_id = aws_security_group.database.id
  description       = "PostgreSQL from the ${each.key} nodes"
  cidr_ipv4         = each.value
  ip_protocol       = "tcp"
  from_port         = 5432
  to_port           = 5432
}

resource "aws_db_parameter_group" "streamtube" {
  provider = aws.eu
  name     = "streamtube-postgres15"
  family   = "postgres15"
  parameter {
    name  = "rds.force_ssl"
    value = "1"
  }
  parameter {
    name  = "log_min_duration_statement"
    value = "500"
  }
}

resource "aws_db_instance" "streamtube" {
  provider                            = aws.eu
  identifier                          = "streamtube"
  engine                              = "postgres"
  engine_version                      = "15"
  instance_class                      = "db.r6g.large"
  allocated_storage                   = 100
  storage_type                        = "gp3"
  storage_encrypted                   = true
  kms_key_id                          = var.kms_key_arns["eu"]
  db_name                             = "streamtube"
  username                            = "streamtube"
  manage_master_user_password         = true
  db_subnet_group_name                = aws_db_subnet_group.streamtube.name
  vpc_security_group_ids              = [aws_security_group.database.id]
  parameter_group_name                = aws_db_parameter_group.streamtube.name
  multi_az                            = true
  publicly_accessible                 = false
  backup_retention_period             = 14
  deletion_protection                 = true
  copy_tags_to_snapshot               = true
  auto_minor_version_upgrade          = true
  iam_database_authentication_enabled = true
  performance_insights_enabled        = true
  performance_insights_kms_key_id     = var.kms_key_arns["eu"]
  monitoring_interval                 = 60
  monitoring_role_arn                 = aws_iam_role.rds_monitoring.arn
  enabled_cloudwatch_logs_exports     = ["postgresql", "upgrade"]
  skip_final_snapshot                 = false
  final_snapshot_identifier           = "streamtube-final"
}

data "aws_iam_policy_document" "rds_monitoring" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["monitoring.rds.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "rds_monitoring" {
  provider           = aws.eu
  name_prefix        = "streamtube-rds-monitoring-"
  assume_role_policy = data.aws_iam_policy_document.rds_monitoring.json
}

resource "aws_iam_role_policy_attachment" "rds_monitoring" {
  provider   = aws.eu
  role       = aws_iam_role.rds_monitoring.name
  policy_arn = "arn:aws:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"
}

output "database_endpoint" {
  description = "Put postgres://streamtube:PASSWORD@<this>/streamtube?sslmode=verify-full in each region's secret (key database); the password is in the secret RDS made (manage_master_user_password)."
  value       = aws_db_instance.streamtube.endpoint
}

output "load_balancers" {
  description = "Each region's HTTPS and RTMP load balancers."
  value = {
    eu = [module.eu.http_load_balancer_dns, module.eu.rtmp_load_balancer_dns]
    us = [module.us.http_load_balancer_dns, module.us.rtmp_load_balancer_dns]
    ap = [module.ap.http_load_balancer_dns, module.ap.rtmp_load_balancer_dns]
  }
}
