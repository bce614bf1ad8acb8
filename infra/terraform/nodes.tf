# The node VMs: one walrus-node and one walrus-gateway each, configured by cloud-init user data
# rendered from infra/cloud-init/cloud-init.yaml.tftpl, with a data volume of their own.

resource "google_compute_address" "node" {
  count        = var.node_count
  project      = var.project_id
  name         = "${var.name}-node-${count.index + 1}"
  region       = var.region
  subnetwork   = google_compute_subnetwork.walrus.id
  address_type = "INTERNAL"
  address      = local.node_ips[count.index]
}

resource "google_compute_disk" "data" {
  count   = var.node_count
  project = var.project_id
  name    = "${var.name}-data-${count.index + 1}"
  zone    = local.node_zones[count.index]
  type    = var.data_disk_type
  size    = var.data_disk_size_gb
  labels  = local.labels
}

resource "google_compute_resource_policy" "data_snapshots" {
  count   = var.data_snapshot_retention_days > 0 ? 1 : 0
  project = var.project_id
  name    = "${var.name}-data-snapshots"
  region  = var.region
  snapshot_schedule_policy {
    schedule {
      daily_schedule {
        days_in_cycle = 1
        start_time    = "03:00"
      }
    }
    retention_policy {
      max_retention_days    = var.data_snapshot_retention_days
      on_source_disk_delete = "KEEP_AUTO_SNAPSHOTS"
    }
  }
}

resource "google_compute_disk_resource_policy_attachment" "data_snapshots" {
  count   = var.data_snapshot_retention_days > 0 ? var.node_count : 0
  project = var.project_id
  name    = google_compute_resource_policy.data_snapshots[0].name
  disk    = google_compute_disk.data[count.index].name
  zone    = local.node_zones[count.index]
}

resource "google_compute_instance" "node" {
  count        = var.node_count
  project      = var.project_id
  name         = "${var.name}-node-${count.index + 1}"
  zone         = local.node_zones[count.index]
  machine_type = var.machine_type
  tags         = [local.node_tag]
  labels       = local.labels

  boot_disk {
    initialize_params {
      image = var.boot_image
      size  = 20
      type  = "pd-balanced"
    }
  }

  attached_disk {
    source      = google_compute_disk.data[count.index].id
    device_name = local.data_device_name
  }

  network_interface {
    subnetwork = google_compute_subnetwork.walrus.id
    network_ip = google_compute_address.node[count.index].address
  }

  service_account {
    email  = google_service_account.node.email
    scopes = ["cloud-platform"]
  }

  shielded_instance_config {
    enable_secure_boot          = true
    enable_vtpm                 = true
    enable_integrity_monitoring = true
  }

  metadata = {
    enable-oslogin         = "TRUE"
    block-project-ssh-keys = "TRUE"
    user-data = templatefile("${path.module}/../cloud-init/cloud-init.yaml.tftpl", {
      node_id                    = count.index + 1
      node_ip                    = local.node_ips[count.index]
      join_address               = count.index == 0 ? "" : "${local.node_ips[0]}:${var.raft_port}"
      raft_port                  = var.raft_port
      client_port                = var.client_port
      gateway_port               = var.gateway_port
      admin_port                 = var.admin_port
      gateway_nodes              = join(",", [for ip in local.node_ips : "${ip}:${var.client_port}"])
      data_dir                   = local.data_dir
      data_device                = "/dev/disk/by-id/google-${local.data_device_name}"
      node_version               = var.node_version
      node_dist_url              = var.node_dist_url
      release_url                = var.release_url
      release_sha256             = var.release_sha256
      metadata_url               = local.metadata_url
      secretmanager_url          = local.secretmanager_url
      cluster_secret_name        = google_secret_manager_secret.cluster_secret.id
      gateway_tokens_secret_name = google_secret_manager_secret.gateway_tokens.id
      node_env_b64               = base64encode(join("", [for k, v in merge({ WALRUS_FSYNC = var.fsync }, var.node_env) : "${k}=${v}\n"]))
      boot_script_b64            = filebase64("${path.module}/../cloud-init/walrus-boot.sh")
      node_unit_b64              = filebase64("${path.module}/../systemd/walrus-node.service")
      gateway_unit_b64           = filebase64("${path.module}/../systemd/walrus-gateway.service")
    })
  }

  # cloud-init runs the user data at first boot only: a new release is rolled out with
  # `walrus-boot upgrade` (README), not by replacing VMs and their Raft identity.
  lifecycle {
    ignore_changes = [metadata["user-data"], boot_disk[0].initialize_params[0].image]
  }

  allow_stopping_for_update = true

  depends_on = [
    google_secret_manager_secret_iam_member.node_reads_cluster_secret,
    google_secret_manager_secret_iam_member.node_reads_gateway_tokens,
    google_compute_router_nat.walrus,
  ]
}
