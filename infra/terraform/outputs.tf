# What an operator and the rest of their stack need: where the nodes and the gateway are, the
# secrets to fill in, and a Prometheus scrape configuration.

output "node_names" {
  description = "Names of the node VMs, node 1 first (gcloud compute ssh <name> --tunnel-through-iap)."
  value       = google_compute_instance.node[*].name
}

output "node_zones" {
  description = "Zone of each node VM, node 1 first."
  value       = google_compute_instance.node[*].zone
}

output "node_private_ips" {
  description = "Private address of each node, node 1 first."
  value       = google_compute_address.node[*].address
}

output "node_client_addresses" {
  description = "host:port of each node's client port (walrus-cli --addr; reachable from members only)."
  value       = [for a in google_compute_address.node : "${a.address}:${var.client_port}"]
}

output "join_address" {
  description = "The --join address of a node added by hand: node 1's raft port."
  value       = "${google_compute_address.node[0].address}:${var.raft_port}"
}

output "gateway_url" {
  description = "Base URL of the HTTP gateway: the load balancer, or node 1's gateway when gateway_load_balancer = none."
  value = (
    local.lb_enabled
    ? "http://${google_compute_forwarding_rule.gateway[0].ip_address}:${var.gateway_port}"
    : "http://${google_compute_address.node[0].address}:${var.gateway_port}"
  )
}

output "cluster_secret_id" {
  description = "Secret Manager secret holding the cluster secret: add its value with `gcloud secrets versions add`."
  value       = google_secret_manager_secret.cluster_secret.id
}

output "gateway_tokens_secret_id" {
  description = "Secret Manager secret holding the gateway tokens document ({\"tokens\": [...]})."
  value       = google_secret_manager_secret.gateway_tokens.id
}

output "network" {
  description = "Self link of the private network (peer it, or run Prometheus in it)."
  value       = google_compute_network.walrus.self_link
}

output "prometheus_scrape_config" {
  description = "Prometheus scrape_configs (YAML) for the nodes' admin ports and the gateways' /metrics."
  value = yamlencode({
    scrape_configs = [
      {
        job_name     = "${var.name}-nodes"
        metrics_path = "/metrics"
        static_configs = [
          for i, a in google_compute_address.node : {
            targets = ["${a.address}:${var.admin_port}"]
            labels  = { walrus_cluster = var.name, node_id = tostring(i + 1) }
          }
        ]
      },
      {
        job_name     = "${var.name}-gateways"
        metrics_path = "/metrics"
        static_configs = [
          for i, a in google_compute_address.node : {
            targets = ["${a.address}:${var.gateway_port}"]
            labels  = { walrus_cluster = var.name, node_id = tostring(i + 1) }
          }
        ]
      },
    ]
  })
}

output "node_service_account" {
  description = "Email of the nodes' service account: grant it read access to a private release bucket."
  value       = google_service_account.node.email
}
