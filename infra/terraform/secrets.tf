# The cluster secret (peers prove it on the raft port) and the gateway tokens live in Secret
# Manager. This module makes the two secrets and lets the nodes read them; it never makes their
# versions, so the values are never in Terraform's state or plan: the operator adds them with
# gcloud (README), and each VM fetches them at first boot.

resource "google_secret_manager_secret" "cluster_secret" {
  project   = var.project_id
  secret_id = "${var.name}-cluster-secret"
  labels    = local.labels
  replication {
    auto {}
  }
}

resource "google_secret_manager_secret" "gateway_tokens" {
  project   = var.project_id
  secret_id = "${var.name}-gateway-tokens"
  labels    = local.labels
  replication {
    auto {}
  }
}

resource "google_secret_manager_secret_iam_member" "node_reads_cluster_secret" {
  project   = var.project_id
  secret_id = google_secret_manager_secret.cluster_secret.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.node.email}"
}

resource "google_secret_manager_secret_iam_member" "node_reads_gateway_tokens" {
  project   = var.project_id
  secret_id = google_secret_manager_secret.gateway_tokens.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.node.email}"
}
