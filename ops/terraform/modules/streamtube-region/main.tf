# One region of a StreamTube cluster on AWS: a VPC, N nodes on EC2 instances at fixed private
# addresses (stable gossip seeds, like a StatefulSet's names), an HTTPS load balancer for pages,
# API and media (health-checked on /healthz/ready, sticky for live chat), a TCP load balancer
# for RTMP sending the PROXY protocol, and latency-based DNS records that send each viewer and
# broadcaster to the nearest healthy region. The database (PostgreSQL) is shared by every
# region: see examples/three-regions. Validated in CI: parsed with python-hcl2 and scanned with
# checkov (Tests/integration/test_deploy_files.py); each finding left is skipped where it
# occurs, with the reason.

data "aws_region" "current" {}

data "aws_ami" "debian" {
  most_recent = true
  owners      = ["136693071363"] # Debian's official images
  filter {
    name   = "name"
    values = ["debian-12-amd64-*"]
  }
  filter {
    name   = "architecture"
    values = ["x86_64"]
  }
}

locals {
  public_subnets  = [for i, _ in var.availability_zones : cidrsubnet(var.vpc_cidr, 8, i)]
  private_subnets = [for i, _ in var.availability_zones : cidrsubnet(var.vpc_cidr, 8, 100 + i)]
  # Node i lives in zone i mod zones, at a fixed address.
  node_addresses = [for i in range(var.node_count) : cidrhost(local.private_subnets[i % length(var.availability_zones)], 10 + floor(i / length(var.availability_zones)))]
  tags           = { "app" = "streamtube", "streamtube-region" = var.region_label }
}

# --- Network -------------------------------------------------------------------------------

resource "aws_vpc" "this" {
  cidr_block           = var.vpc_cidr
  enable_dns_support   = true
  enable_dns_hostnames = true
  tags                 = merge(local.tags, { Name = "${var.name}-${var.region_label}" })
}

# Nothing uses the default security group: it allows nothing.
resource "aws_default_security_group" "this" {
  vpc_id = aws_vpc.this.id
  tags   = local.tags
}

resource "aws_flow_log" "this" {
  vpc_id               = aws_vpc.this.id
  traffic_type         = "REJECT"
  log_destination_type = "s3"
  log_destination      = "arn:aws:s3:::${var.log_bucket}/flow-logs/"
  tags                 = local.tags
}

resource "aws_internet_gateway" "this" {
  vpc_id = aws_vpc.this.id
  tags   = local.tags
}

resource "aws_subnet" "public" {
  count             = length(var.availability_zones)
  vpc_id            = aws_vpc.this.id
  cidr_block        = local.public_subnets[count.index]
  availability_zone = var.availability_zones[count.index]
  tags              = merge(local.tags, { Name = "${var.name}-public-${count.index}" })
}

resource "aws_subnet" "private" {
  count             = length(var.availability_zones)
  vpc_id            = aws_vpc.this.id
  cidr_block        = local.private_subnets[count.index]
  availability_zone = var.availability_zones[count.index]
  tags              = merge(local.tags, { Name = "${var.name}-private-${count.index}" })
}

resource "aws_eip" "nat" {
  domain = "vpc"
  tags   = local.tags
}

# The nodes' way out (image pulls, the database, other regions' public addresses).
resource "aws_nat_gateway" "this" {
  allocation_id = aws_eip.nat.id
  subnet_id     = aws_subnet.public[0].id
  tags          = local.tags
}

resource "aws_route_table" "public" {
  vpc_id = aws_vpc.this.id
  route {
    cidr_block = "0.0.0.0/0"
    gateway_id = aws_internet_gateway.this.id
  }
  tags = local.tags
}

resource "aws_route_table" "private" {
  vpc_id = aws_vpc.this.id
  route {
    cidr_block     = "0.0.0.0/0"
    nat_gateway_id = aws_nat_gateway.this.id
  }
  tags = local.tags
}

resource "aws_route_table_association" "public" {
  count          = length(var.availability_zones)
  subnet_id      = aws_subnet.public[count.index].id
  route_table_id = aws_route_table.public.id
}

resource "aws_route_table_association" "private" {
  count          = length(var.availability_zones)
  subnet_id      = aws_subnet.private[count.index].id
  route_table_id = aws_route_table.private.id
}

# --- Firewalls -----------------------------------------------------------------------------

resource "aws_security_group" "http_lb" {
  name        = "${var.name}-http-lb"
  description = "StreamTube HTTPS load balancer: viewers in, nodes' HTTP port out"
  vpc_id      = aws_vpc.this.id
  tags        = local.tags
}

resource "aws_vpc_security_group_ingress_rule" "http_lb_https" {
  security_group_id = aws_security_group.http_lb.id
  description       = "HTTPS from anyone"
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
}

resource "aws_vpc_security_group_ingress_rule" "http_lb_http" {
  security_group_id = aws_security_group.http_lb.id
  description       = "HTTP from anyone: answered with a redirect to HTTPS only"
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = 80
  to_port           = 80
  #checkov:skip=CKV_AWS_260:Port 80 on the load balancer only answers 301 to HTTPS (listener http_redirect); people typing the bare host name need it.
}

resource "aws_vpc_security_group_egress_rule" "http_lb_nodes" {
  security_group_id            = aws_security_group.http_lb.id
  description                  = "To the nodes' HTTP port"
  referenced_security_group_id = aws_security_group.node.id
  ip_protocol                  = "tcp"
  from_port                    = 8080
  to_port                      = 8080
}

resource "aws_security_group" "node" {
  name        = "${var.name}-node"
  description = "StreamTube nodes: gossip only between nodes; HTTP from the load balancer and nodes; RTMP from the RTMP load balancer"
  vpc_id      = aws_vpc.this.id
  tags        = local.tags
}

resource "aws_vpc_security_group_ingress_rule" "node_http_from_lb" {
  security_group_id            = aws_security_group.node.id
  description                  = "HTTP from the HTTPS load balancer"
  referenced_security_group_id = aws_security_group.http_lb.id
  ip_protocol                  = "tcp"
  from_port                    = 8080
  to_port                      = 8080
}

# The RTMP load balancer (a network load balancer) connects from its addresses in the VPC.
resource "aws_vpc_security_group_ingress_rule" "node_rtmp_from_lb" {
  security_group_id = aws_security_group.node.id
  description       = "RTMP from the network load balancer (PROXY protocol v2)"
  cidr_ipv4         = var.vpc_cidr
  ip_protocol       = "tcp"
  from_port         = 1935
  to_port           = 1935
}

# Between nodes of every region: gossip (UDP and TCP), relays (RTMP), replication, record
# lookups and edge fetches (HTTP), all under the cluster key and mutual TLS.
resource "aws_vpc_security_group_ingress_rule" "node_from_nodes" {
  for_each                     = toset(["tcp:7946", "udp:7946", "tcp:8080", "tcp:1935"])
  security_group_id            = aws_security_group.node.id
  description                  = "Cluster traffic between nodes of this region (${each.key})"
  referenced_security_group_id = aws_security_group.node.id
  ip_protocol                  = split(":", each.key)[0]
  from_port                    = tonumber(split(":", each.key)[1])
  to_port                      = tonumber(split(":", each.key)[1])
}

resource "aws_vpc_security_group_ingress_rule" "node_from_peers" {
  for_each          = { for pair in setproduct(var.peer_cidrs, ["tcp:7946", "udp:7946", "tcp:8080", "tcp:1935"]) : "${pair[0]} ${pair[1]}" => pair }
  security_group_id = aws_security_group.node.id
  description       = "Cluster traffic from the nodes of another region (${each.key})"
  cidr_ipv4         = each.value[0]
  ip_protocol       = split(":", each.value[1])[0]
  from_port         = tonumber(split(":", each.value[1])[1])
  to_port           = tonumber(split(":", each.value[1])[1])
}

resource "aws_vpc_security_group_egress_rule" "node_out" {
  security_group_id = aws_security_group.node.id
  description       = "Out: other nodes, the database, the image registry, payment providers, mail"
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "-1"
}

# --- Nodes ---------------------------------------------------------------------------------

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "node" {
  name_prefix        = "${var.name}-node-"
  assume_role_policy = data.aws_iam_policy_document.assume.json
  tags               = local.tags
}

# A node reads its one secret and pulls its image; nothing else.
data "aws_iam_policy_document" "node" {
  statement {
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [var.secret_arn]
  }
  statement {
    actions   = ["kms:Decrypt"]
    resources = [var.kms_key_arn]
  }
}

resource "aws_iam_role_policy" "node" {
  role   = aws_iam_role.node.id
  policy = data.aws_iam_policy_document.node.json
}

resource "aws_iam_role_policy_attachment" "ecr" {
  role       = aws_iam_role.node.name
  policy_arn = "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly"
}

# Shell access through Systems Manager, not SSH (no port 22 open).
resource "aws_iam_role_policy_attachment" "ssm" {
  role       = aws_iam_role.node.name
  policy_arn = "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"
}

resource "aws_iam_instance_profile" "node" {
  name_prefix = "${var.name}-node-"
  role        = aws_iam_role.node.name
}

resource "aws_instance" "node" {
  count                  = var.node_count
  ami                    = data.aws_ami.debian.id
  instance_type          = var.instance_type
  subnet_id              = aws_subnet.private[count.index % length(var.availability_zones)].id
  private_ip             = local.node_addresses[count.index]
  vpc_security_group_ids = [aws_security_group.node.id]
  iam_instance_profile   = aws_iam_instance_profile.node.name
  monitoring             = true
  ebs_optimized          = true

  metadata_options {
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
    http_endpoint               = "enabled"
  }

  root_block_device {
    volume_size = 20
    encrypted   = true
    kms_key_id  = var.kms_key_arn
  }

  ebs_block_device {
    device_name = "/dev/xvdb"
    volume_size = var.cache_disk_gb
    volume_type = "gp3"
    encrypted   = true
    kms_key_id  = var.kms_key_arn
  }

  user_data = templatefile("${path.module}/node.cloud-init.yaml", {
    image         = var.image
    node_id       = "${var.region_label}-${count.index}"
    region_label  = var.region_label
    advertise     = local.node_addresses[count.index]
    seeds         = var.seeds != "" ? var.seeds : join(",", [for a in local.node_addresses : "${a}:7946"])
    secret_arn    = var.secret_arn
    aws_region    = data.aws_region.current.name
    public_url    = "https://${var.host_name}"
    trusted_cidrs = var.vpc_cidr
  })
  user_data_replace_on_change = true

  tags = merge(local.tags, { Name = "${var.name}-${var.region_label}-${count.index}" })
}

# --- Load balancers ------------------------------------------------------------------------

resource "aws_lb" "http" {
  name                       = substr("${var.name}-${var.region_label}-http", 0, 32)
  load_balancer_type         = "application"
  internal                   = false
  security_groups            = [aws_security_group.http_lb.id]
  subnets                    = aws_subnet.public[*].id
  drop_invalid_header_fields = true
  enable_deletion_protection = true
  # Blocking playlist reloads (LL-HLS) and chat WebSockets stay open longer than the default 60 s.
  idle_timeout = 300
  access_logs {
    bucket  = var.log_bucket
    prefix  = "${var.name}-http"
    enabled = true
  }
  tags = local.tags
  #checkov:skip=CKV2_AWS_28:A WAF in front of live media is the operator's choice (cost per request at playlist-polling rates); the node bounds and throttles its own inputs.
}

resource "aws_lb_target_group" "http" {
  name_prefix = "sthttp"
  port        = 8080
  protocol    = "HTTP"
  vpc_id      = aws_vpc.this.id
  target_type = "instance"
  # A node leaving (SIGTERM) is not ready at once; in-flight requests get this long.
  deregistration_delay = 30
  health_check {
    path                = "/healthz/ready"
    port                = "8080"
    interval            = 5
    timeout             = 3
    healthy_threshold   = 2
    unhealthy_threshold = 2
    matcher             = "200"
  }
  # A viewer keeps to one node: its chat WebSocket and playlist reloads, a warm edge cache.
  stickiness {
    type            = "lb_cookie"
    cookie_duration = 3600
    enabled         = true
  }
  tags = local.tags
}

resource "aws_lb_target_group_attachment" "http" {
  count            = var.node_count
  target_group_arn = aws_lb_target_group.http.arn
  target_id        = aws_instance.node[count.index].id
  port             = 8080
}

resource "aws_lb_listener" "https" {
  load_balancer_arn = aws_lb.http.arn
  port              = 443
  protocol          = "HTTPS"
  ssl_policy        = "ELBSecurityPolicy-TLS13-1-2-2021-06"
  certificate_arn   = var.certificate_arn
  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.http.arn
  }
}

resource "aws_lb_listener" "http_redirect" {
  load_balancer_arn = aws_lb.http.arn
  port              = 80
  protocol          = "HTTP"
  default_action {
    type = "redirect"
    redirect {
      port        = "443"
      protocol    = "HTTPS"
      status_code = "HTTP_301"
    }
  }
}

resource "aws_lb" "rtmp" {
  name                             = substr("${var.name}-${var.region_label}-rtmp", 0, 32)
  load_balancer_type               = "network"
  internal                         = false
  subnets                          = aws_subnet.public[*].id
  enable_cross_zone_load_balancing = true
  enable_deletion_protection       = true
  access_logs {
    bucket  = var.log_bucket
    prefix  = "${var.name}-rtmp"
    enabled = true
  }
  tags = local.tags
}

# The node reads the PROXY protocol header from the load balancer's addresses (--trusted-proxies
# is the VPC's range) and so sees each broadcaster's own address.
resource "aws_lb_target_group" "rtmp" {
  name_prefix          = "strtmp"
  port                 = 1935
  protocol             = "TCP"
  vpc_id               = aws_vpc.this.id
  target_type          = "instance"
  proxy_protocol_v2    = true
  preserve_client_ip   = "false"
  deregistration_delay = 30
  health_check {
    protocol            = "HTTP"
    path                = "/healthz/ready"
    port                = "8080"
    interval            = 10
    healthy_threshold   = 2
    unhealthy_threshold = 2
  }
  tags = local.tags
}

resource "aws_lb_target_group_attachment" "rtmp" {
  count            = var.node_count
  target_group_arn = aws_lb_target_group.rtmp.arn
  target_id        = aws_instance.node[count.index].id
  port             = 1935
}

resource "aws_lb_listener" "rtmp" {
  load_balancer_arn = aws_lb.rtmp.arn
  port              = 1935
  protocol          = "TCP"
  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.rtmp.arn
  }
}

# RTMPS: TLS ends at the load balancer, RTMP (with the PROXY header) to the node.
resource "aws_lb_listener" "rtmps" {
  load_balancer_arn = aws_lb.rtmp.arn
  port              = 443
  protocol          = "TLS"
  ssl_policy        = "ELBSecurityPolicy-TLS13-1-2-2021-06"
  certificate_arn   = var.certificate_arn
  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.rtmp.arn
  }
}

# --- DNS: the nearest healthy region -------------------------------------------------------

resource "aws_route53_record" "http" {
  zone_id        = var.zone_id
  name           = var.host_name
  type           = "A"
  set_identifier = var.region_label
  latency_routing_policy {
    region = data.aws_region.current.name
  }
  alias {
    name                   = aws_lb.http.dns_name
    zone_id                = aws_lb.http.zone_id
    evaluate_target_health = true
  }
}

resource "aws_route53_record" "rtmp" {
  zone_id        = var.zone_id
  name           = "rtmp.${var.host_name}"
  type           = "A"
  set_identifier = var.region_label
  latency_routing_policy {
    region = data.aws_region.current.name
  }
  alias {
    name                   = aws_lb.rtmp.dns_name
    zone_id                = aws_lb.rtmp.zone_id
    evaluate_target_health = true
  }
}
