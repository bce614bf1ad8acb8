# One address for the gateways: a regional passthrough TCP load balancer (internal or external)
# over every node VM's gateway, health-checked on GET /v1/health. The gateways are stateless, so
# any of them serves any request. gateway_load_balancer = "none" makes none of this.

locals {
  lb_enabled = var.gateway_load_balancer != "none"
  lb_scheme  = var.gateway_load_balancer == "internal" ? "INTERNAL" : "EXTERNAL"
  # One instance group per zone that holds nodes.
  lb_zones = distinct(local.node_zones)
}

resource "google_compute_instance_group" "gateway" {
  count   = local.lb_enabled ? length(local.lb_zones) : 0
  project = var.project_id
  name    = "${var.name}-gateways-${local.lb_zones[count.index]}"
  zone    = local.lb_zones[count.index]
  instances = [
    for i in range(var.node_count) : google_compute_instance.node[i].self_link
    if local.node_zones[i] == local.lb_zones[count.index]
  ]
}

resource "google_compute_region_health_check" "gateway" {
  count   = local.lb_enabled ? 1 : 0
  project = var.project_id
  name    = "${var.name}-gateway"
  region  = var.region
  http_health_check {
    port         = var.gateway_port
    request_path = "/v1/health"
  }
}

resource "google_compute_region_backend_service" "gateway" {
  count                 = local.lb_enabled ? 1 : 0
  project               = var.project_id
  name                  = "${var.name}-gateway"
  region                = var.region
  protocol              = "TCP"
  load_balancing_scheme = local.lb_scheme
  health_checks         = [google_compute_region_health_check.gateway[0].id]
  dynamic "backend" {
    for_each = google_compute_instance_group.gateway
    content {
      group          = backend.value.id
      balancing_mode = "CONNECTION"
    }
  }
}

resource "google_compute_forwarding_rule" "gateway" {
  count                 = local.lb_enabled ? 1 : 0
  project               = var.project_id
  name                  = "${var.name}-gateway"
  region                = var.region
  load_balancing_scheme = local.lb_scheme
  backend_service       = google_compute_region_backend_service.gateway[0].id
  ip_protocol           = "TCP"
  ports                 = [tostring(var.gateway_port)]
  network               = local.lb_scheme == "INTERNAL" ? google_compute_network.walrus.id : null
  subnetwork            = local.lb_scheme == "INTERNAL" ? google_compute_subnetwork.walrus.id : null
}
