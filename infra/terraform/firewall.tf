# Ingress to the node VMs (a VPC denies every ingress it is not told to allow): the raft and client
# ports only from other members, the gateway and admin ports only from the configured ranges, SSH
# only from the configured ranges (Google's IAP by default).

locals {
  # Google's health checkers and passthrough load balancers reach the gateways from these ranges.
  google_health_check_cidrs = ["35.191.0.0/16", "130.211.0.0/22"]
  gateway_source_cidrs = concat(
    var.gateway_allowed_cidrs,
    var.gateway_load_balancer == "none" ? [] : local.google_health_check_cidrs,
  )
}

resource "google_compute_firewall" "members" {
  project     = var.project_id
  name        = "${var.name}-members"
  network     = google_compute_network.walrus.id
  description = "Raft and client ports between the members of ${var.name} only."
  direction   = "INGRESS"
  source_tags = [local.node_tag]
  target_tags = [local.node_tag]
  allow {
    protocol = "tcp"
    ports    = [tostring(var.raft_port), tostring(var.client_port)]
  }
}

resource "google_compute_firewall" "gateway" {
  count         = length(local.gateway_source_cidrs) > 0 ? 1 : 0
  project       = var.project_id
  name          = "${var.name}-gateway"
  network       = google_compute_network.walrus.id
  description   = "The gateway port of ${var.name}, from the allowed ranges (and Google's health checkers)."
  direction     = "INGRESS"
  source_ranges = local.gateway_source_cidrs
  target_tags   = [local.node_tag]
  allow {
    protocol = "tcp"
    ports    = [tostring(var.gateway_port)]
  }
}

resource "google_compute_firewall" "admin" {
  count         = length(var.admin_allowed_cidrs) > 0 ? 1 : 0
  project       = var.project_id
  name          = "${var.name}-admin"
  network       = google_compute_network.walrus.id
  description   = "The nodes' admin port (Prometheus /metrics, /health, /ready) of ${var.name}, from the allowed ranges."
  direction     = "INGRESS"
  source_ranges = var.admin_allowed_cidrs
  target_tags   = [local.node_tag]
  allow {
    protocol = "tcp"
    ports    = [tostring(var.admin_port)]
  }
}

resource "google_compute_firewall" "ssh" {
  count         = length(var.ssh_allowed_cidrs) > 0 ? 1 : 0
  project       = var.project_id
  name          = "${var.name}-ssh"
  network       = google_compute_network.walrus.id
  description   = "SSH to the nodes of ${var.name}, from the allowed ranges."
  direction     = "INGRESS"
  source_ranges = var.ssh_allowed_cidrs
  target_tags   = [local.node_tag]
  allow {
    protocol = "tcp"
    ports    = ["22"]
  }
}
