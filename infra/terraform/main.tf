# The walrus-cluster module: N Walrus-TS node VMs (a storage node and a gateway on each) in a
# private network, spread over zones, each with its own data volume. This file holds the names and
# addresses everything else derives from, the network and the nodes' service account.

data "google_compute_zones" "up" {
  project = var.project_id
  region  = var.region
  status  = "UP"
}

locals {
  zones = length(var.zones) > 0 ? var.zones : data.google_compute_zones.up.names
  # Fixed private addresses, known at plan time: node 1's is the --join target of the others and
  # every address is in each gateway's --nodes list.
  node_ips   = [for i in range(var.node_count) : cidrhost(var.subnet_cidr, 10 + i)]
  node_zones = [for i in range(var.node_count) : local.zones[i % length(local.zones)]]
  node_tag   = "${var.name}-node"
  data_dir   = "/var/lib/walrus"
  # cloud-init finds the data volume by the device name it is attached with.
  data_device_name = "walrus-data"
  labels           = merge(var.labels, { "walrus-cluster" = var.name })
  # Where a VM reads its service account's token and the secrets (the boot script's endpoints).
  metadata_url      = "http://metadata.google.internal/computeMetadata/v1"
  secretmanager_url = "https://secretmanager.googleapis.com/v1"
}

resource "google_compute_network" "walrus" {
  project                 = var.project_id
  name                    = "${var.name}-net"
  auto_create_subnetworks = false
}

resource "google_compute_subnetwork" "walrus" {
  project                  = var.project_id
  name                     = "${var.name}-subnet"
  region                   = var.region
  network                  = google_compute_network.walrus.id
  ip_cidr_range            = var.subnet_cidr
  private_ip_google_access = true
}

# The nodes have no public address: they reach Node.js and the release through this NAT.
resource "google_compute_router" "walrus" {
  count   = var.enable_nat ? 1 : 0
  project = var.project_id
  name    = "${var.name}-router"
  region  = var.region
  network = google_compute_network.walrus.id
}

resource "google_compute_router_nat" "walrus" {
  count                              = var.enable_nat ? 1 : 0
  project                            = var.project_id
  name                               = "${var.name}-nat"
  router                             = google_compute_router.walrus[0].name
  region                             = var.region
  nat_ip_allocate_option             = "AUTO_ONLY"
  source_subnetwork_ip_ranges_to_nat = "ALL_SUBNETWORKS_ALL_IP_RANGES"
}

# The identity of the node VMs: it may read the cluster's two secrets and nothing else of ours.
resource "google_service_account" "node" {
  project      = var.project_id
  account_id   = "${var.name}-node"
  display_name = "Walrus-TS nodes of ${var.name}"
}
